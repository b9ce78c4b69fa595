//! A libp2p node of the tests' own that speaks Partyline's protocols badly: garbage, oversize
//! frames, forbidden messages, floods, too many streams. It can also join a party properly first,
//! to misbehave as a member.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol, SwarmBuilder, noise, tcp, yamux};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use tokio::net::{TcpSocket, TcpStream};

use partyline::net::{PARTY_PROTOCOL, VOICE_PROTOCOL};
use partyline::transfer::BLOBS_PROTOCOL;
use partyline_protocol::blobs::{BlobAnswer, BlobRequest, header_len};
use partyline_protocol::content::Layout;
use partyline_protocol::wire::{self, Join, Message};
use partyline_protocol::{ContentId, JoinLink, Manifest};

use crate::Proc;

pub struct Attacker {
    control: libp2p_stream::Control,
    redial: tokio::sync::mpsc::UnboundedSender<()>,
    runtime: tokio::runtime::Runtime,
    /// Bytes the host sent on its party stream to us since we were welcomed.
    heard: Arc<AtomicU64>,
    /// The connection: [`DIALING`], [`UP`] or [`DOWN`].
    state: Arc<AtomicU8>,
}

const DIALING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// `body` preceded by its length as a 4-byte big-endian integer (party framing).
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

impl Attacker {
    /// Connects to `target` (ending in `/p2p/<peer>`), and redials whenever asked.
    pub fn connect(target: Multiaddr) -> Self {
        Self::connect_from(target, None)
    }

