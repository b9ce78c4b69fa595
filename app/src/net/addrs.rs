//! What addresses this node advertises, and how it is connected to each peer.

use std::collections::HashMap;

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use partyline_protocol::wire::MAX_MEMBER_ADDRS;

use crate::events::Path;

pub(crate) const UDP_PORT_KEY: &str = "udp_port";
pub(crate) const TCP_PORT_KEY: &str = "tcp_port";

/// Ports this node listened on last time, reused so that links and members' reconnects keep
/// working across restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ports {
    pub(crate) udp: Option<u16>,
    pub(crate) tcp: Option<u16>,
}

impl Ports {
    /// `addr` with its port 0 replaced by the remembered port of its transport, if any.
    pub(crate) fn apply(&self, addr: &Multiaddr) -> Option<Multiaddr> {
        let mut changed = false;
        let out = addr
            .iter()
            .map(|p| match p {
                Protocol::Udp(0) if self.udp.is_some() => {
                    changed = true;
                    Protocol::Udp(self.udp.unwrap_or(0))
                }
                Protocol::Tcp(0) if self.tcp.is_some() => {
                    changed = true;
                    Protocol::Tcp(self.tcp.unwrap_or(0))
                }
                other => other,
            })
            .collect();
        changed.then_some(out)
    }

    /// The ports of the first direct UDP and TCP listen addresses.
    pub(crate) fn of(addrs: &[Multiaddr]) -> Self {
        let mut ports = Self::default();
        for addr in addrs.iter().filter(|a| !is_relayed(a)) {
            for p in addr.iter() {
                match p {
                    Protocol::Udp(port) if ports.udp.is_none() => ports.udp = Some(port),
                    Protocol::Tcp(port) if ports.tcp.is_none() => ports.tcp = Some(port),
                    _ => {}
                }
            }
        }
        ports
    }
}

/// This node's own addresses, from the swarm's listen and external-address events.
#[derive(Default)]
pub(crate) struct OwnAddrs {
    listen: Vec<Multiaddr>,
    external: Vec<Multiaddr>,
}

pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::QuicV1)
}

