//! Publishes the [`Membership`] view: the event loop hands it the IPs of its direct connections
//! to each peer as they change, and the party engine's members (with the way to each) whenever
//! either may have changed; readers see one value with both.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::watch;

use crate::events::MemberInfo;
use crate::membership::{Member, Membership, MembershipView};

pub(crate) struct MemberSet {
    tx: watch::Sender<Arc<Membership>>,
    /// The IPs of our direct connections to every peer (members or not).
    ips: HashMap<PeerId, Vec<IpAddr>>,
}

impl MemberSet {
    pub(crate) fn new() -> (Self, MembershipView) {
        let (tx, rx) = watch::channel(Arc::default());
        (Self { tx, ips: HashMap::new() }, rx)
    }

    /// The view, as readers see it.
    pub(crate) fn now(&self) -> Arc<Membership> {
        self.tx.borrow().clone()
    }

    /// The party engine's members now (`None`: not in a party). Readers wake only if something
    /// changed.
    pub(crate) fn publish(&self, members: Option<Vec<MemberInfo>>) {
        let members = members.unwrap_or_default().into_iter().map(|info| {
            let ips =
                if info.me { Vec::new() } else { self.ips.get(&info.peer).cloned().unwrap_or_default() };
            Member { info, ips }
        });
        let next = Membership::new(members);
        self.tx.send_if_modified(|now| {
            let changed = **now != next;
            if changed {
                *now = Arc::new(next);
            }
            changed
        });
    }

    /// Our direct connections to `peer` are now at these IPs (published with the members next).
    pub(crate) fn connected(&mut self, peer: PeerId, ips: Vec<IpAddr>) {
        if ips.is_empty() {
            self.ips.remove(&peer);
        } else {
            self.ips.insert(peer, ips);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Path;

    fn member(peer: PeerId, name: &str, me: bool) -> MemberInfo {
        let presence = partyline_protocol::wire::Presence::Online;
        MemberInfo { peer, name: name.into(), presence, owner: false, me, path: Path::Direct }
    }

    #[test]
    fn follows_the_engines_members_and_the_connections() {
        let (me, bob, carl) = (PeerId::random(), PeerId::random(), PeerId::random());
        let (mut set, mut rx) = MemberSet::new();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        set.connected(bob, vec![lo]);
        set.publish(None);
        assert!(!rx.has_changed().unwrap(), "not a member: nothing to publish");
        set.publish(Some(vec![member(me, "me", true), member(bob, "bob", false)]));
        let view = rx.borrow_and_update().clone();
        assert!(view.is_other(&bob) && !view.is_other(&me) && view.me().is_some());
        assert_eq!(view.ips(&bob), [lo]);
        assert_eq!(view.named("BOB").map(|m| m.info.peer), Some(bob));

        set.publish(Some(vec![member(me, "me", true), member(bob, "bob", false)]));
        assert!(!rx.has_changed().unwrap(), "the same members again wake no one");

        let now = || Some(vec![member(me, "me", true), member(carl, "carl", false)]);
        set.connected(carl, vec![lo]);
        set.publish(now());
        let view = rx.borrow_and_update().clone();
        assert!(!view.is_other(&bob) && view.ips(&carl) == [lo]);
        set.connected(carl, vec![]);
        set.publish(now());
        let view = rx.borrow_and_update().clone();
        assert!(view.is_other(&carl) && view.ips(&carl).is_empty(), "still a member, not reachable directly");

        set.publish(None);
        assert_eq!(rx.borrow().all().count(), 0);
    }
}
