//! Handshakes under way, per address they come from: one address (an IPv4 address, or an IPv6
//! /64, which one machine may hold whole) cannot take the swarm's pending-connection budget for
//! itself with connections that never finish their handshake, so a joiner elsewhere still gets
//! in. libp2p's `connection_limits` caps pending connections in all; this caps them per address.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm, dummy,
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

#[derive(Debug, thiserror::Error)]
#[error("{0} handshakes already under way from this address")]
struct TooManyFromAddress(usize);

pub(crate) struct Behaviour {
    max: usize,
    pending: HashMap<ConnectionId, Source>,
    per_source: HashMap<Source, usize>,
}

impl Behaviour {
    /// At most `max` inbound handshakes under way per address.
    pub(crate) fn new(max: usize) -> Self {
        Self { max, pending: HashMap::new(), per_source: HashMap::new() }
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
        if *n >= self.max {
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
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.done(connection);
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
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
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
        let mut door = Door { b: Behaviour::new(2), next: 0 };
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
}
