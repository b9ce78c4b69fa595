//! Voice over unreliable datagrams between members who reach each other directly.
//!
//! libp2p's QUIC offers streams only, and a stream holds every frame behind a lost packet until
//! it is sent again: voice waits for retransmissions. So every node also runs a QUIC endpoint of
//! its own (quinn) beside libp2p, with datagrams on and no streams at all, authenticated with
//! libp2p's own TLS configuration: the certificate carries the member's peer id, checked on both
//! sides, so the path is as private and authenticated as the party connection. Members tell each
//! other its port over the party connection (`VoiceEndpoint`); both sides dial each other at the
//! IPs of their direct libp2p connections (a simultaneous dial also opens the way through NATs,
//! as after a hole punch), and keep the connection the member with the lower peer id dialled.
//!
//! Only members get in: a handshake from anyone else is closed at once, handshakes in progress
//! are bounded, and each member's datagrams share the rate limit of its voice streams. Where no
//! datagram path opens (relayed members), frames keep going over the voice streams.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::sync::watch;

use super::voice_links::{PeerBuckets, VoiceCounters};
use crate::membership::MembershipView as Members;
use crate::voice::Inbound;

/// What the endpoint's TLS handshake says it is for (never mistaken for a libp2p connection).
const ALPN: &[u8] = partyline_protocol::names::VOICE_DATAGRAMS.as_bytes();
/// Handshakes waiting or in progress at once; more are refused.
const MAX_HANDSHAKES: usize = 8;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Between dial attempts to a member that did not answer.
const REDIAL_FIRST: Duration = Duration::from_secs(1);
const REDIAL_MAX: Duration = Duration::from_secs(15);
/// Datagrams buffered by quinn per connection, each way (a few hundred ms of voice).
const DATAGRAM_BUFFER: usize = 32 * 1024;
/// Closing codes.
const NOT_A_MEMBER: u32 = 1;
const DUPLICATE: u32 = 2;

/// The member connections, one per member: the one the member with the lower peer id dialled.
type Paths = Arc<Mutex<HashMap<PeerId, (quinn::Connection, bool)>>>;

pub(crate) struct VoiceDatagrams {
    endpoint: quinn::Endpoint,
    /// The port members are told.
    port: u16,
    me: PeerId,
    keypair: Keypair,
    members: Members,
    paths: Paths,
    /// Ports members announced, watched by the task keeping each member's path.
    announced: HashMap<PeerId, (watch::Sender<Option<u16>>, tokio::task::JoinHandle<()>)>,
    inbound: SyncSender<Inbound>,
    buckets: PeerBuckets,
    counters: Arc<VoiceCounters>,
}

