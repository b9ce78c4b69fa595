//! What the swarm reports: listeners and addresses coming and going, connections opening and
//! closing (the paths to members), and what the behaviours found (identify, ping, mDNS, DCUtR).

use std::time::Instant;

use libp2p::swarm::SwarmEvent;
use libp2p::{dcutr, identify, mdns, ping, relay};

use super::{EventLoop, RELAY_RETRY, RELAYED_CLOSE_DELAY};
use crate::events::NodeEvent;
use crate::net::swarm::{BehaviourEvent, learn_kad_peer};

impl EventLoop {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                tracing::info!(%address, "listening");
                self.own.add_listen(address);
                self.pending_listeners.remove(&listener_id);
                if self.pending_listeners.is_empty() {
                    self.become_ready();
                }
                self.addrs_changed();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.own.remove_listen(&address);
                self.addrs_changed();
            }
            SwarmEvent::ListenerClosed { listener_id, addresses, reason } => {
                for address in &addresses {
                    self.own.remove_listen(address);
                }
                self.pending_listeners.remove(&listener_id);
                if let Some(relay) = self.relay_listeners.remove(&listener_id) {
                    let why = reason.err().map(|e| e.to_string()).unwrap_or_else(|| "closed".into());
                    self.emit(NodeEvent::Error {
                        message: format!("relay {relay} is not usable now: {why}"),
                    });
                    self.relay_retry_at = Some(Instant::now() + RELAY_RETRY);
                }
                if self.pending_listeners.is_empty() {
                    self.become_ready();
                }
                self.addrs_changed();
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                self.own.add_external(address);
                self.addrs_changed();
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                self.own.remove_external(&address);
                self.addrs_changed();
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                if self.shutdown.as_ref().is_some_and(|s| s.stop_at.is_some()) {
                    // Stopping: the peer connected again; close properly so that it knows.
                    self.swarm.behaviour_mut().blocked.block_peer(peer_id);
                    return;
                }
                let before = self.connections.path(&peer_id);
                self.connections.opened(peer_id, connection_id, &endpoint);
                self.connections_changed(peer_id);
                self.lost.remove(&peer_id);
                self.engine.on_connected(peer_id, Instant::now());
                self.path_changed(peer_id, before);
                // Once a direct connection exists, the relayed one only costs the relay. The party
                // stream finishes cleanly on it first, then the relayed connection is closed, and
                // the stream reopens on the direct one.
                let relayed = self.connections.redundant_relayed(&peer_id);
                if !relayed.is_empty() {
                    self.links.migrate(peer_id);
                    self.close_at
                        .extend(relayed.into_iter().map(|c| (c, Instant::now() + RELAYED_CLOSE_DELAY)));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, cause, .. } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                let before = self.connections.path(&peer_id);
                self.connections.closed(peer_id, connection_id);
                self.connections_changed(peer_id);
                if num_established == 0 {
                    self.lost.insert(peer_id, Instant::now());
                } else {
                    self.path_changed(peer_id, before);
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                learn_kad_peer(&mut self.swarm.behaviour_mut().kad, &peer_id, info);
            }
            // A peer that stops answering pings is gone even if its TCP connection looks open.
            BehaviourEvent::Ping(ping::Event { peer, connection, result: Err(ping::Failure::Timeout) }) => {
                tracing::debug!(%peer, "ping timed out; closing the connection");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm.add_peer_address(peer, addr);
                }
            }
            BehaviourEvent::Dcutr(dcutr::Event { remote_peer_id, result }) => {
                tracing::info!(peer = %remote_peer_id, ?result, "hole punch finished");
                // Hole punching starts as soon as a relayed connection opens, often before the
                // peer has joined: its name may not be known yet.
                let name = self.engine.member_name(&remote_peer_id).unwrap_or_default();
                let (ok, error) = match result {
                    Ok(_) => (true, None),
                    Err(e) => (false, Some(e.to_string())),
                };
                self.emit(NodeEvent::HolePunch { peer: remote_peer_id, name, ok, error });
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                ..
            }) => {
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
            }
            other => tracing::trace!(?other, "behaviour event"),
        }
    }
}
