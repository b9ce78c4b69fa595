//! One Partyline per user: the running one listens on a Unix socket in its data directory, and a
//! second invocation (say, a `partyline://` link clicked in a browser) hands its request over and
//! exits. One JSON request per line, one JSON answer per line.
//!
//! Only this user gets in: the socket is mode 0600 in the private (0700) data directory, and a
//! client whose uid (`SO_PEERCRED`) is not the socket owner's is hung up on. A screenshot is
//! written only inside the data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Longest request line; anything longer is refused.
const MAX_LINE: usize = 64 * 1024;
/// Requests waiting for the session; a client finding this full is told to retry.
const QUEUE: usize = 16;
/// A client that connects and says nothing is dropped after this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "request")]
pub enum Request {
    /// Join the party of this `partyline://` link (leaving the current one).
    Open { link: String },
    /// A line as typed into the headless node: chat or a `/command`.
    Line { line: String },
    /// Ask the overlay to draw itself into a PNG (and its layout into `<path>.json`).
    Screenshot { path: PathBuf },
    /// Make the overlay take the mouse (`true`) or let clicks through to the game.
    Interactive { on: bool },
    /// After the answer, every event from now on, one JSON object per line, until the client
    /// hangs up (how `partyline games …` and `partyline send` watch what they asked for).
    Follow,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    Ok,
    Error(String),
}

/// A request from another process, and where its answer goes.
pub struct Incoming {
    pub request: Request,
    pub reply: oneshot::Sender<Answer>,
    /// For `Follow`: where the event lines go (bounded; a client that does not keep up loses
    /// lines, never stalls Partyline).
    pub lines: Option<mpsc::Sender<String>>,
}

/// Event lines a follower may have waiting.
const FOLLOW_QUEUE: usize = 1024;

/// The socket of the Partyline running; `Ok(None)` when none runs.
async fn connect(socket: &Path) -> Result<Option<UnixStream>> {
    match UnixStream::connect(socket).await {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("cannot reach Partyline at {}", socket.display())),
    }
}

/// Sends `request` to the Partyline running with this socket; `Ok(None)` when none runs.
pub async fn hand_off(socket: &Path, request: &Request) -> Result<Option<Answer>> {
    let Some(stream) = connect(socket).await? else { return Ok(None) };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    let n = tokio::time::timeout(Duration::from_secs(10), BufReader::new(read).read_line(&mut answer))
        .await
        .context("the running Partyline did not answer")??;
    anyhow::ensure!(n > 0, "the running Partyline closed the connection");
    Ok(Some(serde_json::from_str(&answer).context("the running Partyline answered nonsense")?))
}

/// Listens on `socket` (replacing a stale one left by a crash); requests come out of the receiver.
pub fn serve(socket: &Path) -> Result<mpsc::Receiver<Incoming>> {
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => anyhow::bail!("Partyline is already running (socket {})", socket.display()),
        Err(_) => {
            let _ = std::fs::remove_file(socket);
        }
    }
    let listener =
        UnixListener::bind(socket).with_context(|| format!("cannot listen on {}", socket.display()))?;
    let owner = lock_down(socket)?;
    let data = socket.parent().unwrap_or(Path::new(".")).canonicalize()?;
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => match stream.peer_cred() {
                    Ok(cred) if cred.uid() == owner => {
                        tokio::spawn(client(stream, tx.clone(), data.clone()));
                    }
                    Ok(cred) => tracing::warn!("refused a local connection from uid {}", cred.uid()),
                    Err(e) => tracing::warn!("refused a local connection: {e}"),
                },
                // Out of descriptors, say: the listener stays, and tries again shortly.
                Err(e) => {
                    tracing::warn!("local socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(rx)
}

/// Makes the socket this user's only (0600); its owner's uid.
fn lock_down(socket: &Path) -> Result<u32> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(std::fs::metadata(socket)?.uid())
}

/// Refuses a screenshot path outside the data directory (or through a symbolic link).
fn check(request: &Request, data: &Path) -> Result<(), String> {
    let Request::Screenshot { path } = request else { return Ok(()) };
    let inside = path
        .parent()
        .and_then(|dir| dir.canonicalize().ok())
        .is_some_and(|dir| dir.starts_with(data) && path.file_name().is_some());
    let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if inside && !link {
        Ok(())
    } else {
        Err(format!("a screenshot is written only into {}", data.display()))
    }
}

