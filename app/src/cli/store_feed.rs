//! `partyline store-feed DIR`: serves a store feed (STORE-FEED.md) for the game folders in `DIR`,
//! so a community can offer a catalog whose content ids pin every byte of each game (members
//! then fetch the games from each other). Each folder is hashed once at start; an optional
//! `DIR/store.toml` gives versions and descriptions. A small HTTP/1.1 server: `GET /feed.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::output::Printer;

/// Connections served at once; more wait.
const CONNECTIONS: usize = 64;
/// A request must arrive whole within this, and be at most this long.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST: usize = 8 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreToml {
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    games: BTreeMap<String, GameToml>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct GameToml {
    #[serde(default)]
    version: String,
    #[serde(default)]
    description: String,
}

/// The feed for the game folders in `dir`.
pub(crate) fn feed(dir: &Path, name: Option<&str>) -> Result<serde_json::Value> {
    let extra: StoreToml = match std::fs::read_to_string(dir.join("store.toml")) {
        Ok(text) => toml::from_str(&text).context("bad store.toml")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreToml::default(),
        Err(e) => return Err(e).context("cannot read store.toml"),
    };
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    folders.sort();
    let mut games = Vec::new();
    for folder in folders {
        let (manifest, _) = crate::transfer::describe(&folder)?;
        let info = extra.games.get(manifest.name()).cloned().unwrap_or_default();
        games.push(json!({
            "name": manifest.name(), "version": info.version, "id": manifest.id().to_string(),
            "size": manifest.total(), "description": info.description,
        }));
    }
    let store = name.map(str::to_owned).or(extra.store).unwrap_or_else(|| "Store".to_owned());
    Ok(json!({"store": store, "games": games}))
}

pub(crate) async fn run(dir: &Path, port: u16, name: Option<&str>, printer: Printer) -> Result<ExitCode> {
    let dir_owned = dir.to_owned();
    let name_owned = name.map(str::to_owned);
    let feed = tokio::task::spawn_blocking(move || feed(&dir_owned, name_owned.as_deref())).await??;
    let body: Arc<[u8]> = feed.to_string().into_bytes().into();
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on port {port}"))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}/feed.json");
    let games = feed["games"].as_array().map_or(0, Vec::len);
    if printer.is_json() {
        printer.raw(&json!({"event": "store-feed", "url": url, "games": games}).to_string());
    } else {
        printer.help(&format!("serving {games} game(s) at {url}"));
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    loop {
        let (stream, _) = listener.accept().await?;
        let permit = slots.clone().acquire_owned().await?;
        let body = body.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &body).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, feed: &[u8]) -> Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(READ_TIMEOUT, async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        anyhow::Ok(())
    })
    .await??;
    let line = String::from_utf8_lossy(&request);
    let first = line.lines().next().unwrap_or_default();
    let (status, body): (&str, &[u8]) = match first.split_whitespace().collect::<Vec<_>>()[..] {
        ["GET", "/feed.json", _] => ("200 OK", feed),
        [_, _, _] => ("404 Not Found", b"{\"error\":\"not found\"}"),
        _ => ("400 Bad Request", b"{\"error\":\"bad request\"}"),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_lists_each_game_folder_with_its_content_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("Alpha/data")).unwrap();
        std::fs::write(dir.path().join("Alpha/data/a.bin"), vec![1u8; 5000]).unwrap();
        std::fs::create_dir_all(dir.path().join("Beta")).unwrap();
        std::fs::write(dir.path().join("Beta/b.bin"), b"beta").unwrap();
        std::fs::write(dir.path().join("store.toml"), "store = \"Club\"\n[games.Alpha]\nversion = \"1.2\"\n")
            .unwrap();
        let feed = feed(dir.path(), None).unwrap();
        assert_eq!(feed["store"], "Club");
        let games = feed["games"].as_array().unwrap();
        assert_eq!(games.len(), 2);
        assert_eq!((games[0]["name"].as_str(), games[0]["version"].as_str()), (Some("Alpha"), Some("1.2")));
        assert_eq!(games[0]["size"], 5000);
        let id = crate::transfer::describe(&dir.path().join("Alpha")).unwrap().0.id();
        assert_eq!(games[0]["id"], id.to_string());
    }
}
