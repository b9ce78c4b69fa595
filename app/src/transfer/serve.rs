//! Serving content to party members: answers `/partyline/blobs/1` requests from the catalog of
//! whole content the engine publishes, on libp2p streams or on the direct sealed channels they
//! open (see `channel`). Only current members are served; each peer gets a few streams at most;
//! what leaves is paced to the upload limit; a file that changed since it was shared is not
//! served (the asker would only find the pieces wrong).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::PeerId;
use partyline_protocol::ContentId;
use partyline_protocol::blobs::{BlobAnswer, BlobRequest, MAX_RANGE_BYTES};
use ring::rand::SecureRandom;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::channel::{Channel, End, Key, Sealed};
use super::disk::{Files, Tree};
use super::{Members, stream};
use crate::rate::ByteRate;

/// Streams one peer may have open to us, and all peers together.
const STREAMS_PER_PEER: usize = 4;
const STREAMS_TOTAL: usize = 64;
/// A stream with no request for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// Bytes sent between two looks at the upload limit.
const PACE_CHUNK: usize = 256 * 1024;
/// Direct channels offered and not yet opened, at most, and how long an offer holds.
const DOOR_PENDING: usize = 64;
const DOOR_WAIT: Duration = Duration::from_secs(20);
/// A direct connection must name its token within this.
const TOKEN_WAIT: Duration = Duration::from_secs(5);
/// Direct connections that have not named a token yet, at most; more are closed at once.
const HANDSHAKES: usize = 32;

/// Whole content this node serves, with what it answers for it.
pub(crate) struct Served {
    pub(crate) tree: Tree,
    pub(crate) manifest: Vec<u8>,
    pub(crate) pieces: Vec<u8>,
}

pub(crate) type Catalog = Arc<HashMap<ContentId, Arc<Served>>>;

#[derive(Clone)]
struct Shared {
    catalog: watch::Receiver<Catalog>,
    members: Members,
    rate: Option<Arc<Mutex<ByteRate>>>,
    open: Arc<Mutex<HashMap<PeerId, usize>>>,
    door: Option<Arc<Door>>,
}

/// The TCP port direct channels come in at, and the channels offered (token → who, key, until).
struct Door {
    port: u16,
    offered: Mutex<HashMap<[u8; 16], (PeerId, Key, Instant)>>,
}

impl Door {
    /// A fresh key and one-time token for `peer`.
    fn offer(&self, peer: PeerId) -> Option<(Key, [u8; 16])> {
        let (mut key, mut token) = ([0u8; 32], [0u8; 16]);
        let random = ring::rand::SystemRandom::new();
        random.fill(&mut key).ok()?;
        random.fill(&mut token).ok()?;
        let mut offered = self.offered.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        offered.retain(|_, (_, _, until)| *until > now);
        if offered.len() >= DOOR_PENDING {
            return None;
        }
        offered.insert(token, (peer, key, now + DOOR_WAIT));
        Some((key, token))
    }

    fn take(&self, token: &[u8; 16]) -> Option<(PeerId, Key)> {
        let mut offered = self.offered.lock().unwrap_or_else(|e| e.into_inner());
        offered
            .remove(token)
            .filter(|(_, _, until)| *until > Instant::now())
            .map(|(peer, key, _)| (peer, key))
    }
}

impl Shared {
    /// Whether `ip` is where one of our direct connections to a member comes from: the direct
    /// port answers no one else.
    fn member_at(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.members.borrow().others().flat_map(|m| &m.ips).any(|m| m.to_canonical() == ip)
    }

    /// Counts a stream from `peer`, if it is a member and within the limits.
    fn admit(&self, peer: PeerId) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let mine = *open.get(&peer).unwrap_or(&0);
        if mine >= STREAMS_PER_PEER || total >= STREAMS_TOTAL || !self.members.borrow().is_other(&peer) {
            tracing::debug!(%peer, "blob stream refused (not a member, or too many streams)");
            return false;
        }
        open.insert(peer, mine + 1);
        true
    }

    /// Serves an admitted stream from `peer` to its end.
    fn spawn(&self, peer: PeerId, channel: impl Channel + 'static) {
        let shared = self.clone();
        tokio::spawn(async move {
            let mut channel = channel;
            if let Err(e) = serve_stream(peer, &mut channel, &shared).await {
                tracing::debug!(%peer, "blob stream ended: {e:#}");
            }
            let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&peer);
                }
            }
        });
    }
}

/// Answers blob streams (and the direct channels they open, when `door` is a listener) until the
/// node stops.
pub(crate) async fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    door: Option<TcpListener>,
    catalog: watch::Receiver<Catalog>,
    members: Members,
    upload_limit: Option<u64>,
) {
    let rate = upload_limit.map(|l| Arc::new(Mutex::new(ByteRate::new(l, Instant::now()))));
    let port = door.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port());
    let offers = port.map(|port| Arc::new(Door { port, offered: Mutex::new(HashMap::new()) }));
    let shared = Shared { catalog, members, rate, open: Arc::default(), door: offers };
    if let Some(listener) = door {
        tokio::spawn(direct_loop(listener, shared.clone()));
    }
    while let Some((peer, stream)) = incoming.next().await {
        if shared.admit(peer) {
            shared.spawn(peer, stream);
        }
    }
}

