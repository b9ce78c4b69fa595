//! A hostile peer connects to a party's host and sends garbage, oversize frames, messages it may not
//! send, floods, and too many streams. The host drops and counts all of it, stays up, keeps its
//! memory bounded, and the party goes on.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, Stream, SwarmBuilder, noise, tcp, yamux};
use partyline::net::PARTY_PROTOCOL;
use partyline_protocol::wire::{self, Message};
use partyline_protocol::{JoinLink, PartyId};
use partyline_tests::{host, join};
use serde_json::Value;

/// A libp2p node of our own that speaks the party protocol badly.
struct Attacker {
    control: libp2p_stream::Control,
    redial: tokio::sync::mpsc::UnboundedSender<()>,
    runtime: tokio::runtime::Runtime,
}

impl Attacker {
    fn connect(target: Multiaddr) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (redial, mut redials) = tokio::sync::mpsc::unbounded_channel::<()>();
        let control = runtime.block_on(async {
            let mut swarm = SwarmBuilder::with_new_identity()
                .with_tokio()
                .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
                .unwrap()
                .with_quic()
                .with_behaviour(|_| libp2p_stream::Behaviour::new())
                .unwrap()
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
                .build();
            let control = swarm.behaviour().new_control();
            swarm.dial(target.clone()).unwrap();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = swarm.select_next_some() => {}
                        Some(()) = redials.recv() => drop(swarm.dial(target.clone())),
                    }
                }
            });
            control
        });
        Self { control, redial, runtime }
    }

    /// A new party stream to the host, dialing it again if it hung up on us (as it may).
    fn open(&self, peer: PeerId) -> Stream {
        let mut control = self.control.clone();
        let redial = self.redial.clone();
        self.runtime.block_on(async move {
            let mut last = None;
            for _ in 0..50 {
                match control.open_stream(peer, PARTY_PROTOCOL).await {
                    Ok(stream) => return stream,
                    Err(e) => last = Some(e),
                }
                let _ = redial.send(());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("cannot open a party stream to the host: {last:?}");
        })
    }

    /// Writes `frames` on a new stream (stopping quietly if the host closes it).
    fn send(&self, peer: PeerId, frames: impl IntoIterator<Item = Vec<u8>>) {
        let mut stream = self.open(peer);
        self.runtime.block_on(async move {
            for frame in frames {
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = stream.flush().await;
            // Give the host time to read before the stream goes away.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = stream.close().await;
        });
    }

    /// Opens `n` streams at once and sees how many the host keeps open.
    fn open_many(&self, peer: PeerId, n: usize) -> usize {
        let streams: Vec<Stream> = (0..n).map(|_| self.open(peer)).collect();
        self.runtime.block_on(async move {
            let mut alive = 0;
            for mut s in streams {
                let mut buf = [0u8; 1];
                // A refused stream is reset at once; an accepted one stays open with nothing to read.
                if tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await.is_err() {
                    alive += 1;
                }
            }
            alive
        })
    }
}

struct DumpOnPanic(std::path::PathBuf);
impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("HOST STDERR:\n{}", std::fs::read_to_string(&self.0).unwrap_or_default());
        }
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn stats(p: &mut partyline_tests::Proc) -> Value {
    p.send("/stats");
    p.wait_event(Duration::from_secs(5), "stats")
}

fn count(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or_else(|| panic!("no {key} in {stats}"))
}

#[test]
fn hostile_peer_is_dropped_and_counted_and_the_party_goes_on() {
    let (mut alice, link) = host("alice", &[]);
    let mut bob = join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(10), "joined");
    let owner = link.parse::<JoinLink>().unwrap().owner();
    let listening = alice.seen().into_iter().rev().find(|e| e["event"] == "listening").unwrap();
    let quic: Multiaddr = listening["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .find(|a| a.contains("quic"))
        .unwrap()
        .parse()
        .unwrap();
    let attacker = Attacker::connect(quic.with(libp2p::multiaddr::Protocol::P2p(owner)));
    let _guard = DumpOnPanic(alice.home.join("alice.stderr"));
    let rss_before = alice.rss_kib();

    // Garbage with valid framing: random bytes, a wrong version, trailing junk, an empty frame.
    let mut garbage: Vec<Vec<u8>> = (0..20u8).map(|i| framed(&[1, 200 + i % 50, i, 0xff, 0x13, i])).collect();
    garbage.push(framed(&[9, 0, 0]));
    let mut junk = wire::encode(&Message::Leave);
    junk.extend_from_slice(b"junk");
    garbage.push(framed(&junk));
    garbage.push(0u32.to_be_bytes().to_vec());
    attacker.send(owner, garbage);

    // Well-formed messages a stranger may not send: host-only ones, and a member's without joining.
    let not_allowed = [
        Message::PartyEnded,
        Message::Kicked { banned: false },
        Message::ChatSubmit { nonce: 1, text: "let me in".into() },
        Message::Hello { party: PartyId([7; 16]) },
    ];
    attacker.send(owner, not_allowed.iter().map(wire::frame));

    // Oversize: a frame announcing 16 MiB is refused before anything is read.
    attacker.send(owner, [(16u32 << 20).to_be_bytes().to_vec(), vec![0; 1024]]);

    // Big garbage frames, 64 KiB each, 16 MiB in all: memory must not follow.
    let big = framed(&vec![0xAB; wire::MAX_MESSAGE_LEN]);
    for _ in 0..8 {
        attacker.send(owner, std::iter::repeat_n(big.clone(), 32));
    }

    // A flood of small messages: beyond the per-stream rate, they are dropped.
    attacker.send(owner, std::iter::repeat_n(wire::frame(&Message::Leave), 3000));

    // Too many streams at once: the host keeps a few per peer and refuses the rest.
    let alive = attacker.open_many(owner, 12);
    assert!(alive <= 4, "the host kept {alive} streams from one peer open");

    let after = stats(&mut alice);
    println!("hostile peer, host's counters: {after}");
    assert!(count(&after, "dropped_malformed") >= 20, "{after}");
    assert!(count(&after, "dropped_oversize") >= 1, "{after}");
    assert!(count(&after, "dropped_unauthorized") >= 4, "{after}");
    assert!(count(&after, "dropped_rate_limited") >= 1000, "{after}");
    assert!(count(&after, "streams_refused") >= 1, "{after}");

    let rss_after = alice.rss_kib();
    println!("host resident memory: {rss_before} KiB before, {rss_after} KiB after 16 MiB of hostile input");
    assert!(
        rss_after < rss_before + 24 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB under hostile input"
    );

    // The party is unharmed: chat still flows both ways.
    bob.send("still here?");
    alice.wait_for(Duration::from_secs(5), "bob's chat", |e| {
        e["event"] == "chat" && e["text"] == "still here?"
    });
    alice.send("yes");
    bob.wait_for(Duration::from_secs(5), "alice's chat", |e| e["event"] == "chat" && e["text"] == "yes");
    assert_eq!(
        partyline_tests::roster(&alice.seen()),
        ["alice", "bob"],
        "the attacker never became a member"
    );
}
