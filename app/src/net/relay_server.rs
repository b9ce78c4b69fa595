//! `partyline relay`: a community relay (circuit relay v2 server) and bootstrap node.
//!
//! Peers behind NATs reserve a slot on it, so others can reach them through it; DCUtR then tries to
//! replace the relayed connection with a direct one. Its limits are sized for voice (see
//! [`crate::config::RelayServerSettings`]); libp2p's defaults would cut a call off after two
//! minutes or 128 KiB.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

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
use crate::rate::TokenBucket;

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
    /// A reservation (`dst` None) or a relayed connection to `dst` that `peer` asked for and did
    /// not get. These reports are paced; [`RelayEvent::Unreported`] sums up the rest.
    Refused {
        peer: PeerId,
        dst: Option<PeerId>,
        reason: &'static str,
    },
    /// Refusals not reported one by one since the last such report.
    Unreported {
        reservations: u64,
        circuits: u64,
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

/// Reservations of one peer at once, then one more each 2 minutes (a client renews about hourly).
const RESERVATIONS_PER_PEER: u32 = 4;
/// Relayed connections one peer may open at once, then one more each 10 s.
const CIRCUITS_PER_PEER: u32 = 16;
/// Refusals reported at once, then one a second (the rest are counted in the next report).
const REFUSAL_REPORTS: u32 = 20;

pub(crate) fn relay_limits(limits: &RelayServerSettings) -> relay::Config {
    let mut config = relay::Config::default();
    // libp2p's own per-peer and per-IP rates (60 at once) are replaced, not added to.
    let allow: HashSet<PeerId> = limits.allow.iter().copied().collect();
    // First, so a peer that is not allowed spends no address's budget.
    config.reservation_rate_limiters =
        vec![Box::new(move |peer, _: &Multiaddr, _: Instant| allow.is_empty() || allow.contains(&peer))];
    config.circuit_src_rate_limiters = Vec::new();
    let nonzero = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
    let mut config = config
        .reservation_rate_per_peer(nonzero(RESERVATIONS_PER_PEER), Duration::from_secs(120))
        .reservation_rate_per_ip(nonzero(limits.reservations_per_ip), Duration::from_secs(30))
        .circuit_src_per_peer(nonzero(CIRCUITS_PER_PEER), Duration::from_secs(10))
        .circuit_src_per_ip(nonzero(limits.circuits_per_ip), Duration::from_secs(10));
    config.max_reservations = limits.max_reservations;
    config.max_circuits = limits.max_circuits;
    config.max_circuits_per_peer = limits.max_circuits_per_peer;
    config.max_circuit_duration = limits.max_circuit_duration;
    config.max_circuit_bytes = limits.max_circuit_bytes;
    config
}

/// Why the relay said no, in words for its operator.
fn refusal(status: &relay::StatusCode, allowed: bool) -> &'static str {
    match status {
        _ if !allowed => "not on the allow-list",
        relay::StatusCode::ResourceLimitExceeded => "over a limit",
        relay::StatusCode::NoReservation => "the destination holds no reservation",
        relay::StatusCode::PermissionDenied => "permission denied",
        relay::StatusCode::ConnectionFailed => "the destination could not be reached",
        _ => "refused",
    }
}

/// Paces refusal reports, so a crowd of strangers cannot fill the operator's log: the rest are
/// counted and summed up once a second.
struct Refusals {
    reports: TokenBucket,
    reservations: u64,
    circuits: u64,
}

impl Refusals {
    fn new() -> Self {
        Self { reports: TokenBucket::new(REFUSAL_REPORTS, 1.0, Instant::now()), reservations: 0, circuits: 0 }
    }

    fn report(&mut self, peer: PeerId, dst: Option<PeerId>, reason: &'static str) -> Option<RelayEvent> {
        if self.reports.take(Instant::now()) {
            return Some(RelayEvent::Refused { peer, dst, reason });
        }
        *if dst.is_some() { &mut self.circuits } else { &mut self.reservations } += 1;
        None
    }

    /// The sum of what was not reported, if there is any.
    fn unreported(&mut self) -> Option<RelayEvent> {
        (self.reservations + self.circuits > 0).then(|| RelayEvent::Unreported {
            reservations: std::mem::take(&mut self.reservations),
            circuits: std::mem::take(&mut self.circuits),
        })
    }
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
    let mut refusals = Refusals::new();
    let mut summary = tokio::time::interval(Duration::from_secs(1));
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
            _ = summary.tick() => {
                if let Some(event) = refusals.unreported() {
                    report(event);
                }
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
                relay::Event::ReservationReqDenied { src_peer_id, status } => {
                    let allowed =
                        config.limits.allow.is_empty() || config.limits.allow.contains(&src_peer_id);
                    if let Some(event) = refusals.report(src_peer_id, None, refusal(&status, allowed)) {
                        report(event);
                    }
                }
                relay::Event::CircuitReqDenied { src_peer_id, dst_peer_id, status } => {
                    if let Some(event) =
                        refusals.report(src_peer_id, Some(dst_peer_id), refusal(&status, true))
                    {
                        report(event);
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn asks(limiters: &mut [Box<dyn relay::RateLimiter>], peer: PeerId, ip: &str, now: Instant) -> bool {
        let addr: Multiaddr = format!("/ip4/{ip}/udp/4001/quic-v1").parse().unwrap();
        limiters.iter_mut().all(|l| l.try_next(peer, &addr, now))
    }

    #[test]
    fn reservations_need_the_allow_list_and_fit_the_address_budget() {
        let now = Instant::now();
        let mut open = relay_limits(&RelayServerSettings::default());
        let granted =
            (0..20).filter(|_| asks(&mut open.reservation_rate_limiters, PeerId::random(), "10.0.0.1", now));
        assert_eq!(granted.count(), 8, "one address gets its burst of reservations, new identities or not");
        assert!(asks(&mut open.reservation_rate_limiters, PeerId::random(), "10.0.0.2", now), "per address");
        let later = now + Duration::from_secs(31);
        assert!(asks(&mut open.reservation_rate_limiters, PeerId::random(), "10.0.0.1", later), "refilled");

        let member = PeerId::random();
        let settings = RelayServerSettings { allow: vec![member], ..RelayServerSettings::default() };
        let mut closed = relay_limits(&settings);
        for _ in 0..20 {
            assert!(!asks(&mut closed.reservation_rate_limiters, PeerId::random(), "10.0.0.1", now));
        }
        assert!(
            asks(&mut closed.reservation_rate_limiters, member, "10.0.0.1", now),
            "strangers spent nothing"
        );

        let mut circuits = relay_limits(&RelayServerSettings::default()).circuit_src_rate_limiters;
        let opened = (0..50).filter(|_| asks(&mut circuits, PeerId::random(), "10.0.0.1", now)).count();
        assert_eq!(opened, 32);
    }

    #[test]
    fn refusal_reports_are_paced_and_sum_up_the_rest() {
        let mut refusals = Refusals::new();
        assert_eq!(refusals.unreported(), None);
        let reported = (0..50)
            .filter_map(|i| {
                refusals.report(PeerId::random(), (i % 2 == 0).then(PeerId::random), "over a limit")
            })
            .count();
        assert_eq!(reported, REFUSAL_REPORTS as usize);
        assert_eq!(refusals.unreported(), Some(RelayEvent::Unreported { reservations: 15, circuits: 15 }));
        assert_eq!(refusals.unreported(), None, "each refusal is summed up once");
    }
}