impl VoiceDatagrams {
    /// Binds `listen` and starts accepting members' handshakes. `announce`: the port to tell
    /// members instead of the one bound (a proxy or a port forward in front of it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        listen: SocketAddr,
        announce: Option<u16>,
        keypair: &Keypair,
        members: Members,
        inbound: SyncSender<Inbound>,
        buckets: PeerBuckets,
        counters: Arc<VoiceCounters>,
    ) -> Result<Self> {
        let socket =
            UdpSocket::bind(listen).with_context(|| format!("cannot bind voice datagrams to {listen}"))?;
        let port = announce.unwrap_or(socket.local_addr()?.port());
        let server =
            quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server_tls(keypair)?)?));
        let mut server = server;
        server.transport_config(transport());
        server.migration(false);
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .context("cannot start the voice datagram endpoint")?;
        let me = keypair.public().to_peer_id();
        let paths = Paths::default();
        let this = Self {
            endpoint: endpoint.clone(),
            port,
            me,
            keypair: keypair.clone(),
            members: members.clone(),
            paths: paths.clone(),
            announced: HashMap::new(),
            inbound: inbound.clone(),
            buckets: buckets.clone(),
            counters: counters.clone(),
        };
        let reader = Reader { me, paths, inbound, buckets, counters };
        tokio::spawn(accept_loop(endpoint, members, reader));
        Ok(this)
    }

    /// The port to tell members.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `peer` (a member) receives voice datagrams at `port`: keep a path to it.
    pub(crate) fn announced(&mut self, peer: PeerId, port: u16) {
        if let Some((tx, _)) = self.announced.get(&peer) {
            tx.send_if_modified(|p| p.replace(port) != Some(port));
            return;
        }
        let (tx, rx) = watch::channel(Some(port));
        let dialer = Dialer {
            peer,
            endpoint: self.endpoint.clone(),
            keypair: self.keypair.clone(),
            reader: Reader {
                me: self.me,
                paths: self.paths.clone(),
                inbound: self.inbound.clone(),
                buckets: self.buckets.clone(),
                counters: self.counters.clone(),
            },
        };
        let task = tokio::spawn(dialer.keep(rx, self.members.clone()));
        self.announced.insert(peer, (tx, task));
    }

    /// `peer` left: its path closes.
    pub(crate) fn remove_peer(&mut self, peer: &PeerId) {
        if let Some((_, task)) = self.announced.remove(peer) {
            task.abort();
        }
        if let Some((conn, _)) = lock(&self.paths).remove(peer) {
            conn.close(0u32.into(), b"left");
        }
    }

    /// Whether `peer` is reached over datagrams now.
    #[cfg(test)]
    pub(crate) fn has_path(&self, peer: &PeerId) -> bool {
        lock(&self.paths).get(peer).is_some_and(|(c, _)| c.close_reason().is_none())
    }

    /// Sends `framed` (a voice frame with its 2-byte length first) to `peer` as one datagram;
    /// false if there is no path or it refused the datagram (the caller uses a stream).
    pub(crate) fn send(&self, peer: &PeerId, framed: &[u8]) -> bool {
        let Some((conn, _)) = lock(&self.paths).get(peer).cloned() else { return false };
        let sent = conn.send_datagram(bytes::Bytes::copy_from_slice(&framed[2..])).is_ok();
        if sent {
            self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Members reached over datagrams now.
    pub(crate) fn paths(&self) -> usize {
        lock(&self.paths).values().filter(|(c, _)| c.close_reason().is_none()).count()
    }
}

impl Drop for VoiceDatagrams {
    fn drop(&mut self) {
        for (_, task) in self.announced.values() {
            task.abort();
        }
        self.endpoint.close(0u32.into(), b"bye");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Voice only: no streams, datagrams buffered a little, keep-alives so NAT mappings stay open.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(0u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.datagram_receive_buffer_size(Some(DATAGRAM_BUFFER));
    t.datagram_send_buffer_size(DATAGRAM_BUFFER);
    t.keep_alive_interval(Some(Duration::from_secs(4)));
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(12_000))));
    t.allow_spin(false);
    Arc::new(t)
}

fn server_tls(keypair: &Keypair) -> Result<quinn::rustls::ServerConfig> {
    let mut tls = libp2p_tls::make_server_config(keypair).map_err(|e| anyhow!("voice TLS: {e}"))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(tls)
}

/// A client configuration that accepts only `peer`'s certificate.
fn client_config(keypair: &Keypair, peer: PeerId) -> Result<quinn::ClientConfig> {
    let mut tls =
        libp2p_tls::make_client_config(keypair, Some(peer)).map_err(|e| anyhow!("voice TLS: {e}"))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(transport());
    Ok(config)
}

/// The peer id a connection's certificate proves.
fn peer_of(conn: &quinn::Connection) -> Option<PeerId> {
    let certs =
        conn.peer_identity()?.downcast::<Vec<quinn::rustls::pki_types::CertificateDer<'static>>>().ok()?;
    Some(libp2p_tls::certificate::parse(certs.first()?).ok()?.peer_id())
}

/// Files connections and reads their datagrams into the voice thread's queue.
#[derive(Clone)]
struct Reader {
    me: PeerId,
    paths: Paths,
    inbound: SyncSender<Inbound>,
    buckets: PeerBuckets,
    counters: Arc<VoiceCounters>,
}

