//! What strangers (peers that are neither members nor linked) may hold, per address they come
//! from: one address (an IPv4 address, or an IPv6 /64, which one machine may hold whole) cannot
//! take the swarm's budgets for itself, so a joiner elsewhere still gets in. libp2p's
//! `connection_limits` caps connections in all; this caps, per address, handshakes under way (of
//! anyone: who it is is not known yet) and strangers' connections taken in, and closes a
//! stranger's connection taken in once it has lasted [`STRANGER_LIFETIME`] without the peer
//! becoming a member (a join takes a few seconds).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Where a connection comes from, as far as budgets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    /// The first 64 bits.
    V6([u8; 8]),
}

impl Source {
    /// The source of a direct connection from `addr`; `None` for relayed ones (the relay's
    /// address says nothing of who is behind it).
    fn of(addr: &Multiaddr) -> Option<Self> {
        if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
            return None;
        }
        addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(Self::from_ip(ip.into())),
            Protocol::Ip6(ip) => Some(Self::from_ip(ip.into())),
            _ => None,
        })
    }

    fn from_ip(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                Self::V6(prefix)
            }
        }
    }
}

/// How long a stranger's connection taken in may last without the peer becoming a member.
pub(crate) const STRANGER_LIFETIME: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
#[error("{0} handshakes already under way from this address")]
struct TooManyFromAddress(usize);

#[derive(Debug, thiserror::Error)]
#[error("{0} strangers' connections already come from this address")]
struct TooManyStrangers(usize);

/// A stranger's connection taken in.
struct Stranger {
    peer: PeerId,
    source: Option<Source>,
    since: Instant,
    /// Whether it was asked to close (once: a connection slow to close is not asked again).
    closing: bool,
}

pub(crate) struct Behaviour {
    max_pending: usize,
    max_strangers: usize,
    pending: HashMap<ConnectionId, Source>,
    per_source: HashMap<Source, usize>,
    /// Members and linked peers, as of the last [`Behaviour::sweep`].
    known: HashSet<PeerId>,
    strangers: HashMap<ConnectionId, Stranger>,
    closing: VecDeque<(PeerId, ConnectionId)>,
    waker: Option<Waker>,
}

impl Behaviour {
    /// At most `max_pending` inbound handshakes under way, and `max_strangers` strangers'
    /// connections taken in, per address.
    pub(crate) fn new(max_pending: usize, max_strangers: usize) -> Self {
        Self {
            max_pending,
            max_strangers,
            pending: HashMap::new(),
            per_source: HashMap::new(),
            known: HashSet::new(),
            strangers: HashMap::new(),
            closing: VecDeque::new(),
            waker: None,
        }
    }

    fn done(&mut self, connection: ConnectionId) {
        let Some(source) = self.pending.remove(&connection) else { return };
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
    }

    /// Learns who the members are now (`members`, and whoever `linked` says is), forgets the
    /// strangers that became one, and closes the connections of those whose time is up.
    pub(crate) fn sweep(
        &mut self,
        now: Instant,
        members: impl IntoIterator<Item = PeerId>,
        linked: impl Fn(&PeerId) -> bool,
    ) {
        self.known = members.into_iter().collect();
        let known = &self.known;
        self.strangers.retain(|_, s| !known.contains(&s.peer) && !linked(&s.peer));
        for (id, stranger) in &mut self.strangers {
            if !stranger.closing && now.saturating_duration_since(stranger.since) >= STRANGER_LIFETIME {
                stranger.closing = true;
                self.closing.push_back((stranger.peer, *id));
            }
        }
        if !self.closing.is_empty()
            && let Some(waker) = self.waker.take()
        {
            waker.wake();
        }
    }

