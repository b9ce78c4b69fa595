//! Serving content to party members: answers `/partyline/blobs/1` requests from the catalog of
//! whole content the engine publishes. Only current members are served; each peer gets a few
//! streams at most; what leaves is paced to the upload limit; a file that changed since it was
//! shared is not served (the asker would only find the pieces wrong).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::{PeerId, Stream};
use partyline_protocol::ContentId;
use partyline_protocol::blobs::{BlobAnswer, BlobRequest, MAX_RANGE_BYTES};
use tokio::sync::watch;

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

/// Whole content this node serves, with what it answers for it.
pub(crate) struct Served {
    pub(crate) tree: Tree,
    pub(crate) manifest: Vec<u8>,
    pub(crate) pieces: Vec<u8>,
}

pub(crate) type Catalog = Arc<HashMap<ContentId, Arc<Served>>>;

#[derive(Default, Debug)]
pub(crate) struct ServeCounters {
    pub(crate) bytes_out: AtomicU64,
    pub(crate) refused: AtomicU64,
}

#[derive(Clone)]
struct Shared {
    catalog: watch::Receiver<Catalog>,
    members: watch::Receiver<Members>,
    rate: Option<Arc<Mutex<ByteRate>>>,
    counters: Arc<ServeCounters>,
    open: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// Answers blob streams until the node stops.
pub(crate) async fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    catalog: watch::Receiver<Catalog>,
    members: watch::Receiver<Members>,
    upload_limit: Option<u64>,
    counters: Arc<ServeCounters>,
) {
    let rate = upload_limit.map(|l| Arc::new(Mutex::new(ByteRate::new(l, Instant::now()))));
    let shared = Shared { catalog, members, rate, counters, open: Arc::default() };
    while let Some((peer, stream)) = incoming.next().await {
        {
            let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
            let total: usize = open.values().sum();
            let mine = open.entry(peer).or_default();
            if *mine >= STREAMS_PER_PEER || total >= STREAMS_TOTAL || !shared.members.borrow().contains(&peer)
            {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            *mine += 1;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_stream(peer, stream, &shared).await {
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

async fn serve_stream(peer: PeerId, mut s: Stream, shared: &Shared) -> anyhow::Result<()> {
    let mut files: Option<(ContentId, Files)> = None;
    while let Some(request) = stream::read_request(&mut s, IDLE).await? {
        if !shared.members.borrow().contains(&peer) {
            stream::write(&mut s, &BlobAnswer::Refused("not a member of the party".into()).frame()).await?;
            return Ok(());
        }
        let catalog = shared.catalog.borrow().clone();
        let body = |id: &ContentId, pick: fn(&Served) -> &Vec<u8>| catalog.get(id).map(|c| pick(c).clone());
        match request {
            BlobRequest::Have { ids } => {
                let have = ids.iter().map(|id| catalog.contains_key(id)).collect();
                stream::write(&mut s, &BlobAnswer::Have(have).frame()).await?;
            }
            BlobRequest::Manifest { id } => send_body(&mut s, body(&id, |c| &c.manifest)).await?,
            BlobRequest::Pieces { id } => send_body(&mut s, body(&id, |c| &c.pieces)).await?,
            BlobRequest::Range { id, first, count } => {
                let Some(served) = catalog.get(&id).cloned() else {
                    stream::write(&mut s, &BlobAnswer::NotFound.frame()).await?;
                    continue;
                };
                let layout = served.tree.layout();
                let end = first.checked_add(u64::from(count)).filter(|&e| e <= layout.pieces() && count > 0);
                let len: u64 = (first..end.unwrap_or(first)).map(|p| layout.piece_len(p)).sum();
                if end.is_none() || len > MAX_RANGE_BYTES {
                    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                    stream::write(&mut s, &BlobAnswer::Refused("no such range".into()).frame()).await?;
                    return Ok(());
                }
                let end = end.unwrap_or(first);
                let touched = (first..end).flat_map(|p| layout.segments(p)).map(|seg| seg.entry);
                if !served.tree.intact(touched) {
                    tracing::warn!(content = %id, "shared files changed since they were shared; not serving them");
                    stream::write(&mut s, &BlobAnswer::NotFound.frame()).await?;
                    continue;
                }
                let reused = files.take().filter(|(of, _)| *of == id).map(|(_, f)| f);
                let opened = reused.unwrap_or_else(|| served.tree.reader());
                stream::write(&mut s, &BlobAnswer::Body { len }.frame()).await?;
                let opened = send_range(&mut s, &served, first..end, opened, shared).await?;
                files = Some((id, opened));
            }
        }
    }
    Ok(())
}

async fn send_body(s: &mut Stream, body: Option<Vec<u8>>) -> anyhow::Result<()> {
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
    s: &mut Stream,
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

async fn send_paced(s: &mut Stream, bytes: &[u8], shared: &Shared) -> anyhow::Result<()> {
    for chunk in bytes.chunks(PACE_CHUNK) {
        if let Some(rate) = &shared.rate {
            let wait =
                rate.lock().unwrap_or_else(|e| e.into_inner()).reserve(chunk.len() as u64, Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        stream::write(s, chunk).await?;
        shared.counters.bytes_out.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}