impl Reader {
    /// Keeps `conn` as `peer`'s path unless a better one is there (the one the member with the
    /// lower peer id dialled), and reads it until it closes.
    fn file(&self, peer: PeerId, conn: quinn::Connection, dialled: bool) {
        let preferred = dialled == (self.me < peer);
        {
            let mut paths = lock(&self.paths);
            match paths.get(&peer) {
                Some((old, old_dialled)) if old.close_reason().is_none() => {
                    let old_preferred = *old_dialled == (self.me < peer);
                    if old_preferred || !preferred {
                        conn.close(DUPLICATE.into(), b"duplicate");
                        return;
                    }
                    old.close(DUPLICATE.into(), b"duplicate");
                }
                _ => {}
            }
            paths.insert(peer, (conn.clone(), dialled));
        }
        tracing::info!(%peer, remote = %conn.remote_address(), "voice goes over datagrams");
        let reader = self.clone();
        tokio::spawn(async move {
            while let Ok(datagram) = conn.read_datagram().await {
                reader.deliver(peer, datagram.to_vec());
            }
            let mut paths = lock(&reader.paths);
            if paths.get(&peer).is_some_and(|(c, _)| c.stable_id() == conn.stable_id()) {
                paths.remove(&peer);
                tracing::info!(%peer, "voice datagram path closed");
            }
        });
    }

