//! Voice frames between members, over libp2p streams on `/partyline/voice/1`: the path to members
//! that are not reached directly (through a relay), and whenever a datagram path (`voice_dgram`)
//! is not there.
//!
//! libp2p's QUIC offers no unreliable datagrams, and one ordered stream stalls behind every lost
//! packet until it is retransmitted. So each member's frames are spread round-robin over several
//! streams (frame `seq` goes on stream `seq % K`): a loss holds up only the frames on its own
//! stream, and the next frame, on another stream, usually arrives in time to carry the forward
//! error correction for the one stuck behind it. Frames that waited too long to be written are
//! dropped (a per-frame deadline), and the receiver's jitter buffer drops what comes too late.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use partyline_protocol::voice::voice_frame_len;
use tokio::sync::mpsc;

pub(crate) use crate::rate::PeerBuckets;
use crate::voice::Inbound;

pub const VOICE_PROTOCOL: StreamProtocol = StreamProtocol::new(partyline_protocol::names::VOICE);

/// A frame older than this when its turn to be written comes is dropped: it would arrive too late.
const DEADLINE: Duration = Duration::from_millis(150);
/// Frames waiting per stream.
const QUEUE: usize = 8;
/// Inbound voice streams per member (K streams, with room for reopened ones) and in all. Streams
/// from peers that are not members are refused at once.
const READERS_PER_PEER: usize = 16;
const READERS_TOTAL: usize = 512;
/// What one peer may send over all its voice streams together: 20 ms frames are 50 a second,
/// 10 ms ones 100. A flood beyond is dropped at its streams and cannot crowd out other members.
const PEER_BURST: u32 = 150;
const PEER_PER_SEC: f64 = 120.0;

/// Counters of the voice path, shown by `/stats`.
#[derive(Default, Debug)]
pub(crate) struct VoiceCounters {
    pub(crate) frames_in: AtomicU64,
    /// Frames sent and received as datagrams (see `voice_dgram`).
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) dropped_stale: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_inbound: AtomicU64,
    pub(crate) refused: AtomicU64,
}

/// Each peer's voice rate limit, shared by all its streams and its datagrams.
pub(crate) fn voice_budget() -> PeerBuckets {
    PeerBuckets::new(PEER_BURST, PEER_PER_SEC)
}

struct Outgoing {
    bytes: Arc<[u8]>,
    created: Instant,
}

/// The members whose voice streams are accepted (the peers this node sends its voice to).
type Allowed = Arc<Mutex<HashSet<PeerId>>>;

pub(crate) struct VoiceLinks {
    control: libp2p_stream::Control,
    streams: usize,
    peers: HashMap<PeerId, Vec<mpsc::Sender<Outgoing>>>,
    allowed: Allowed,
    pub(crate) counters: Arc<VoiceCounters>,
}

impl VoiceLinks {
    pub(crate) fn new(
        mut control: libp2p_stream::Control,
        streams: usize,
        inbound: SyncSender<Inbound>,
        buckets: PeerBuckets,
        counters: Arc<VoiceCounters>,
    ) -> Self {
        let incoming = control.accept(VOICE_PROTOCOL).expect("the voice protocol is registered once");
        let allowed = Allowed::default();
        tokio::spawn(accept_loop(incoming, allowed.clone(), inbound, buckets, counters.clone()));
        Self { control, streams, peers: HashMap::new(), allowed, counters }
    }

