//! Who else is in the party, for the parts of the node that serve members only (transfers): the
//! event loop follows the party engine's events and publishes the set on a watch channel.

use std::collections::HashSet;
use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::watch;

use crate::events::NodeEvent;
use crate::transfer::Members;

pub(crate) struct MemberSet {
    tx: watch::Sender<Members>,
    me: PeerId,
}

impl MemberSet {
    pub(crate) fn new(me: PeerId) -> (Self, watch::Receiver<Members>) {
        let (tx, rx) = watch::channel(Arc::new(HashSet::new()));
        (Self { tx, me }, rx)
    }

    pub(crate) fn on_event(&self, event: &NodeEvent) {
        let change = |f: &dyn Fn(&mut HashSet<PeerId>) -> bool| {
            self.tx.send_modify(|members| {
                f(Arc::make_mut(members));
            });
        };
        match event {
            NodeEvent::Joined { members, .. } => {
                let peers: HashSet<PeerId> =
                    members.iter().map(|m| m.peer).filter(|p| *p != self.me).collect();
                self.tx.send_replace(Arc::new(peers));
            }
            NodeEvent::MemberJoined { peer, .. } if *peer != self.me => change(&|m| m.insert(*peer)),
            NodeEvent::MemberLeft { peer, .. } => change(&|m| m.remove(peer)),
            e if e.is_terminal() => drop(self.tx.send_replace(Arc::new(HashSet::new()))),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_joins_and_departures() {
        let me = PeerId::random();
        let (bob, carl) = (PeerId::random(), PeerId::random());
        let (set, rx) = MemberSet::new(me);
        let member = |peer, name: &str| crate::events::MemberInfo {
            peer,
            name: name.into(),
            presence: partyline_protocol::wire::Presence::Online,
            owner: false,
            me: peer == me,
            path: crate::events::Path::Direct,
        };
        set.on_event(&NodeEvent::Joined {
            party: partyline_protocol::PartyId([1; 16]),
            members: vec![member(me, "me"), member(bob, "bob")],
        });
        assert_eq!(*rx.borrow().as_ref(), HashSet::from([bob]));
        set.on_event(&NodeEvent::MemberJoined { peer: carl, name: "carl".into() });
        set.on_event(&NodeEvent::MemberLeft {
            peer: bob,
            name: "bob".into(),
            reason: partyline_protocol::wire::LeaveReason::Left,
        });
        assert_eq!(*rx.borrow().as_ref(), HashSet::from([carl]));
        set.on_event(&NodeEvent::Left);
        assert!(rx.borrow().is_empty());
    }
}