    /// Connects to `target` from the local address `from` (QUIC dials from the socket it listens
    /// on; any of 127/8 on loopback), or from the system's choice.
    pub fn connect_from(target: Multiaddr, from: Option<IpAddr>) -> Self {
        let state = Arc::new(AtomicU8::new(DIALING));
        let seen = state.clone();
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
            if let Some(from) = from {
                swarm.listen_on(format!("/ip4/{from}/udp/0/quic-v1").parse().unwrap()).unwrap();
            }
            swarm.dial(target.clone()).unwrap();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        event = swarm.select_next_some() => match event {
                            SwarmEvent::ConnectionEstablished { .. } => seen.store(UP, Ordering::Relaxed),
                            SwarmEvent::OutgoingConnectionError { .. }
                            | SwarmEvent::ConnectionClosed { num_established: 0, .. } => {
                                seen.store(DOWN, Ordering::Relaxed)
                            }
                            _ => {}
                        },
                        Some(()) = redials.recv() => {
                            seen.store(DIALING, Ordering::Relaxed);
                            drop(swarm.dial(target.clone()));
                        }
                    }
                }
            });
            control
        });
        Self { control, redial, runtime, heard: Arc::default(), state }
    }

    /// Whether the connection is up, once its dial has ended (or `timeout` passed).
    pub fn connected(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.state.load(Ordering::Relaxed) == DIALING && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.state.load(Ordering::Relaxed) == UP
    }

    /// Connects over QUIC to the host of `link`, which `host` runs.
    pub fn at(host: &Proc, link: &str) -> Self {
        Self::at_from(host, link, None)
    }

    /// Connects over QUIC to the host of `link`, which `host` runs, from the local address `from`.
    pub fn at_from(host: &Proc, link: &str, from: Option<IpAddr>) -> Self {
        let owner = link.parse::<JoinLink>().expect("a link").owner();
        let listening = host.seen().into_iter().rev().find(|e| e["event"] == "listening").expect("listening");
        let quic: Multiaddr = listening["addrs"]
            .as_array()
            .expect("addrs")
            .iter()
            .filter_map(|a| a.as_str())
            .find(|a| a.contains("quic"))
            .expect("a QUIC address")
            .parse()
            .expect("a multiaddr");
        Self::connect_from(quic.with(libp2p::multiaddr::Protocol::P2p(owner)), from)
    }

    /// A new stream of `protocol` to `peer`, dialing again if it hung up on us (as it may).
    ///
    /// The first dial is let finish first, and each try has a time limit: libp2p-stream asked for
    /// a stream while a dial is under way dials again, and when that second dial is refused for
    /// the first one's sake, the request waits forever (a CI run hung here for minutes).
    pub fn open(&self, peer: PeerId, protocol: StreamProtocol) -> Stream {
        self.connected(Duration::from_secs(10));
        let mut control = self.control.clone();
        let redial = self.redial.clone();
        self.runtime.block_on(async move {
            let mut last = None;
            for _ in 0..50 {
                match tokio::time::timeout(
                    Duration::from_secs(3),
                    control.open_stream(peer, protocol.clone()),
                )
                .await
                {
                    Ok(Ok(stream)) => return stream,
                    Ok(Err(e)) => last = Some(e.to_string()),
                    Err(_) => last = Some("no answer within 3 s".to_owned()),
                }
                let _ = redial.send(());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("cannot open a {protocol} stream: {last:?}");
        })
    }

    /// Writes `frames` on a new stream of `protocol` (stopping quietly if it is closed).
    pub fn send(&self, peer: PeerId, protocol: StreamProtocol, frames: impl IntoIterator<Item = Vec<u8>>) {
        let mut stream = self.open(peer, protocol);
        self.runtime.block_on(async move {
            for frame in frames {
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = stream.flush().await;
            // Give the other side time to read before the stream goes away.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = stream.close().await;
        });
    }

    pub fn send_party(&self, peer: PeerId, frames: impl IntoIterator<Item = Vec<u8>>) {
        self.send(peer, PARTY_PROTOCOL, frames);
    }

    /// Writes `frames` on `streams` voice streams at once, as fast as they go.
    pub fn flood_voice(&self, peer: PeerId, streams: usize, frames: Vec<Vec<u8>>) {
        let opened: Vec<Stream> = (0..streams).map(|_| self.open(peer, VOICE_PROTOCOL)).collect();
        self.runtime.block_on(async move {
            let writers = opened.into_iter().map(|mut stream| {
                let frames = frames.clone();
                tokio::spawn(async move {
                    for frame in frames {
                        if stream.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                    let _ = stream.flush().await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                })
            });
            for w in writers.collect::<Vec<_>>() {
                let _ = w.await;
            }
        });
    }

    /// Opens `n` party streams at once and sees how many the peer keeps open.
    pub fn open_many(&self, peer: PeerId, n: usize) -> usize {
        self.kept(self.hold(peer, PARTY_PROTOCOL, n)).len()
    }

    /// Opens `n` streams of `protocol` and keeps them, writing nothing.
    pub fn hold(&self, peer: PeerId, protocol: StreamProtocol, n: usize) -> Vec<Stream> {
        (0..n).map(|_| self.open(peer, protocol.clone())).collect()
    }

    /// The streams of `streams` the peer still keeps open: a refused or closed one ends at once,
    /// a kept one stays open with nothing to read.
    pub fn kept(&self, streams: Vec<Stream>) -> Vec<Stream> {
        let looks = streams.into_iter().map(|mut s| async move {
            let mut buf = [0u8; 1];
            let quiet = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await.is_err();
            quiet.then_some(s)
        });
        self.runtime.block_on(futures::future::join_all(looks)).into_iter().flatten().collect()
    }

    /// `n` raw TCP connections to `to` from the local address `from` (any of 127/8 on loopback),
    /// each sending nothing.
    pub fn tcp_connect_many(&self, to: SocketAddr, from: IpAddr, n: usize) -> Vec<TcpStream> {
        self.runtime.block_on(async {
            let mut out = Vec::new();
            for _ in 0..n {
                let socket = TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddr::new(from, 0)).unwrap();
                if let Ok(tcp) = socket.connect(to).await {
                    out.push(tcp);
                }
            }
            out
        })
    }

    /// How many of `conns` the other side keeps open (a closed one reads its end at once).
    pub fn tcp_kept(&self, conns: &mut [TcpStream]) -> usize {
        let looks = conns.iter_mut().map(|tcp| async move {
            let mut buf = [0u8; 1];
            tokio::time::timeout(Duration::from_millis(300), tokio::io::AsyncReadExt::read(tcp, &mut buf))
                .await
                .is_err()
        });
        self.runtime.block_on(futures::future::join_all(looks)).into_iter().filter(|&open| open).count()
    }

    /// Answers `/partyline/blobs/1` as a member that has each `(id, manifest, piece list)`:
    /// the manifest (maybe a hostile one, which its id names all the same) and piece list as
    /// given, and garbage for pieces. Returns the count of garbage bytes sent.
    pub fn serve_lies(&self, contents: Vec<(ContentId, Vec<u8>, Vec<u8>)>) -> Arc<AtomicU64> {
        let mut incoming = self.control.clone().accept(BLOBS_PROTOCOL).expect("accept blob streams once");
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let contents: Arc<Vec<_>> = Arc::new(
            contents
                .into_iter()
                .map(|(id, m, p)| {
                    let layout = Manifest::decode(&m, &id).ok().map(|m| Layout::new(&m));
                    (id, m, p, layout)
                })
                .collect(),
        );
        self.runtime.spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                let (contents, sent) = (contents.clone(), sent.clone());
                tokio::spawn(async move {
                    loop {
                        let mut prefix = [0u8; 4];
                        if stream.read_exact(&mut prefix).await.is_err() {
                            return;
                        }
                        let Ok(len) = header_len(prefix) else { return };
                        let mut body = vec![0u8; len];
                        if stream.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let find = |id: &ContentId| contents.iter().find(|c| c.0 == *id);
                        let body = match BlobRequest::decode(&body) {
                            Ok(BlobRequest::Have { ids }) => {
                                let have = ids.iter().map(|i| find(i).is_some()).collect();
                                stream.write_all(&BlobAnswer::Have(have).frame()).await.map(|_| Vec::new())
                            }
                            Ok(BlobRequest::Manifest { id }) => {
                                Ok(find(&id).map(|c| c.1.clone()).unwrap_or_default())
                            }
                            Ok(BlobRequest::Pieces { id }) => {
                                Ok(find(&id).map(|c| c.2.clone()).unwrap_or_default())
                            }
                            Ok(BlobRequest::Range { id, first, count }) => {
                                let layout = find(&id).and_then(|c| c.3.clone());
                                let len = layout.as_ref().map_or(0, |l| {
                                    (first..first + u64::from(count)).map(|p| l.piece_len(p)).sum::<u64>()
                                });
                                sent.fetch_add(len, Ordering::Relaxed);
                                Ok((0..len).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect())
                            }
                            Ok(BlobRequest::Direct) => {
                                let refused = BlobAnswer::Refused("no".into()).frame();
                                stream.write_all(&refused).await.map(|_| Vec::new())
                            }
                            Err(_) => return,
                        };
                        let Ok(body) = body else { return };
                        if body.is_empty() {
                            continue;
                        }
                        let header = BlobAnswer::Body { len: body.len() as u64 }.frame();
                        if stream.write_all(&header).await.is_err() || stream.write_all(&body).await.is_err()
                        {
                            return;
                        }
                        let _ = stream.flush().await;
                    }
                });
            }
        });
        counter
    }

    /// Bytes the host has sent us on its party stream since it welcomed us.
    pub fn heard(&self) -> u64 {
        self.heard.load(Ordering::Relaxed)
    }

    /// Joins the party behind `link` as `name`, like a real member; returns once welcomed.
    pub fn join(&self, link: &JoinLink, name: &str) {
        assert!(self.try_join(link, name), "not welcomed within 10 s");
    }

    /// Tries to join as `name`: whether the host welcomed us within 10 s.
    pub fn try_join(&self, link: &JoinLink, name: &str) -> bool {
        let mut control = self.control.clone();
        let mut incoming = control.accept(PARTY_PROTOCOL).expect("accept party streams once");
        let join = Join { invite: link.invite().clone(), name: name.to_owned(), addrs: vec![] };
        let mut stream = self.open(link.owner(), PARTY_PROTOCOL);
        self.runtime.block_on(async move {
            stream.write_all(&wire::frame(&Message::Join(Box::new(join)))).await.unwrap();
            stream.flush().await.unwrap();
            let welcomed = async {
                let (_, mut from_host) = incoming.next().await?;
                loop {
                    let mut header = [0u8; 4];
                    from_host.read_exact(&mut header).await.ok()?;
                    let len = wire::frame_len(header).ok()?;
                    let mut body = vec![0u8; len];
                    from_host.read_exact(&mut body).await.ok()?;
                    if matches!(wire::decode(&body), Ok(Message::Welcome(_))) {
                        return Some(from_host);
                    }
                }
            };
            let Ok(Some(mut from_host)) = tokio::time::timeout(Duration::from_secs(10), welcomed).await
            else {
                return false;
            };
            // What the host sends us from now on is counted (and otherwise thrown away).
            let heard = self.heard.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = from_host.read(&mut buf).await {
                    heard.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
            // Keep our stream to the host open: a member that hangs up has left.
            tokio::spawn(async move {
                let _keep = stream;
                std::future::pending::<()>().await;
            });
            true
        })
    }
}
