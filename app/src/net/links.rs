//! Party streams between peers.
//!
//! Each direction of a pair of peers has its own one-way stream on the `/partyline/party/1`
//! protocol: this node *writes* on the stream it opened to a peer and *reads* the stream the peer
//! opened to it. One writer task per peer owns the outbound stream and a bounded queue; it reopens
//! the stream (dialing if needed) while the peer stays linked. One reader task per inbound stream
//! decodes frames, drops and counts what is oversize, malformed or over the rate limit, and hands
//! the rest to the event loop. An open stream also keeps its connection alive: party members stay
//! connected for as long as they are linked.
//!
//! Peers this node is not linked to (joiners, strangers) get a small budget of their own: two
//! streams each, [`STRANGER_TOTAL`] in all (two per connection taken in), and each is closed after [`STRANGER_TTL`] unless the
//! peer became linked meanwhile (admitted). Strangers cannot take the members' streams.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use partyline_protocol::wire::{self, Message, WireError};
use tokio::sync::mpsc;

use crate::rate::TokenBucket;
use crate::stats::Counters;

pub const PARTY_PROTOCOL: StreamProtocol = StreamProtocol::new(partyline_protocol::names::PARTY);

/// Messages queued for one peer before it counts as too slow and the message is dropped.
const WRITER_QUEUE: usize = 256;
/// A write that makes no progress this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Inbound streams per linked peer, and in all: each reader holds at most one frame in memory.
const READERS_PER_PEER: usize = 4;
const READERS_TOTAL: usize = 256;
/// Inbound streams per peer this node is not linked to, and in all such peers: as many as the
/// connections the swarm takes in may open, so that strangers run out of connections (which
/// libp2p caps) before they run out of streams, and a joiner's stream always finds room.
const STRANGER_STREAMS: usize = 2;
const STRANGER_TOTAL: usize = STRANGER_STREAMS * super::swarm::MAX_ESTABLISHED_INCOMING as usize;
/// How long a stream from a peer that is not linked stays open: enough to ask to join and hear
/// the answer.
const STRANGER_TTL: Duration = Duration::from_secs(10);
/// What one inbound stream may send: a burst of 200 messages, then 100 a second.
const READ_BURST: u32 = 200;
const READ_PER_SEC: f64 = 100.0;
/// How long a migrating writer waits before opening its new stream, so that the old connection
/// is closed by then and the new stream lands on the remaining one.
pub(crate) const MIGRATE_PAUSE: Duration = Duration::from_millis(1500);
/// Retry delays for opening a stream to an unreachable peer.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Garbage in a row after which a stream is closed.
const MALFORMED_STREAK: u32 = 32;

/// What the link tasks report to the event loop.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    Message {
        peer: PeerId,
        msg: Message,
    },
    /// A writer could not open its stream (the peer is unreachable or refused).
    OpenFailed {
        peer: PeerId,
        error: String,
    },
    /// A writer was unlinked and has sent everything that was queued.
    Flushed {
        peer: PeerId,
    },
}

enum WriterCmd {
    Send(Message),
    /// Finish the current stream cleanly and open a new one after [`MIGRATE_PAUSE`]: the
    /// connection it runs on is about to be closed (a direct one replaced a relayed one).
    Migrate,
    Close,
}

struct Writer {
    tx: mpsc::Sender<WriterCmd>,
    /// Set when unlinked: the writer stops retrying to open its stream.
    unlinked: Arc<AtomicBool>,
}

/// The peers this node has writers to (the only ones whose streams are members' streams).
type Linked = Arc<Mutex<HashSet<PeerId>>>;

pub(crate) struct Links {
    control: libp2p_stream::Control,
    writers: HashMap<PeerId, Writer>,
    linked: Linked,
    events: mpsc::Sender<LinkEvent>,
    counters: Arc<Counters>,
}

