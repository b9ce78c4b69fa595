//! Who else is in the party, and at which IP addresses we are directly connected to each, for
//! the parts of the node that serve members only and that may reach them directly (transfers):
//! the event loop follows the party engine's events and its connections, and publishes the set
//! on a watch channel.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::watch;

use crate::events::NodeEvent;
use crate::transfer::Members;

pub(crate) struct MemberSet {
    tx: watch::Sender<Members>,
    me: PeerId,
    /// The IPs of our direct connections to every peer (members or not).
    ips: HashMap<PeerId, Vec<IpAddr>>,
}

impl MemberSet {
    pub(crate) fn new(me: PeerId) -> (Self, watch::Receiver<Members>) {
        let (tx, rx) = watch::channel(Arc::new(HashMap::new()));
        (Self { tx, me, ips: HashMap::new() }, rx)
    }

    fn ips_of(&self, peer: &PeerId) -> Vec<IpAddr> {
        self.ips.get(peer).cloned().unwrap_or_default()
    }

    pub(crate) fn on_event(&self, event: &NodeEvent) {
        match event {
            NodeEvent::Joined { members, .. } => {
                let peers =
                    members.iter().filter(|m| m.peer != self.me).map(|m| (m.peer, self.ips_of(&m.peer)));
                self.tx.send_replace(Arc::new(peers.collect()));
            }
            NodeEvent::MemberJoined { peer, .. } if *peer != self.me => {
                let ips = self.ips_of(peer);
                self.tx.send_modify(|m| drop(Arc::make_mut(m).insert(*peer, ips)));
            }
            NodeEvent::MemberLeft { peer, .. } => {
                self.tx.send_modify(|m| drop(Arc::make_mut(m).remove(peer)))
            }
            e if e.is_terminal() => drop(self.tx.send_replace(Arc::new(HashMap::new()))),
            _ => {}
        }
    }

    /// Our direct connections to `peer` are now at these IPs.
    pub(crate) fn connected(&mut self, peer: PeerId, ips: Vec<IpAddr>) {
        if ips.is_empty() {
            self.ips.remove(&peer);
        } else {
            self.ips.insert(peer, ips.clone());
        }
        self.tx.send_if_modified(|members| match members.get(&peer) {
            Some(known) if *known != ips => {
                Arc::make_mut(members).insert(peer, ips);
                true
            }
            _ => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_joins_departures_and_connections() {
        let me = PeerId::random();
        let (bob, carl) = (PeerId::random(), PeerId::random());
        let (mut set, rx) = MemberSet::new(me);
        let member = |peer, name: &str| crate::events::MemberInfo {
            peer,
            name: name.into(),
            presence: partyline_protocol::wire::Presence::Online,
            owner: false,
            me: peer == me,
            path: crate::events::Path::Direct,
        };
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        set.connected(bob, vec![lo]);
        set.on_event(&NodeEvent::Joined {
            party: partyline_protocol::PartyId([1; 16]),
            members: vec![member(me, "me"), member(bob, "bob")],
        });
        assert_eq!(*rx.borrow().as_ref(), HashMap::from([(bob, vec![lo])]));
        set.on_event(&NodeEvent::MemberJoined { peer: carl, name: "carl".into() });
        set.connected(carl, vec![lo]);
        set.on_event(&NodeEvent::MemberLeft {
            peer: bob,
            name: "bob".into(),
            reason: partyline_protocol::wire::LeaveReason::Left,
        });
        assert_eq!(*rx.borrow().as_ref(), HashMap::from([(carl, vec![lo])]));
        set.connected(carl, vec![]);
        assert_eq!(
            *rx.borrow().as_ref(),
            HashMap::from([(carl, vec![])]),
            "still a member, not reachable directly"
        );
        set.on_event(&NodeEvent::Left);
        assert!(rx.borrow().is_empty());
    }
}
