//! The roster: kept by the host, replicated to members as whole snapshots, diffed into events.

use std::collections::VecDeque;

use libp2p::{Multiaddr, PeerId};
use partyline_protocol::PartyId;
use partyline_protocol::wire::{
    Departure, LeaveReason, MAX_DEPARTED, MAX_NAME_LEN, Member, Presence, Roster,
};

use crate::events::NodeEvent;

/// The host's authoritative roster. The host itself is always the first member.
pub(crate) struct HostRoster {
    party: PartyId,
    version: u64,
    members: Vec<Member>,
    departed: VecDeque<Departure>,
}

impl HostRoster {
    /// `version` should grow across restarts of the host (a clock reading does).
    pub(crate) fn new(party: PartyId, me: Member, version: u64) -> Self {
        Self { party, version, members: vec![me], departed: VecDeque::new() }
    }

    pub(crate) fn snapshot(&self) -> Roster {
        Roster {
            party: self.party,
            version: self.version,
            members: self.members.clone(),
            departed: self.departed.iter().cloned().collect(),
        }
    }

    pub(crate) fn members(&self) -> &[Member] {
        &self.members
    }

    pub(crate) fn get(&self, peer: &PeerId) -> Option<&Member> {
        self.members.iter().find(|m| m.peer == *peer)
    }

    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.get(peer).is_some()
    }

    /// Other members than the host.
    pub(crate) fn others(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().skip(1)
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Adds a member, or refreshes one that re-joins; its name is made unique. Returns the name and
    /// whether the member is new.
    pub(crate) fn admit(&mut self, peer: PeerId, name: &str, addrs: Vec<Multiaddr>) -> (String, bool) {
        self.version += 1;
        self.departed.retain(|d| d.peer != peer);
        if let Some(m) = self.members.iter_mut().find(|m| m.peer == peer) {
            m.addrs = addrs;
            return (m.name.clone(), false);
        }
        let name = unique_name(name, self.members.iter().map(|m| m.name.as_str()));
        self.members.push(Member { peer, name: name.clone(), presence: Presence::Online, addrs });
        (name, true)
    }

    pub(crate) fn remove(&mut self, peer: &PeerId, reason: LeaveReason) -> Option<Member> {
        let at = self.members.iter().skip(1).position(|m| m.peer == *peer)? + 1;
        let member = self.members.remove(at);
        self.version += 1;
        self.departed.push_back(Departure { peer: *peer, name: member.name.clone(), reason });
        while self.departed.len() > MAX_DEPARTED {
            self.departed.pop_front();
        }
        Some(member)
    }

    /// Returns false if nothing changed.
    pub(crate) fn set_presence(&mut self, peer: &PeerId, presence: Presence) -> bool {
        match self.members.iter_mut().find(|m| m.peer == *peer) {
            Some(m) if m.presence != presence => {
                m.presence = presence;
                self.version += 1;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn set_my_addrs(&mut self, addrs: Vec<Multiaddr>) {
        if self.members[0].addrs != addrs {
            self.members[0].addrs = addrs;
            self.version += 1;
        }
    }

    /// Members whose name matches exactly, or else looks the same (case, confusable letters:
    /// names in one party never look alike, so this is the member the user sees).
    pub(crate) fn find_by_name(&self, name: &str) -> Vec<&Member> {
        let exact: Vec<_> = self.members.iter().filter(|m| m.name == name).collect();
        if !exact.is_empty() {
            return exact;
        }
        self.members.iter().filter(|m| look_alike(&m.name, name)).collect()
    }
}

/// Whether two names look the same to a reader: equal once case is folded and confusable
/// characters are mapped to their prototypes (UTS 39 skeletons: a Cyrillic `а` is a Latin `a`).
pub(crate) fn look_alike(a: &str, b: &str) -> bool {
    let skeleton = |s: &str| unicode_security::skeleton(&s.to_lowercase()).collect::<String>();
    a == b || skeleton(a) == skeleton(b)
}

/// `name`, or `name (2)`, `name (3)`… whichever looks like no name taken, within the name length
/// limit.
pub(crate) fn unique_name<'a>(name: &str, taken: impl Iterator<Item = &'a str> + Clone) -> String {
    if !taken.clone().any(|t| look_alike(t, name)) {
        return name.to_owned();
    }
    for n in 2.. {
        let suffix = format!(" ({n})");
        let mut base = name.to_owned();
        while base.len() + suffix.len() > MAX_NAME_LEN {
            base.pop();
        }
        let candidate = format!("{}{suffix}", base.trim_end());
        if !taken.clone().any(|t| look_alike(t, &candidate)) {
            return candidate;
        }
    }
    unreachable!("some suffix is free")
}

/// The events that turn roster `old` into `new`, from `me`'s point of view.
pub(crate) fn diff(old: &[Member], new: &Roster, me: PeerId) -> Vec<NodeEvent> {
    let mut events = Vec::new();
    for m in old.iter().filter(|m| m.peer != me) {
        if !new.members.iter().any(|n| n.peer == m.peer) {
            let reason =
                new.departed.iter().rev().find(|d| d.peer == m.peer).map_or(LeaveReason::Left, |d| d.reason);
            events.push(NodeEvent::MemberLeft { peer: m.peer, name: m.name.clone(), reason });
        }
    }
    for n in new.members.iter().filter(|n| n.peer != me) {
        match old.iter().find(|m| m.peer == n.peer) {
            None => events.push(NodeEvent::MemberJoined { peer: n.peer, name: n.name.clone() }),
            Some(m) if m.presence != n.presence => {
                events.push(NodeEvent::Presence { peer: n.peer, name: n.name.clone(), presence: n.presence })
            }
            Some(_) => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Member {
        Member { peer: PeerId::random(), name: name.into(), presence: Presence::Online, addrs: vec![] }
    }

    #[test]
    fn names_are_made_unique() {
        let taken = ["bob", "bob (2)", "x".repeat(32).leak()];
        assert_eq!(unique_name("amy", taken.iter().copied()), "amy");
        assert_eq!(unique_name("bob", taken.iter().copied()), "bob (3)");
        // Case and look-alike letters do not make a second "bob": Cyrillic о, upper case.
        assert_eq!(unique_name("b\u{43E}b", taken.iter().copied()), "b\u{43E}b (3)");
        assert_eq!(unique_name("BOB", taken.iter().copied()), "BOB (3)");
        assert!(look_alike("alice", "\u{430}lice") && !look_alike("alice", "alicia"));
        let long = unique_name(&"x".repeat(32), taken.iter().copied());
        assert_eq!(long, format!("{} (2)", "x".repeat(28)));
        assert!(long.len() <= MAX_NAME_LEN);
    }

    #[test]
    fn host_roster_tracks_changes_and_reasons() {
        let host = member("host");
        let mut roster = HostRoster::new(PartyId([0; 16]), host.clone(), 1);
        let bob = PeerId::random();
        assert_eq!(roster.admit(bob, "host", vec![]), ("host (2)".to_owned(), true));
        let v = roster.snapshot().version;
        assert_eq!(roster.admit(bob, "other", vec![]), ("host (2)".to_owned(), false), "re-join keeps name");
        assert!(roster.snapshot().version > v);
        assert!(roster.remove(&host.peer, LeaveReason::Left).is_none(), "the host cannot be removed");
        assert!(roster.remove(&bob, LeaveReason::Kicked).is_some());
        let snap = roster.snapshot();
        assert_eq!(snap.members.len(), 1);
        assert_eq!(snap.departed[0].reason, LeaveReason::Kicked);
    }

    #[test]
    fn diff_reports_joins_leaves_and_presence() {
        let me = member("me");
        let (a, b) = (member("a"), member("b"));
        let old = vec![me.clone(), a.clone(), b.clone()];
        let mut a_away = a.clone();
        a_away.presence = Presence::Away;
        let c = member("c");
        let new = Roster {
            party: PartyId([0; 16]),
            version: 2,
            members: vec![me.clone(), a_away, c.clone()],
            departed: vec![Departure { peer: b.peer, name: "b".into(), reason: LeaveReason::Timeout }],
        };
        let events = diff(&old, &new, me.peer);
        assert_eq!(
            events,
            vec![
                NodeEvent::MemberLeft { peer: b.peer, name: "b".into(), reason: LeaveReason::Timeout },
                NodeEvent::Presence { peer: a.peer, name: "a".into(), presence: Presence::Away },
                NodeEvent::MemberJoined { peer: c.peer, name: "c".into() },
            ]
        );
    }
}