impl Links {
    /// Starts accepting inbound party streams.
    pub(crate) fn new(
        mut control: libp2p_stream::Control,
        events: mpsc::Sender<LinkEvent>,
        counters: Arc<Counters>,
    ) -> Self {
        let incoming = control.accept(PARTY_PROTOCOL).expect("the party protocol is registered once");
        let linked = Linked::default();
        tokio::spawn(accept_loop(incoming, linked.clone(), events.clone(), counters.clone()));
        Self { control, writers: HashMap::new(), linked, events, counters }
    }

    pub(crate) fn is_linked(&self, peer: &PeerId) -> bool {
        self.writers.contains_key(peer)
    }

    /// Makes sure a writer to `peer` exists.
    pub(crate) fn link(&mut self, peer: PeerId) {
        if self.writers.get(&peer).is_some_and(|w| !w.tx.is_closed()) {
            return;
        }
        tracing::debug!(%peer, "linking");
        lock(&self.linked).insert(peer);
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let unlinked = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(peer, self.control.clone(), rx, self.events.clone(), unlinked.clone()));
        self.writers.insert(peer, Writer { tx, unlinked });
    }

    /// Queues `msg` for `peer`, linking it first if needed.
    pub(crate) fn send(&mut self, peer: PeerId, msg: Message) {
        self.link(peer);
        let writer = &self.writers[&peer];
        if writer.tx.try_send(WriterCmd::Send(msg)).is_err() {
            tracing::warn!(%peer, "peer is not keeping up; dropped a message to it");
            Counters::bump(&self.counters.dropped_outbound);
        }
    }

    /// Moves `peer`'s stream off a connection that is about to close (see [`WriterCmd::Migrate`]).
    pub(crate) fn migrate(&mut self, peer: PeerId) {
        if let Some(writer) = self.writers.get(&peer) {
            let _ = writer.tx.try_send(WriterCmd::Migrate);
        }
    }

    /// Flushes what is queued for `peer`, then closes its stream.
    pub(crate) fn unlink(&mut self, peer: PeerId) {
        if let Some(writer) = self.writers.remove(&peer) {
            lock(&self.linked).remove(&peer);
            writer.unlinked.store(true, Ordering::Relaxed);
            // If the queue is full the writer is stuck anyway; dropping the sender ends it.
            let _ = writer.tx.try_send(WriterCmd::Close);
        }
    }

    pub(crate) fn unlink_all(&mut self) {
        let peers: Vec<PeerId> = self.writers.keys().copied().collect();
        for peer in peers {
            self.unlink(peer);
        }
    }
}

async fn write_loop(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut rx: mpsc::Receiver<WriterCmd>,
    events: mpsc::Sender<LinkEvent>,
    unlinked: Arc<AtomicBool>,
) {
    let mut backoff = MIN_BACKOFF;
    // A frame whose write failed is written again on the next stream: party messages are
    // idempotent (snapshots, numbered chat, nonces), so at-least-once is safe.
    let mut unsent: Option<Vec<u8>> = None;
    loop {
        let mut stream = match control.open_stream(peer, PARTY_PROTOCOL).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot open party stream");
                let _ = events.send(LinkEvent::OpenFailed { peer, error: e.to_string() }).await;
                if unlinked.load(Ordering::Relaxed) {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        loop {
            let frame = match unsent.take() {
                Some(frame) => frame,
                None => match rx.recv().await {
                    Some(WriterCmd::Send(msg)) => wire::frame(&msg),
                    Some(WriterCmd::Migrate) => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), stream.close()).await;
                        tokio::time::sleep(MIGRATE_PAUSE).await;
                        break;
                    }
                    Some(WriterCmd::Close) => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), stream.close()).await;
                        let _ = events.send(LinkEvent::Flushed { peer }).await;
                        return;
                    }
                    None => return,
                },
            };
            let write = async {
                stream.write_all(&frame).await?;
                stream.flush().await
            };
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "party stream broke; reopening");
                    unsent = Some(frame);
                    break;
                }
                Err(_) => {
                    tracing::debug!(%peer, "party stream stalled; reopening");
                    unsent = Some(frame);
                    break;
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inbound readers per peer, members' and strangers' apart, to cap them.
#[derive(Default)]
struct ReaderCounts {
    members: HashMap<PeerId, usize>,
    strangers: HashMap<PeerId, usize>,
}

impl ReaderCounts {
    /// Counts a new reader for `peer` if its budget allows.
    fn take(&mut self, peer: PeerId, stranger: bool) -> bool {
        let (counts, per_peer, total) = if stranger {
            (&mut self.strangers, STRANGER_STREAMS, STRANGER_TOTAL)
        } else {
            (&mut self.members, READERS_PER_PEER, READERS_TOTAL)
        };
        let all: usize = counts.values().sum();
        let mine = counts.entry(peer).or_default();
        if *mine >= per_peer || all >= total {
            if *mine == 0 {
                counts.remove(&peer);
            }
            return false;
        }
        *mine += 1;
        true
    }

    /// A stranger's reader becomes a member's (it may go past the member's cap by one).
    fn promote(&mut self, peer: PeerId) {
        self.give_back(peer, true);
        *self.members.entry(peer).or_default() += 1;
    }

    fn give_back(&mut self, peer: PeerId, stranger: bool) {
        let counts = if stranger { &mut self.strangers } else { &mut self.members };
        if let Some(n) = counts.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&peer);
            }
        }
    }
}