    fn deliver(&self, peer: PeerId, bytes: Vec<u8>) {
        let arrival = Instant::now();
        self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let allowed = self.buckets.take(peer, arrival);
        if !allowed || self.inbound.try_send(Inbound { peer, bytes, arrival }).is_err() {
            self.counters.dropped_inbound.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Accepts handshakes from members; closes the others.
async fn accept_loop(endpoint: quinn::Endpoint, members: Members, reader: Reader) {
    let handshakes = Arc::new(AtomicUsize::new(0));
    while let Some(incoming) = endpoint.accept().await {
        if handshakes.fetch_add(1, Ordering::Relaxed) >= MAX_HANDSHAKES {
            handshakes.fetch_sub(1, Ordering::Relaxed);
            reader.counters.refused.fetch_add(1, Ordering::Relaxed);
            incoming.refuse();
            continue;
        }
        let (members, reader, handshakes) = (members.clone(), reader.clone(), handshakes.clone());
        tokio::spawn(async move {
            let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await;
            handshakes.fetch_sub(1, Ordering::Relaxed);
            let Ok(Ok(conn)) = conn else { return };
            match peer_of(&conn) {
                Some(peer) if members.borrow().is_other(&peer) => reader.file(peer, conn, false),
                peer => {
                    tracing::debug!(?peer, remote = %conn.remote_address(), "voice datagrams from a non-member refused");
                    reader.counters.refused.fetch_add(1, Ordering::Relaxed);
                    conn.close(NOT_A_MEMBER.into(), b"not a member");
                }
            }
        });
    }
}

/// Keeps a datagram path to one member: dials it at its direct IPs and announced port whenever
/// there is no path, again after a while if that failed.
struct Dialer {
    peer: PeerId,
    endpoint: quinn::Endpoint,
    keypair: Keypair,
    reader: Reader,
}

impl Dialer {
    async fn keep(self, mut ports: watch::Receiver<Option<u16>>, mut members: Members) {
        let Ok(config) = client_config(&self.keypair, self.peer) else { return };
        let mut wait = REDIAL_FIRST;
        loop {
            let live = lock(&self.reader.paths).get(&self.peer).map(|(c, _)| c.clone());
            if let Some(conn) = live.filter(|c| c.close_reason().is_none()) {
                // A path that lasted was fine: dial again soon. One closed at once (refused, as
                // by a member that does not count us in yet) waits longer each time.
                let opened = Instant::now();
                conn.closed().await;
                if opened.elapsed() > REDIAL_MAX {
                    wait = REDIAL_FIRST;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(REDIAL_MAX);
                continue;
            }
            let target = *ports.borrow_and_update();
            let ips: Vec<IpAddr> = members.borrow_and_update().ips(&self.peer).to_vec();
            if let (Some(port), false) = (target, ips.is_empty()) {
                for ip in ips {
                    if self.dial(&config, SocketAddr::new(ip, port)).await {
                        break;
                    }
                }
                if lock(&self.reader.paths).contains_key(&self.peer) {
                    continue;
                }
                // Nothing answered: try again later, or as soon as the port or IPs change.
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ports.changed() => {}
                    _ = members.changed() => {}
                }
                wait = (wait * 2).min(REDIAL_MAX);
            } else {
                // Not reachable directly (yet): wait until it is.
                tokio::select! {
                    r = ports.changed() => if r.is_err() { return },
                    r = members.changed() => if r.is_err() { return },
                }
            }
        }
    }

    async fn dial(&self, config: &quinn::ClientConfig, addr: SocketAddr) -> bool {
        let Ok(connecting) = self.endpoint.connect_with(config.clone(), addr, "partyline") else {
            return false;
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => {
                self.reader.file(self.peer, conn, true);
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, %addr, "voice datagram dial failed: {e}");
                false
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Side {
        datagrams: VoiceDatagrams,
        peer: PeerId,
        members: crate::net::members::MemberSet,
        inbound: std::sync::mpsc::Receiver<Inbound>,
        counters: Arc<VoiceCounters>,
    }

    fn side() -> Side {
        let keypair = Keypair::generate_ed25519();
        let (members, rx) = crate::net::members::MemberSet::new();
        let (tx, inbound) = std::sync::mpsc::sync_channel(64);
        let counters = Arc::new(VoiceCounters::default());
        let datagrams = VoiceDatagrams::start(
            "127.0.0.1:0".parse().unwrap(),
            None,
            &keypair,
            rx,
            tx,
            crate::net::voice_links::voice_budget(),
            counters.clone(),
        )
        .unwrap();
        Side { datagrams, peer: keypair.public().to_peer_id(), members, inbound, counters }
    }

    /// `peer` is the one other member, directly connected at 127.0.0.1.
    fn admit(side: &mut Side, peer: PeerId) {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let presence = partyline_protocol::wire::Presence::Online;
        let path = crate::events::Path::Direct;
        let info =
            crate::events::MemberInfo { peer, name: "m".into(), presence, owner: false, me: false, path };
        side.members.connected(peer, vec![lo]);
        side.members.publish(Some(vec![info]));
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn members_reach_each_other_over_one_path_both_ways() {
        let (mut a, mut b) = (side(), side());
        admit(&mut a, b.peer);
        admit(&mut b, a.peer);
        // Both learn the other's port at once: both dial, one connection stays.
        a.datagrams.announced(b.peer, b.datagrams.port());
        b.datagrams.announced(a.peer, a.datagrams.port());
        until("paths", || a.datagrams.has_path(&b.peer) && b.datagrams.has_path(&a.peer)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!((a.datagrams.paths(), b.datagrams.paths()), (1, 1));
        assert!(a.datagrams.send(&b.peer, &framed(b"voice from a")));
        assert!(b.datagrams.send(&a.peer, &framed(b"voice from b")));
        until("datagrams", || b.counters.datagrams_in.load(Ordering::Relaxed) == 1).await;
        let got = b.inbound.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!((got.peer, got.bytes.as_slice()), (a.peer, &b"voice from a"[..]));
        let got = a.inbound.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!((got.peer, got.bytes.as_slice()), (b.peer, &b"voice from b"[..]));
        // A member that leaves loses its path, and cannot open another.
        a.members.publish(Some(vec![]));
        a.datagrams.remove_peer(&b.peer);
        assert!(!a.datagrams.send(&b.peer, &framed(b"gone")));
        until("b sees it closed", || !b.datagrams.has_path(&a.peer)).await;
    }

    #[tokio::test]
    async fn a_stranger_is_refused_and_nothing_it_sends_gets_in() {
        let (a, mut stranger) = (side(), side());
        // The stranger knows a's port and thinks a is a member; a does not know it.
        admit(&mut stranger, a.peer);
        stranger.datagrams.announced(a.peer, a.datagrams.port());
        until("refusal", || a.counters.refused.load(Ordering::Relaxed) >= 1).await;
        // Whatever it sends while its side believes a handshake went through goes nowhere.
        for _ in 0..20 {
            stranger.datagrams.send(&a.peer, &framed(b"let me in"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!a.datagrams.has_path(&stranger.peer));
        assert!(a.inbound.try_recv().is_err());
        assert_eq!(a.counters.datagrams_in.load(Ordering::Relaxed), 0);
    }
}