/// Direct connections from members' addresses: each names its token, then speaks sealed.
async fn direct_loop(listener: TcpListener, shared: Shared) {
    let Some(door) = shared.door.clone() else { return };
    let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
    loop {
        let (mut tcp, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, say: the door stays open and tries again shortly.
            Err(e) => {
                tracing::warn!("direct transfer port: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !shared.member_at(from.ip()) {
            tracing::debug!(%from, "a direct connection from no member's address: closed");
            continue;
        }
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!(%from, "too many direct connections naming no token: closed");
            continue;
        };
        let (shared, door) = (shared.clone(), door.clone());
        tokio::spawn(async move {
            let mut token = [0u8; 16];
            let named = tokio::time::timeout(TOKEN_WAIT, tcp.read_exact(&mut token)).await;
            drop(handshake);
            let Some((peer, key)) = named.ok().and_then(Result::ok).and_then(|_| door.take(&token)) else {
                tracing::debug!(%from, "a direct connection without a valid token");
                return;
            };
            let _ = tcp.set_nodelay(true);
            if shared.admit(peer) {
                shared.spawn(peer, Sealed::new(tcp, &key, End::Server));
            }
        });
    }
}

async fn serve_stream(peer: PeerId, s: &mut impl Channel, shared: &Shared) -> anyhow::Result<()> {
    let mut files: Option<(ContentId, Files)> = None;
    while let Some(request) = stream::read_request(s, IDLE).await? {
        if !shared.members.borrow().is_other(&peer) {
            stream::write(s, &BlobAnswer::Refused("not a member of the party".into()).frame()).await?;
            return Ok(());
        }
        let catalog = shared.catalog.borrow().clone();
        let body = |id: &ContentId, pick: fn(&Served) -> &Vec<u8>| catalog.get(id).map(|c| pick(c).clone());
        match request {
            BlobRequest::Have { ids } => {
                let have = ids.iter().map(|id| catalog.contains_key(id)).collect();
                stream::write(s, &BlobAnswer::Have(have).frame()).await?;
            }
            BlobRequest::Manifest { id } => send_body(s, body(&id, |c| &c.manifest)).await?,
            BlobRequest::Pieces { id } => send_body(s, body(&id, |c| &c.pieces)).await?,
            BlobRequest::Direct => {
                let offer =
                    shared.door.as_ref().and_then(|d| d.offer(peer).map(|(key, token)| (d.port, key, token)));
                let answer = match offer {
                    Some((port, key, token)) => BlobAnswer::Direct { port, key, token },
                    None => BlobAnswer::Refused("no direct channel here".into()),
                };
                stream::write(s, &answer.frame()).await?;
            }
            BlobRequest::Range { id, first, count } => {
                let Some(served) = catalog.get(&id).cloned() else {
                    stream::write(s, &BlobAnswer::NotFound.frame()).await?;
                    continue;
                };
                let layout = served.tree.layout();
                let end = first.checked_add(u64::from(count)).filter(|&e| e <= layout.pieces() && count > 0);
                let len: u64 = (first..end.unwrap_or(first)).map(|p| layout.piece_len(p)).sum();
                if end.is_none() || len > MAX_RANGE_BYTES {
                    tracing::debug!(%peer, "refused a range that does not exist");
                    stream::write(s, &BlobAnswer::Refused("no such range".into()).frame()).await?;
                    return Ok(());
                }
                let end = end.unwrap_or(first);
                let touched = (first..end).flat_map(|p| layout.segments(p)).map(|seg| seg.entry);
                if !served.tree.intact(touched) {
                    tracing::warn!(content = %id, "shared files changed since they were shared; not serving them");
                    stream::write(s, &BlobAnswer::NotFound.frame()).await?;
                    continue;
                }
                let reused = files.take().filter(|(of, _)| *of == id).map(|(_, f)| f);
                let opened = reused.unwrap_or_else(|| served.tree.reader());
                stream::write(s, &BlobAnswer::Body { len }.frame()).await?;
                let opened = send_range(s, &served, first..end, opened, shared).await?;
                files = Some((id, opened));
            }
        }
    }
    Ok(())
}

async fn send_body(s: &mut impl Channel, body: Option<Vec<u8>>) -> anyhow::Result<()> {
    match body {
        Some(body) => {
            stream::write(s, &BlobAnswer::Body { len: body.len() as u64 }.frame()).await?;
            stream::write(s, &body).await
        }
        None => stream::write(s, &BlobAnswer::NotFound.frame()).await,
    }
}

/// Reads pieces on a blocking thread one ahead of the one being sent.
async fn send_range(
    s: &mut impl Channel,
    served: &Arc<Served>,
    pieces: std::ops::Range<u64>,
    files: Files,
    shared: &Shared,
) -> anyhow::Result<Files> {
    let read = |served: Arc<Served>, mut files: Files, piece: u64, mut buf: Vec<u8>| {
        tokio::task::spawn_blocking(move || {
            let result = served.tree.read_piece(&mut files, piece, &mut buf);
            (files, buf, result)
        })
    };
    let mut next = Some(read(served.clone(), files, pieces.start, Vec::new()));
    let mut spare = Vec::new();
    let mut piece = pieces.start;
    loop {
        let (files, buf, result) = next.take().expect("a read is under way").await?;
        result?;
        piece += 1;
        if piece < pieces.end {
            next = Some(read(served.clone(), files, piece, std::mem::take(&mut spare)));
        } else {
            // Nothing left to read: send the last piece and hand the open files back.
            send_paced(s, &buf, shared).await?;
            return Ok(files);
        }
        send_paced(s, &buf, shared).await?;
        spare = buf;
    }
}

async fn send_paced(s: &mut impl Channel, bytes: &[u8], shared: &Shared) -> anyhow::Result<()> {
    for chunk in bytes.chunks(PACE_CHUNK) {
        if let Some(rate) = &shared.rate {
            let wait =
                rate.lock().unwrap_or_else(|e| e.into_inner()).reserve(chunk.len() as u64, Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        stream::write(s, chunk).await?;
    }
    Ok(())
}