    fn strangers_from(&self, source: Source) -> usize {
        self.strangers.values().filter(|s| s.source == Some(source)).count()
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(source) = Source::of(remote) else { return Ok(()) };
        let n = self.per_source.entry(source).or_default();
        if *n >= self.max_pending {
            tracing::debug!(%remote, "too many handshakes under way from this address; refused one");
            return Err(ConnectionDenied::new(TooManyFromAddress(*n)));
        }
        *n += 1;
        self.pending.insert(connection, source);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.done(connection);
        if self.known.contains(&peer) {
            return Ok(dummy::ConnectionHandler);
        }
        let source = Source::of(remote);
        if let Some(source) = source {
            let n = self.strangers_from(source);
            if n >= self.max_strangers {
                tracing::debug!(%remote, %peer, "too many strangers' connections from this address; refused one");
                return Err(ConnectionDenied::new(TooManyStrangers(n)));
            }
        }
        self.strangers.insert(connection, Stranger { peer, source, since: Instant::now(), closing: false });
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(failure) => self.done(failure.connection_id),
            FromSwarm::ConnectionEstablished(established) => self.done(established.connection_id),
            FromSwarm::ConnectionClosed(closed) => {
                self.strangers.remove(&closed.connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, id)) = self.closing.pop_front() {
            tracing::debug!(%peer_id, "a stranger's connection outlived its time; closing it");
            return Poll::Ready(ToSwarm::CloseConnection { peer_id, connection: CloseConnection::One(id) });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A behaviour and a way to knock on it: whether the `n`th pending connection from `remote`
    /// is let through.
    struct Door {
        b: Behaviour,
        next: usize,
    }

    impl Door {
        fn knock(&mut self, remote: &str) -> (ConnectionId, bool) {
            self.next += 1;
            let id = ConnectionId::new_unchecked(self.next);
            let local: Multiaddr = "/ip4/10.0.0.1/tcp/4000".parse().unwrap();
            let ok = self.b.handle_pending_inbound_connection(id, &local, &remote.parse().unwrap()).is_ok();
            (id, ok)
        }
    }

    #[test]
    fn one_address_gets_its_share_and_others_theirs() {
        let mut door = Door { b: Behaviour::new(2, 2), next: 0 };
        let (first, ok) = door.knock("/ip4/10.0.0.9/tcp/5");
        assert!(ok && door.knock("/ip4/10.0.0.9/tcp/6").1);
        assert!(!door.knock("/ip4/10.0.0.9/tcp/7").1, "a third from one address");
        assert!(door.knock("/ip4/10.0.0.8/tcp/5").1, "another address has its own share");
        assert!(door.knock("/ip6/::ffff:10.0.0.8/tcp/5").1 && !door.knock("/ip4/10.0.0.8/tcp/6").1, "mapped");
        // One handshake ends: there is room again.
        door.b.done(first);
        assert!(door.knock("/ip4/10.0.0.9/tcp/8").1);
        // IPv6 counts per /64; relayed connections are the relay's business.
        assert!(
            door.knock("/ip6/2001:db8::1/udp/5/quic-v1").1 && door.knock("/ip6/2001:db8::2/udp/5/quic-v1").1
        );
        assert!(!door.knock("/ip6/2001:db8::ffff/udp/5/quic-v1").1, "one /64 is one address");
        assert!(door.knock("/ip6/2001:db8:0:1::1/udp/5/quic-v1").1);
        let relay = "/ip4/10.0.0.9/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        assert!(door.knock(&format!("{relay}/p2p-circuit")).1);
    }

    /// Whether a connection from `peer` at `remote`, its handshake done, is taken in.
    fn established(b: &mut Behaviour, id: usize, peer: PeerId, remote: &str) -> bool {
        let local: Multiaddr = "/ip4/10.0.0.1/udp/4000/quic-v1".parse().unwrap();
        let id = ConnectionId::new_unchecked(id);
        b.handle_established_inbound_connection(id, peer, &local, &remote.parse().unwrap()).is_ok()
    }

    fn closes(b: &mut Behaviour) -> Vec<ConnectionId> {
        std::iter::from_fn(|| b.closing.pop_front().map(|(_, id)| id)).collect()
    }

    #[test]
    fn strangers_get_a_share_per_address_and_a_lifetime_members_neither() {
        let mut b = Behaviour::new(8, 2);
        let member = PeerId::random();
        let start = Instant::now();
        b.sweep(start, [member], |_| false);
        let from = "/ip4/10.0.0.9/udp/5/quic-v1";
        assert!(
            established(&mut b, 1, PeerId::random(), from) && established(&mut b, 2, PeerId::random(), from)
        );
        assert!(!established(&mut b, 3, PeerId::random(), from), "a third stranger from one address");
        assert!(established(&mut b, 4, member, from), "members are not strangers");
        assert!(established(&mut b, 5, PeerId::random(), "/ip4/10.0.0.8/udp/5/quic-v1"), "another address");

        // A stranger admitted meanwhile (linked) is one no more; the others' time runs out.
        let joiner = b.strangers[&ConnectionId::new_unchecked(1)].peer;
        b.sweep(start + Duration::from_secs(5), [member], |p| *p == joiner);
        assert!(closes(&mut b).is_empty(), "nobody's time is up yet");
        b.sweep(start + STRANGER_LIFETIME + Duration::from_secs(1), [member, joiner], |_| false);
        let mut closed = closes(&mut b);
        closed.sort();
        assert_eq!(closed, [ConnectionId::new_unchecked(2), ConnectionId::new_unchecked(5)]);
        b.sweep(start + STRANGER_LIFETIME * 2, [member, joiner], |_| false);
        assert!(closes(&mut b).is_empty(), "each is asked to close once");
        // Closing one makes room for another stranger from its address.
        b.on_swarm_event(FromSwarm::ConnectionClosed(libp2p::swarm::ConnectionClosed {
            peer_id: PeerId::random(),
            connection_id: ConnectionId::new_unchecked(2),
            endpoint: &libp2p::core::ConnectedPoint::Listener {
                local_addr: "/ip4/10.0.0.1/udp/4000/quic-v1".parse().unwrap(),
                send_back_addr: from.parse().unwrap(),
            },
            cause: None,
            remaining_established: 0,
        }));
        assert!(established(&mut b, 6, PeerId::random(), from));
    }
}