/// Without a trailing `/p2p/<me>`, which every receiver knows anyway.
fn without_peer(mut addr: Multiaddr) -> Multiaddr {
    // A relayed address ends in `/p2p-circuit` (the relay's id comes before it): only a trailing
    // peer id, our own, is dropped.
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

impl OwnAddrs {
    pub(crate) fn add_listen(&mut self, addr: Multiaddr) {
        let addr = without_peer(addr);
        if !self.listen.contains(&addr) {
            self.listen.push(addr);
        }
    }

    pub(crate) fn remove_listen(&mut self, addr: &Multiaddr) {
        let addr = without_peer(addr.clone());
        self.listen.retain(|a| *a != addr);
    }

    pub(crate) fn add_external(&mut self, addr: Multiaddr) {
        let addr = without_peer(addr);
        if !self.external.contains(&addr) {
            self.external.push(addr);
        }
    }

    pub(crate) fn remove_external(&mut self, addr: &Multiaddr) {
        let addr = without_peer(addr.clone());
        self.external.retain(|a| *a != addr);
    }

    pub(crate) fn listen(&self) -> &[Multiaddr] {
        &self.listen
    }

    pub(crate) fn all(&self) -> Vec<Multiaddr> {
        let mut all = self.external.clone();
        all.extend(self.listen.iter().filter(|a| !all.contains(a)).cloned().collect::<Vec<_>>());
        all
    }

    /// The few addresses worth telling others, best first: confirmed public ones, then LAN ones
    /// (QUIC before TCP), then relayed ones, then loopback (only useful on this machine).
    pub(crate) fn advertised(&self) -> Vec<Multiaddr> {
        let mut ranked: Vec<(u8, &Multiaddr)> = Vec::new();
        for a in self.external.iter().filter(|a| !is_relayed(a)) {
            ranked.push((0, a));
        }
        for a in &self.listen {
            let rank = match (is_relayed(a), is_loopback(a), is_quic(a)) {
                (true, _, _) => 3,
                (false, true, quic) => 5 - u8::from(quic),
                (false, false, quic) => 2 - u8::from(quic),
            };
            ranked.push((rank, a));
        }
        ranked.sort_by_key(|(rank, _)| *rank);
        let mut out: Vec<Multiaddr> = Vec::new();
        // Keep room for at least one relayed address when there is one.
        let relayed: Vec<&Multiaddr> = ranked.iter().filter(|(r, _)| *r == 3).map(|(_, a)| *a).collect();
        for (_, a) in &ranked {
            if out.contains(a) {
                continue;
            }
            let room = MAX_MEMBER_ADDRS - out.len();
            let relayed_left = relayed.iter().filter(|r| !out.contains(r)).count().min(1);
            if room == 0 || (room <= relayed_left && !is_relayed(a)) {
                continue;
            }
            out.push((*a).clone());
        }
        out
    }
}

/// Open connections per peer, and whether each goes through a relay.
#[derive(Default)]
pub(crate) struct Connections {
    peers: HashMap<PeerId, HashMap<ConnectionId, Conn>>,
}

/// One connection: through a relay or not, and the peer's IP when direct.
#[derive(Clone, Copy, Debug)]
struct Conn {
    relayed: bool,
    ip: Option<std::net::IpAddr>,
}

impl Connections {
    pub(crate) fn opened(&mut self, peer: PeerId, id: ConnectionId, endpoint: &ConnectedPoint) {
        let relayed = endpoint.is_relayed();
        let ip = endpoint.get_remote_address().iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        });
        self.peers.entry(peer).or_default().insert(id, Conn { relayed, ip: ip.filter(|_| !relayed) });
    }

    pub(crate) fn closed(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(conns) = self.peers.get_mut(&peer) {
            conns.remove(&id);
            if conns.is_empty() {
                self.peers.remove(&peer);
            }
        }
    }

    /// The IPs of our direct connections to `peer`.
    pub(crate) fn direct_ips(&self, peer: &PeerId) -> Vec<std::net::IpAddr> {
        let mut ips: Vec<std::net::IpAddr> =
            self.peers.get(peer).into_iter().flat_map(|c| c.values().filter_map(|c| c.ip)).collect();
        ips.sort();
        ips.dedup();
        ips
    }

    pub(crate) fn path(&self, peer: &PeerId) -> Path {
        match self.peers.get(peer) {
            None => Path::Offline,
            Some(conns) if conns.values().any(|c| !c.relayed) => Path::Direct,
            Some(_) => Path::Relayed,
        }
    }

    /// Every connection to `peer` but the newest.
    pub(crate) fn older(&self, peer: &PeerId) -> Vec<ConnectionId> {
        let Some(conns) = self.peers.get(peer) else { return Vec::new() };
        let newest = conns.keys().max().copied();
        conns.keys().filter(|id| Some(**id) != newest).copied().collect()
    }

    /// Relayed connections to `peer` that a direct one has made redundant.
    pub(crate) fn redundant_relayed(&self, peer: &PeerId) -> Vec<ConnectionId> {
        match self.peers.get(peer) {
            Some(conns) if conns.values().any(|c| !c.relayed) => {
                conns.iter().filter(|(_, c)| c.relayed).map(|(id, _)| *id).collect()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn advertises_best_first_and_keeps_a_relayed_one() {
        let mut own = OwnAddrs::default();
        let relay = PeerId::random();
        own.add_listen(a("/ip4/127.0.0.1/tcp/1"));
        own.add_listen(a("/ip4/127.0.0.1/udp/1/quic-v1"));
        for i in 2..8 {
            own.add_listen(a(&format!("/ip4/192.168.1.{i}/tcp/1")));
        }
        own.add_listen(a("/ip4/192.168.1.9/udp/1/quic-v1"));
        own.add_listen(a(&format!("/ip4/1.2.3.4/udp/1/quic-v1/p2p/{relay}/p2p-circuit")));
        let adv = own.advertised();
        assert_eq!(adv.len(), MAX_MEMBER_ADDRS);
        assert_eq!(adv[0], a("/ip4/192.168.1.9/udp/1/quic-v1"));
        assert!(adv.iter().any(is_relayed), "{adv:?}");
        assert!(!adv.iter().any(is_loopback), "loopback only when there is room: {adv:?}");
    }

    #[test]
    fn remembered_ports_replace_zero_ports() {
        let ports = Ports { udp: Some(4001), tcp: Some(4002) };
        assert_eq!(ports.apply(&a("/ip4/0.0.0.0/udp/0/quic-v1")), Some(a("/ip4/0.0.0.0/udp/4001/quic-v1")));
        assert_eq!(ports.apply(&a("/ip6/::/tcp/0")), Some(a("/ip6/::/tcp/4002")));
        assert_eq!(ports.apply(&a("/ip4/0.0.0.0/tcp/9")), None, "explicit ports stay");
        assert_eq!(Ports::default().apply(&a("/ip4/0.0.0.0/tcp/0")), None);
        let seen = [a("/ip4/127.0.0.1/tcp/7"), a("/ip4/127.0.0.1/udp/8/quic-v1")];
        assert_eq!(Ports::of(&seen), Ports { udp: Some(8), tcp: Some(7) });
    }

    #[test]
    fn loopback_when_nothing_else() {
        let mut own = OwnAddrs::default();
        own.add_listen(a("/ip4/127.0.0.1/tcp/1"));
        own.add_listen(a("/ip4/127.0.0.1/udp/1/quic-v1"));
        assert_eq!(own.advertised(), vec![a("/ip4/127.0.0.1/udp/1/quic-v1"), a("/ip4/127.0.0.1/tcp/1")]);
        own.remove_listen(&a("/ip4/127.0.0.1/tcp/1"));
        assert_eq!(own.advertised().len(), 1);
    }
}
