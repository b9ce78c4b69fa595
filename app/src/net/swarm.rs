//! The libp2p stack of a party node: transports and behaviours.
//!
//! Transports: QUIC (preferred), TCP with TLS or Noise and yamux as fallback, DNS, and circuit
//! relay v2 as a client so peers behind NATs are reachable through a community relay. Behaviours:
//! identify (observed addresses), ping (liveness), AutoNAT (are we reachable?), DCUtR (upgrade a
//! relayed connection to a direct one by hole punching), mDNS (peers on the LAN), Kademlia (find
//! peers by id through relays and other peers), and generic streams for the party protocol.

use std::time::Duration;

use anyhow::{Context, Result};
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, allow_block_list, autonat, connection_limits, dcutr, identify, kad,
    mdns, noise, ping, quic, relay, tcp, tls, yamux,
};

pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new(partyline_protocol::names::KAD);
pub(crate) const IDENTIFY_PROTOCOL: &str = partyline_protocol::names::IDENTIFY;

/// A dead peer shows within this long on QUIC (no packets, including keep-alives, arrive).
pub(crate) const QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Connections carrying no party stream close after this long.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections this node takes: handshakes under way from others (in all, and from one address),
/// connections from others, and connections to one peer (QUIC, TCP and relayed ones can overlap
/// while a link is upgraded). A handshake that does not finish ends after libp2p's 10 s.
const MAX_PENDING_INCOMING: u32 = 256;
const MAX_PENDING_PER_ADDRESS: usize = 8;
/// Strangers' connections taken in from one address (a LAN party behind one NAT joining at once
/// stays well under it).
const MAX_STRANGERS_PER_ADDRESS: usize = 32;
pub(crate) const MAX_ESTABLISHED_INCOMING: u32 = 128;
const MAX_PER_PEER: u32 = 8;

pub(crate) fn connection_limits() -> connection_limits::Behaviour {
    connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
            .with_max_established_incoming(Some(MAX_ESTABLISHED_INCOMING))
            .with_max_established_per_peer(Some(MAX_PER_PEER)),
    )
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Peers this node refuses to connect to (everyone, while it stops).
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) strangers: super::strangers::Behaviour,
    pub(crate) relay_client: relay::client::Behaviour,
    pub(crate) dcutr: dcutr::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) autonat: autonat::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) stream: libp2p_stream::Behaviour,
}

/// The largest UDP payload path MTU discovery tries: where the path allows it (a LAN with jumbo
/// frames, loopback) bulk transfers then cost far fewer packets; on the internet it settles at
/// the path's MTU as before.
const QUIC_MTU_UPPER_BOUND: u16 = 65_000;

pub(crate) fn quic_config(config: quic::Config) -> quic::Config {
    let mut config = config.mtu_upper_bound(QUIC_MTU_UPPER_BOUND);
    config.max_idle_timeout = QUIC_IDLE_TIMEOUT.as_millis() as u32;
    config.keep_alive_interval = QUIC_KEEP_ALIVE;
    config
}

pub(crate) fn tcp_config() -> tcp::Config {
    tcp::Config::default().nodelay(true)
}

pub(crate) fn identify_config(key: &Keypair) -> identify::Config {
    identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
        .with_agent_version(format!("partyline/{}", env!("CARGO_PKG_VERSION")))
}

pub(crate) fn ping_config() -> ping::Config {
    ping::Config::new().with_interval(Duration::from_secs(5)).with_timeout(Duration::from_secs(10))
}

pub(crate) fn kad_behaviour(key: &Keypair) -> kad::Behaviour<kad::store::MemoryStore> {
    let peer = key.public().to_peer_id();
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config.set_query_timeout(Duration::from_secs(30));
    // Bootstrapping needs known peers (relays); the event loop bootstraps when it has some.
    config.set_periodic_bootstrap_interval(None);
    kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), config)
}

/// Adds a peer that identified itself to the routing table, if it speaks our Kademlia protocol.
pub(crate) fn learn_kad_peer(
    kad: &mut kad::Behaviour<kad::store::MemoryStore>,
    peer: &libp2p::PeerId,
    info: identify::Info,
) {
    if info.protocols.contains(&KAD_PROTOCOL) {
        for addr in info.listen_addrs {
            kad.add_address(peer, addr);
        }
    }
}

pub(crate) fn autonat_behaviour(key: &Keypair) -> autonat::Behaviour {
    let config = autonat::Config {
        // Parties on a LAN are worth probing too.
        only_global_ips: false,
        boot_delay: Duration::from_secs(5),
        ..Default::default()
    };
    autonat::Behaviour::new(key.public().to_peer_id(), config)
}

pub(crate) fn build(key: Keypair, mdns: bool) -> Result<Swarm<Behaviour>> {
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp_config(), (tls::Config::new, noise::Config::new), yamux::Config::default)
        .context("cannot set up TCP")?
        .with_quic_config(quic_config)
        .with_dns()
        .context("cannot set up DNS")?
        .with_relay_client((tls::Config::new, noise::Config::new), yamux::Config::default)
        .context("cannot set up the relay client")?
        .with_behaviour(|key, relay_client| {
            let peer = key.public().to_peer_id();
            let mdns = if mdns {
                match mdns::tokio::Behaviour::new(mdns::Config::default(), peer) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!(error = %e, "mDNS unavailable; LAN discovery is off");
                        None
                    }
                }
            } else {
                None
            };
            Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits(),
                strangers: super::strangers::Behaviour::new(
                    MAX_PENDING_PER_ADDRESS,
                    MAX_STRANGERS_PER_ADDRESS,
                ),
                relay_client,
                dcutr: dcutr::Behaviour::new(peer),
                identify: identify::Behaviour::new(identify_config(key)),
                ping: ping::Behaviour::new(ping_config()),
                autonat: autonat_behaviour(key),
                mdns: Toggle::from(mdns),
                kad: kad_behaviour(key),
                stream: libp2p_stream::Behaviour::new(),
            }
        })
        .context("cannot set up the network behaviours")?
        // Smart dialing tries QUIC first and TCP a moment later, instead of both at once: fewer
        // duplicate connections, whose abandoned QUIC halves linger on the other side.
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT).with_smart_dial())
        .build();
    Ok(swarm)
}
