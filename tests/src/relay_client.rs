//! Throwaway libp2p identities that ask a relay for a slot (a reservation) or for a relayed
//! connection to a peer that holds one, each from a source address of the test's choosing
//! (127.0.0.x: QUIC dials from the socket the identity listens on).

use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId, SwarmBuilder, noise, relay, yamux};

/// How long one request may take before it counts as refused.
const PATIENCE: Duration = Duration::from_secs(5);

fn swarm(key: Keypair, from_ip: &str) -> Swarm<relay::client::Behaviour> {
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .expect("relay client transport")
        .with_behaviour(|_, relay| relay)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    swarm.listen_on(format!("/ip4/{from_ip}/udp/0/quic-v1").parse().expect("address")).expect("listen");
    swarm
}

/// Asks `relay` (ending in `/p2p/<relay>`) for a reservation as `key`, from `from_ip`. Returns the
/// swarm that holds it (keep polling it with [`hold`] for the slot to stay), or `None` if refused.
pub async fn reserve(
    key: Keypair,
    relay: &Multiaddr,
    from_ip: &str,
) -> Option<Swarm<relay::client::Behaviour>> {
    let mut swarm = swarm(key, from_ip);
    let circuit = swarm.listen_on(relay.clone().with(Protocol::P2pCircuit)).expect("listen on the relay");
    let granted = tokio::time::timeout(PATIENCE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(relay::client::Event::ReservationReqAccepted { .. }) => return true,
                SwarmEvent::ListenerClosed { listener_id, .. } if listener_id == circuit => return false,
                SwarmEvent::ListenerError { listener_id, .. } if listener_id == circuit => return false,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    granted.then_some(swarm)
}

/// Keeps a reservation's swarm running (accepting relayed connections) until the task is dropped.
pub async fn hold(mut swarm: Swarm<relay::client::Behaviour>) {
    loop {
        swarm.select_next_some().await;
    }
}

/// Whether `key`, from `from_ip`, gets a relayed connection through `relay` to `dst`. A
/// connection it gets is closed again (so the relay can end the circuit).
pub async fn circuit(key: Keypair, relay: &Multiaddr, dst: PeerId, from_ip: &str) -> bool {
    let mut swarm = swarm(key, from_ip);
    let target = relay.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(dst));
    swarm.dial(target).expect("dial through the relay");
    let opened = tokio::time::timeout(PATIENCE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == dst => return true,
                SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), .. } if peer == dst => {
                    return false;
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    let _ = swarm.disconnect_peer_id(dst);
    let closed = async {
        while !matches!(swarm.select_next_some().await, SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == dst)
        {
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
    opened
}
