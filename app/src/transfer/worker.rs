//! One provider's worker: it opens a stream to the provider, asks for a direct sealed channel
//! and uses it if it can reach it, then pulls runs of pieces, hashes each as it arrives and hands
//! it to the writer.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use libp2p::PeerId;
use partyline_protocol::blobs::{BlobAnswer, BlobRequest};
use partyline_protocol::content::{ContentId, Layout, PieceHash, piece_hash};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::channel::{Channel, End, Sealed};
use super::sched::Sched;
use super::writer::{Buffers, Piece, ToWriter};
use super::{BLOBS_PROTOCOL, stream};

/// Requests outstanding per provider.
const PIPELINE: usize = 2;

/// A provider, and how to reach it.
pub(crate) struct Provider {
    pub(crate) peer: PeerId,
    /// Where it can be reached directly (empty: libp2p streams only).
    pub(crate) ips: Vec<IpAddr>,
    pub(crate) control: libp2p_stream::Control,
}

/// How long to wait for a direct connection to a provider before using libp2p.
const DIRECT_CONNECT: Duration = Duration::from_secs(2);

/// Asks `provider` for a direct sealed channel over `s`, and opens it; `None` if it offers none
/// or cannot be reached that way.
async fn open_direct(s: &mut libp2p::Stream, provider: &Provider) -> Option<Sealed> {
    stream::write(s, &BlobRequest::Direct.frame()).await.ok()?;
    let BlobAnswer::Direct { port, key, token } = stream::read_answer(s).await.ok()? else { return None };
    for ip in &provider.ips {
        let connect = tokio::net::TcpStream::connect((*ip, port));
        let Ok(Ok(mut tcp)) = tokio::time::timeout(DIRECT_CONNECT, connect).await else { continue };
        let _ = tcp.set_nodelay(true);
        if tcp.write_all(&token).await.is_ok() {
            tracing::debug!(peer = %provider.peer, %ip, port, "direct channel open");
            return Some(Sealed::new(tcp, &key, End::Asker));
        }
    }
    None
}

/// Pulls runs of pieces from one provider into the writer until nothing is left to claim: over
/// a direct sealed channel if it offers one we can reach, else over the libp2p stream.
/// Where a worker's pieces go: checked against `hashes`, into the writer's queue, in buffers it
/// gives back.
pub(crate) struct Pipe {
    pub(crate) tx: mpsc::Sender<ToWriter>,
    pub(crate) buffers: Buffers,
    pub(crate) hashes: Arc<Vec<PieceHash>>,
}

pub(crate) async fn worker(
    provider: Provider,
    id: ContentId,
    sched: Arc<Mutex<Sched>>,
    layout: Layout,
    writer: Pipe,
) -> (PeerId, Result<()>) {
    let peer = provider.peer;
    let result = async {
        let mut s = provider.control.clone().open_stream(peer, BLOBS_PROTOCOL).await?;
        if !provider.ips.is_empty()
            && let Some(mut sealed) = open_direct(&mut s, &provider).await
        {
            sched.lock().unwrap_or_else(|e| e.into_inner()).direct.insert(peer);
            return pull_ranges(&mut sealed, peer, id, &sched, &layout, &writer).await;
        }
        pull_ranges(&mut s, peer, id, &sched, &layout, &writer).await
    }
    .await;
    sched.lock().unwrap_or_else(|e| e.into_inner()).release(peer);
    (peer, result)
}

async fn pull_ranges(
    s: &mut impl Channel,
    peer: PeerId,
    id: ContentId,
    sched: &Mutex<Sched>,
    layout: &Layout,
    writer: &Pipe,
) -> Result<()> {
    let lock = || sched.lock().unwrap_or_else(|e| e.into_inner());
    let mut pending: VecDeque<Range<u64>> = VecDeque::new();
    loop {
        while pending.len() < PIPELINE {
            let Some(range) = lock().claim(peer) else { break };
            let count = (range.end - range.start) as u32;
            stream::write(s, &BlobRequest::Range { id, first: range.start, count }.frame()).await?;
            pending.push_back(range);
        }
        let Some(range) = pending.pop_front() else { return Ok(()) };
        let expected: u64 = range.clone().map(|p| layout.piece_len(p)).sum();
        match stream::read_answer(s).await? {
            BlobAnswer::Body { len } if len == expected => {}
            BlobAnswer::Busy => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bail!("busy");
            }
            other => bail!("answered {other:?} for pieces {range:?}"),
        }
        for piece in range {
            let mut bytes = writer.buffers.take(layout.piece_len(piece) as usize);
            stream::read_body(s, &mut bytes).await?;
            if lock().is_dropped(&peer) {
                bail!("dropped");
            }
            let matches = writer.hashes.get(piece as usize).is_some_and(|h| *h == piece_hash(&bytes));
            lock().delivered(piece, peer);
            writer.tx.send(ToWriter::Piece(Piece { index: piece, from: peer, bytes, matches })).await?;
        }
    }
}