    /// Starts sending our voice to `peer`.
    pub(crate) fn add_peer(&mut self, peer: PeerId) {
        if self.peers.contains_key(&peer) {
            return;
        }
        self.allowed.lock().unwrap_or_else(|e| e.into_inner()).insert(peer);
        let queues = (0..self.streams)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(write_loop(peer, self.control.clone(), rx, self.counters.clone()));
                tx
            })
            .collect();
        self.peers.insert(peer, queues);
    }

    pub(crate) fn remove_peer(&mut self, peer: &PeerId) {
        // Dropping the senders ends the writer tasks and closes their streams.
        self.peers.remove(peer);
        self.allowed.lock().unwrap_or_else(|e| e.into_inner()).remove(peer);
    }

    /// Queues frame `seq` for every member but those `elsewhere` sent it to another way.
    pub(crate) fn send(
        &self,
        seq: u32,
        bytes: Arc<[u8]>,
        created: Instant,
        elsewhere: impl Fn(&PeerId) -> bool,
    ) {
        for (peer, queues) in &self.peers {
            if elsewhere(peer) {
                continue;
            }
            let queue = &queues[seq as usize % queues.len()];
            if queue.try_send(Outgoing { bytes: bytes.clone(), created }).is_err() {
                self.counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn write_loop(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut rx: mpsc::Receiver<Outgoing>,
    counters: Arc<VoiceCounters>,
) {
    let mut backoff = Duration::from_millis(100);
    'open: loop {
        let mut stream = loop {
            match control.open_stream(peer, VOICE_PROTOCOL).await {
                Ok(stream) => break stream,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "cannot open a voice stream");
                    // Frames queued meanwhile are stale by the time a stream opens.
                    while let Ok(_stale) = rx.try_recv() {
                        counters.dropped_stale.fetch_add(1, Ordering::Relaxed);
                    }
                    if rx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        backoff = Duration::from_millis(100);
        while let Some(frame) = rx.recv().await {
            if frame.created.elapsed() > DEADLINE {
                counters.dropped_stale.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if stream.write_all(&frame.bytes).await.is_err() || stream.flush().await.is_err() {
                // Refused (say, the peer has not heard we are a member yet): try again shortly.
                tokio::time::sleep(backoff).await;
                continue 'open;
            }
        }
        let _ = stream.close().await;
        return;
    }
}

/// Per peer: its open voice streams.
type Readers = Arc<Mutex<HashMap<PeerId, usize>>>;

async fn accept_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    allowed: Allowed,
    inbound: SyncSender<Inbound>,
    buckets: PeerBuckets,
    counters: Arc<VoiceCounters>,
) {
    let readers: Readers = Arc::default();
    while let Some((peer, stream)) = incoming.next().await {
        if !allowed.lock().unwrap_or_else(|e| e.into_inner()).contains(&peer) {
            tracing::debug!(%peer, "a voice stream from a non-member; refused");
            counters.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        {
            let mut readers = readers.lock().unwrap_or_else(|e| e.into_inner());
            let total: usize = readers.values().sum();
            let count = readers.entry(peer).or_insert(0);
            if *count >= READERS_PER_PEER || total >= READERS_TOTAL {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            *count += 1;
        }
        let (inbound, counters, readers, buckets) =
            (inbound.clone(), counters.clone(), readers.clone(), buckets.clone());
        tokio::spawn(async move {
            read_loop(peer, stream, &buckets, &inbound, &counters).await;
            let mut readers = readers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = readers.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    readers.remove(&peer);
                }
            }
        });
    }
}

/// Reads frames off one voice stream into the voice thread's queue. Malformed lengths end the
/// stream; a frame that does not fit the queue, or exceeds the peer's rate, is dropped.
async fn read_loop(
    peer: PeerId,
    mut stream: Stream,
    buckets: &PeerBuckets,
    inbound: &SyncSender<Inbound>,
    counters: &VoiceCounters,
) {
    loop {
        let mut header = [0u8; 2];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let Ok(len) = voice_frame_len(header) else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut bytes = vec![0u8; len];
        if stream.read_exact(&mut bytes).await.is_err() {
            return;
        }
        let arrival = Instant::now();
        counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let allowed = buckets.take(peer, arrival);
        if !allowed || inbound.try_send(Inbound { peer, bytes, arrival }).is_err() {
            counters.dropped_inbound.fetch_add(1, Ordering::Relaxed);
        }
    }
}