async fn accept_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    linked: Linked,
    events: mpsc::Sender<LinkEvent>,
    counters: Arc<Counters>,
) {
    let readers: Arc<Mutex<ReaderCounts>> = Arc::default();
    while let Some((peer, stream)) = incoming.next().await {
        let stranger = !lock(&linked).contains(&peer);
        if !lock(&readers).take(peer, stranger) {
            tracing::debug!(%peer, stranger, "too many party streams; refused one");
            Counters::bump(&counters.streams_refused);
            continue;
        }
        let (events, counters, readers, linked) =
            (events.clone(), counters.clone(), readers.clone(), linked.clone());
        tokio::spawn(async move {
            let reading = read_loop(peer, stream, &events, &counters);
            tokio::pin!(reading);
            if stranger {
                tokio::select! {
                    () = &mut reading => return lock(&readers).give_back(peer, true),
                    () = tokio::time::sleep(STRANGER_TTL) => {}
                }
                if !lock(&linked).contains(&peer) {
                    tracing::debug!(%peer, "a stranger's party stream timed out");
                    Counters::bump(&counters.streams_refused);
                    return lock(&readers).give_back(peer, true);
                }
                // Admitted meanwhile: a member's stream from now on.
                lock(&readers).promote(peer);
            }
            reading.await;
            lock(&readers).give_back(peer, false);
        });
    }
}

async fn read_loop(peer: PeerId, mut stream: Stream, events: &mpsc::Sender<LinkEvent>, counters: &Counters) {
    let mut bucket = TokenBucket::new(READ_BURST, READ_PER_SEC, Instant::now());
    let mut malformed_streak = 0;
    let mut buf = Vec::new();
    loop {
        let mut header = [0u8; 4];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = match wire::frame_len(header) {
            Ok(len) => len,
            Err(WireError::Oversize { len }) => {
                // The frame cannot be skipped without reading it: close the stream.
                tracing::debug!(%peer, len, "oversize frame; closing the stream");
                Counters::bump(&counters.dropped_oversize);
                return;
            }
            Err(_) => {
                Counters::bump(&counters.dropped_malformed);
                continue;
            }
        };
        buf.resize(len, 0);
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        Counters::bump(&counters.frames_in);
        if !bucket.take(Instant::now()) {
            Counters::bump(&counters.dropped_rate_limited);
            continue;
        }
        match wire::decode(&buf) {
            Ok(msg) => {
                malformed_streak = 0;
                if events.send(LinkEvent::Message { peer, msg }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "dropped a malformed message");
                Counters::bump(&counters.dropped_malformed);
                malformed_streak += 1;
                if malformed_streak >= MALFORMED_STREAK {
                    return;
                }
            }
        }
        buf.clear();
        buf.shrink_to(1024);
    }
}