async fn client(stream: UnixStream, requests: mpsc::Sender<Incoming>, data: PathBuf) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_LINE as u64 + 1);
    let mut line = String::new();
    let mut follow = None;
    let answer = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(n)) if n > MAX_LINE => Answer::Error("request too long".into()),
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(request) if let Err(e) = check(&request, &data) => Answer::Error(e),
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                let lines = (request == Request::Follow).then(|| {
                    let (tx, rx) = mpsc::channel(FOLLOW_QUEUE);
                    follow = Some(rx);
                    tx
                });
                match requests.try_send(Incoming { request, reply, lines }) {
                    Ok(()) => answer.await.unwrap_or(Answer::Error("Partyline is stopping".into())),
                    Err(_) => Answer::Error("Partyline is busy; try again".into()),
                }
            }
            Err(e) => Answer::Error(format!("bad request: {e}")),
        },
        Ok(Err(e)) => Answer::Error(format!("cannot read the request: {e}")),
        Err(_) => return,
    };
    let ok = answer == Answer::Ok;
    if let Ok(mut text) = serde_json::to_string(&answer) {
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
    if let (Some(mut lines), true) = (follow, ok) {
        while let Some(mut line) = lines.recv().await {
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// Follows the events of the Partyline running with this socket (`Ok(None)` when none runs):
/// a reader of JSON lines.
pub async fn follow(
    socket: &Path,
) -> Result<Option<tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>>> {
    let Some(stream) = connect(socket).await? else { return Ok(None) };
    let (read, mut write) = stream.into_split();
    let mut request = serde_json::to_string(&Request::Follow)?;
    request.push('\n');
    write.write_all(request.as_bytes()).await?;
    drop(write);
    let mut lines = BufReader::new(read).lines();
    let answer = lines.next_line().await?.context("the running Partyline closed the connection")?;
    match serde_json::from_str::<Answer>(&answer).context("the running Partyline answered nonsense")? {
        Answer::Ok => Ok(Some(lines)),
        Answer::Error(e) => anyhow::bail!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_reach_the_server_and_answers_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("p.sock");
        assert_eq!(hand_off(&socket, &Request::Line { line: "x".into() }).await.unwrap(), None);
        std::fs::write(&socket, b"stale").unwrap();
        let mut rx = serve(&socket).unwrap();
        assert!(serve(&socket).unwrap_err().to_string().contains("already running"));
        let server = tokio::spawn(async move {
            let incoming = rx.recv().await.unwrap();
            incoming.reply.send(Answer::Error(format!("{:?}", incoming.request))).unwrap();
        });
        let link = Request::Open { link: "partyline://join/x".into() };
        let answer = hand_off(&socket, &link).await.unwrap().unwrap();
        assert_eq!(answer, Answer::Error(format!("{link:?}")));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn followers_get_lines_until_they_hang_up() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("p.sock");
        assert!(follow(&socket).await.unwrap().is_none(), "nobody runs");
        let mut rx = serve(&socket).unwrap();
        let server = tokio::spawn(async move {
            let incoming = rx.recv().await.unwrap();
            assert_eq!(incoming.request, Request::Follow);
            let lines = incoming.lines.unwrap();
            incoming.reply.send(Answer::Ok).unwrap();
            lines.send("{\"event\":\"one\"}".into()).await.unwrap();
            lines.send("{\"event\":\"two\"}".into()).await.unwrap();
            lines
        });
        let mut lines = follow(&socket).await.unwrap().unwrap();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "{\"event\":\"one\"}");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "{\"event\":\"two\"}");
        let sender = server.await.unwrap();
        drop(lines);
        // The server notices the hang-up at its next write, and stops forwarding.
        let mut gone = false;
        for _ in 0..50 {
            if sender.send("x".into()).await.is_err() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the forwarding ends when the follower hangs up");
    }

    #[tokio::test]
    async fn garbage_and_huge_requests_get_errors() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("p.sock");
        let _rx = serve(&socket).unwrap();
        for payload in [b"{nonsense\n".to_vec(), vec![b'a'; MAX_LINE + 10]] {
            let mut s = UnixStream::connect(&socket).await.unwrap();
            s.write_all(&payload).await.unwrap();
            let mut answer = String::new();
            BufReader::new(s).read_line(&mut answer).await.unwrap();
            assert!(answer.contains("error"), "{answer}");
        }
    }
}
