//! `partyline relay`: a community relay (circuit relay v2 server) and bootstrap node.
//!
//! Peers behind NATs reserve a slot on it, so others can reach them through it; DCUtR then tries to
//! replace the relayed connection with a direct one. Its limits are sized for voice (see
//! [`crate::config::RelayServerSettings`]); libp2p's defaults would cut a call off after two
//! minutes or 128 KiB.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, SwarmBuilder, autonat, identify, kad, noise, ping, relay, tls, yamux};

use super::swarm::{
    autonat_behaviour, identify_config, kad_behaviour, learn_kad_peer, ping_config, quic_config, tcp_config,
};
use crate::config::RelayServerSettings;

#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub listen: Vec<Multiaddr>,
    /// Public addresses to announce (behind a port forward); listen addresses are announced too.
    pub external: Vec<Multiaddr>,
    pub limits: RelayServerSettings,
}

/// What the relay reports while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// Listening; `addrs` end with `/p2p/<relay id>`, ready to paste into settings or `--relay`.
    Ready {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
    Reservation {
        peer: PeerId,
    },
    Circuit {
        src: PeerId,
        dst: PeerId,
    },
    CircuitClosed {
        src: PeerId,
        dst: PeerId,
        error: Option<String>,
    },
}

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    autonat: autonat::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

pub(crate) fn relay_limits(limits: &RelayServerSettings) -> relay::Config {
    let mut config = relay::Config::default()
        // Several members of several parties may sit behind one NAT address.
        .reservation_rate_per_ip(NonZeroU32::new(120).expect("nonzero"), Duration::from_secs(60))
        .circuit_src_per_ip(NonZeroU32::new(240).expect("nonzero"), Duration::from_secs(60));
    config.max_reservations = limits.max_reservations;
    config.max_circuits = limits.max_circuits;
    config.max_circuits_per_peer = limits.max_circuits_per_peer;
    config.max_circuit_duration = limits.max_circuit_duration;
    config.max_circuit_bytes = limits.max_circuit_bytes;
    config
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| {
        matches!(p, Protocol::Ip4(ip) if ip.is_loopback())
            || matches!(p, Protocol::Ip6(ip) if ip.is_loopback())
    })
}

fn default_listen(port: u16) -> Vec<Multiaddr> {
    [format!("/ip4/0.0.0.0/udp/{port}/quic-v1"), format!("/ip4/0.0.0.0/tcp/{port}")]
        .iter()
        .map(|a| a.parse().expect("valid multiaddr"))
        .collect()
}

/// Runs the relay until the task is dropped, reporting through `report`.
pub async fn run(key: Keypair, config: RelayConfig, mut report: impl FnMut(RelayEvent)) -> Result<()> {
    let limits = relay_limits(&config.limits);
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp_config(), (tls::Config::new, noise::Config::new), yamux::Config::default)
        .context("cannot set up TCP")?
        .with_quic_config(quic_config)
        .with_behaviour(|key| {
            let mut kad = kad_behaviour(key);
            kad.set_mode(Some(kad::Mode::Server));
            let mut relay = relay::Behaviour::new(key.public().to_peer_id(), limits);
            relay.set_status(Some(relay::Status::Enable));
            RelayBehaviour {
                relay,
                identify: identify::Behaviour::new(identify_config(key)),
                ping: ping::Behaviour::new(ping_config()),
                autonat: autonat_behaviour(key),
                kad,
            }
        })
        .context("cannot set up the relay")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();

    let listen =
        if config.listen.is_empty() { default_listen(config.limits.port) } else { config.listen.clone() };
    let mut pending = HashSet::new();
    for addr in listen {
        pending.insert(swarm.listen_on(addr.clone()).with_context(|| format!("cannot listen on {addr}"))?);
    }
    for addr in &config.external {
        swarm.add_external_address(addr.clone());
    }
    let me = *swarm.local_peer_id();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    let mut ready = false;
    let settle = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(settle);

    loop {
        let event = tokio::select! {
            event = swarm.select_next_some() => event,
            _ = &mut settle, if !ready => {
                if addrs.is_empty() {
                    bail!("the relay could not listen on any address");
                }
                ready = true;
                report(RelayEvent::Ready { peer: me, addrs: addrs.clone() });
                continue;
            }
        };
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                // Announced to clients in reservations; loopback only helps peers on this machine.
                if !is_loopback(&address) || config.listen.iter().all(is_loopback) {
                    swarm.add_external_address(address.clone());
                }
                addrs.push(address.with(Protocol::P2p(me)));
                pending.remove(&listener_id);
                if pending.is_empty() && !ready {
                    // Listening on 0.0.0.0 reports one address per interface, in quick succession.
                    settle.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(300));
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                pending.remove(&listener_id);
            }
            SwarmEvent::Behaviour(RelayBehaviourEvent::Relay(event)) => match event {
                relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                    report(RelayEvent::Reservation { peer: src_peer_id })
                }
                relay::Event::CircuitReqAccepted { src_peer_id, dst_peer_id } => {
                    report(RelayEvent::Circuit { src: src_peer_id, dst: dst_peer_id })
                }
                relay::Event::CircuitClosed { src_peer_id, dst_peer_id, error } => {
                    report(RelayEvent::CircuitClosed {
                        src: src_peer_id,
                        dst: dst_peer_id,
                        error: error.map(|e| e.to_string()),
                    })
                }
                other => tracing::debug!(?other, "relay event"),
            },
            SwarmEvent::Behaviour(RelayBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => learn_kad_peer(&mut swarm.behaviour_mut().kad, &peer_id, info),
            _ => {}
        }
    }
}
