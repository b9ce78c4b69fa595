//! Who is in the party: one view, published by the node's event loop on a watch channel from the
//! party engine's roster (names, owner, presence) and the node's connections (the way to each
//! member, the IPs it is directly connected at), whenever either changes. Transfers, voice and
//! plugins read it; front ends follow the node's events instead.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::watch;

use crate::events::MemberInfo;

/// A member, and the IPs of this node's direct connections to it (none: relayed, or not
/// connected).
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub info: MemberInfo,
    pub ips: Vec<IpAddr>,
}

/// The party's members as the node has them now, this node included; empty outside a party.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Membership {
    members: BTreeMap<PeerId, Member>,
}

/// Where a part of the node reads the membership.
pub type MembershipView = watch::Receiver<Arc<Membership>>;

impl Membership {
    pub fn new(members: impl IntoIterator<Item = Member>) -> Self {
        Self { members: members.into_iter().map(|m| (m.info.peer, m)).collect() }
    }

    /// A view that never changes (tests, and parts running without a node).
    pub fn fixed(self) -> MembershipView {
        watch::channel(Arc::new(self)).1
    }

    pub fn get(&self, peer: &PeerId) -> Option<&Member> {
        self.members.get(peer)
    }

    /// Whether `peer` is another member (not this node).
    pub fn is_other(&self, peer: &PeerId) -> bool {
        self.members.get(peer).is_some_and(|m| !m.info.me)
    }

    /// Every member, this node included, in peer id order.
    pub fn all(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The other members.
    pub fn others(&self) -> impl Iterator<Item = &Member> {
        self.all().filter(|m| !m.info.me)
    }

    pub fn me(&self) -> Option<&Member> {
        self.all().find(|m| m.info.me)
    }

    /// The IPs `peer` is directly connected at (empty if none, or not a member).
    pub fn ips(&self, peer: &PeerId) -> &[IpAddr] {
        self.members.get(peer).map_or(&[], |m| &m.ips)
    }

    /// The other member called `name`: exactly, or else ignoring case.
    pub fn named(&self, name: &str) -> Option<&Member> {
        (self.others().find(|m| m.info.name == name))
            .or_else(|| self.others().find(|m| m.info.name.eq_ignore_ascii_case(name)))
    }
}
