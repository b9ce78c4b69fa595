//! What the overlay shows, folded from the node's events: the one owner of the overlay's view of
//! the party. Widgets read these resources and render them; they never keep copies.

use std::collections::VecDeque;
use std::time::Duration;

use bevy::prelude::*;
use libp2p::PeerId;
use partyline_protocol::wire::{LeaveReason, Presence};

use crate::events::{MemberInfo, NodeEvent, Path};

/// Chat lines kept for scrolling back.
pub(crate) const CHAT_LINES: usize = 200;
/// Toasts on screen at once; older ones make room.
pub(crate) const TOASTS: usize = 4;
/// How long a toast stays.
pub(crate) const TOAST_TIME: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not in a party (yet, or after leaving one).
    #[default]
    Idle,
    InParty,
    Reconnecting(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Member {
    pub(crate) peer: PeerId,
    pub(crate) name: String,
    pub(crate) owner: bool,
    pub(crate) me: bool,
    pub(crate) presence: Presence,
    pub(crate) path: Path,
    pub(crate) speaking: bool,
    /// This listener's volume for them, 0 to 2 (1 as sent).
    pub(crate) volume: f32,
    /// Where they were placed on the radar (metres: x right, y ahead), if anywhere.
    pub(crate) placed: Option<Vec2>,
}

impl Member {
    fn new(info: &MemberInfo) -> Self {
        Self {
            peer: info.peer,
            name: info.name.clone(),
            owner: info.owner,
            me: info.me,
            presence: info.presence,
            path: info.path,
            speaking: false,
            volume: 1.0,
            placed: None,
        }
    }
}

/// The party as this node sees it.
#[derive(Resource, Debug, Default)]
pub(crate) struct Party {
    pub(crate) status: Status,
    /// Me first, then by name.
    pub(crate) members: Vec<Member>,
    /// The newest invite link (only the owner makes them).
    pub(crate) link: Option<String>,
    pub(crate) muted: bool,
    pub(crate) deafened: bool,
}

impl Party {
    pub(crate) fn member(&self, peer: &PeerId) -> Option<&Member> {
        self.members.iter().find(|m| m.peer == *peer)
    }

    pub(crate) fn member_mut(&mut self, peer: &PeerId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.peer == *peer)
    }

    pub(crate) fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.me)
    }

    fn upsert(&mut self, info: &MemberInfo) {
        match self.member_mut(&info.peer) {
            Some(m) => {
                m.name.clone_from(&info.name);
                m.owner = info.owner;
                m.presence = info.presence;
                m.path = info.path;
            }
            None => self.members.push(Member::new(info)),
        }
    }

    fn sort(&mut self) {
        self.members.sort_by(|a, b| b.me.cmp(&a.me).then_with(|| a.name.cmp(&b.name)));
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChatLine {
    pub(crate) from: String,
    pub(crate) text: String,
    pub(crate) mine: bool,
}

#[derive(Resource, Debug, Default)]
pub(crate) struct Chat {
    pub(crate) lines: VecDeque<ChatLine>,
    /// Messages that came while the chat was closed.
    pub(crate) unread: u32,
    pub(crate) open: bool,
    /// What is being typed.
    pub(crate) draft: String,
}

impl Chat {
    pub(crate) fn set_open(&mut self, open: bool) {
        self.open = open;
        if open {
            self.unread = 0;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToastKind {
    Info,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Toast {
    pub(crate) text: String,
    pub(crate) kind: ToastKind,
    /// Time (since start) at which it goes away.
    pub(crate) until: Duration,
}

#[derive(Resource, Debug, Default)]
pub(crate) struct Toasts {
    pub(crate) items: VecDeque<Toast>,
}

impl Toasts {
    pub(crate) fn push(&mut self, now: Duration, kind: ToastKind, text: impl Into<String>) {
        if self.items.len() == TOASTS {
            self.items.pop_front();
        }
        self.items.push_back(Toast { text: text.into(), kind, until: now + TOAST_TIME });
    }

    /// Removes expired toasts; returns when the next one expires.
    pub(crate) fn expire(&mut self, now: Duration) -> Option<Duration> {
        self.items.retain(|t| t.until > now);
        self.items.iter().map(|t| t.until).min()
    }
}

/// Folds one node event into the overlay's view.
pub(crate) fn absorb(
    event: &NodeEvent,
    now: Duration,
    party: &mut Party,
    chat: &mut Chat,
    toasts: &mut Toasts,
) {
    match event {
        NodeEvent::Joined { members, .. } | NodeEvent::Members { members } => {
            if matches!(event, NodeEvent::Joined { .. }) {
                party.status = Status::InParty;
                toasts.push(now, ToastKind::Info, "In the party");
            }
            party.members.retain(|m| members.iter().any(|i| i.peer == m.peer));
            for info in members {
                party.upsert(info);
            }
            party.sort();
        }
        NodeEvent::MemberJoined { peer, name } => {
            if party.member(peer).is_none() {
                let info = MemberInfo {
                    peer: *peer,
                    name: name.clone(),
                    presence: Presence::Online,
                    owner: false,
                    me: false,
                    path: Path::Direct,
                };
                party.upsert(&info);
                party.sort();
            }
            toasts.push(now, ToastKind::Info, format!("{name} joined"));
        }
        NodeEvent::MemberLeft { peer, name, reason } => {
            party.members.retain(|m| m.peer != *peer);
            let why = match reason {
                LeaveReason::Kicked => " (kicked)",
                LeaveReason::Banned => " (banned)",
                LeaveReason::Timeout => " (lost connection)",
                LeaveReason::Left => "",
            };
            toasts.push(now, ToastKind::Info, format!("{name} left{why}"));
        }
        NodeEvent::Presence { peer, presence, .. } => {
            if let Some(m) = party.member_mut(peer) {
                m.presence = *presence;
            }
        }
        NodeEvent::Connection { peer, path, .. } => {
            if let Some(m) = party.member_mut(peer) {
                m.path = *path;
            }
        }
        NodeEvent::Speaking { peer, on, .. } => {
            if let Some(m) = party.member_mut(peer) {
                m.speaking = *on;
            }
        }
        NodeEvent::Link { link, .. } => party.link = Some(link.clone()),
        NodeEvent::Chat { from, text, peer, history, .. } => {
            if chat.lines.len() == CHAT_LINES {
                chat.lines.pop_front();
            }
            let mine = party.me().is_some_and(|m| m.peer == *peer);
            chat.lines.push_back(ChatLine { from: from.clone(), text: text.clone(), mine });
            if !chat.open && !history && !mine {
                chat.unread = chat.unread.saturating_add(1);
            }
        }
        NodeEvent::Reconnecting { attempt } => party.status = Status::Reconnecting(*attempt),
        NodeEvent::Error { message } => toasts.push(now, ToastKind::Error, message.clone()),
        NodeEvent::JoinFailed { message } => {
            party.status = Status::Idle;
            toasts.push(now, ToastKind::Error, message.clone());
        }
        NodeEvent::Kicked { banned } => {
            leave(party);
            let text =
                if *banned { "You were banned from the party" } else { "You were removed from the party" };
            toasts.push(now, ToastKind::Error, text);
        }
        NodeEvent::PartyEnded => {
            leave(party);
            toasts.push(now, ToastKind::Info, "The party has ended");
        }
        NodeEvent::Left => leave(party),
        NodeEvent::Listening { .. }
        | NodeEvent::HolePunch { .. }
        | NodeEvent::Revoked { .. }
        | NodeEvent::VoiceStats(_)
        | NodeEvent::AudioStarted { .. }
        | NodeEvent::Stats(_) => {}
    }
}

fn leave(party: &mut Party) {
    party.status = Status::Idle;
    party.members.clear();
    party.link = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::tests::member as info;

    #[test]
    fn toasts_are_bounded_and_expire() {
        let mut t = Toasts::default();
        for i in 0..10 {
            t.push(Duration::from_secs(i), ToastKind::Info, format!("t{i}"));
        }
        assert_eq!(t.items.len(), TOASTS);
        assert_eq!(t.items[0].text, "t6");
        // t6..t9 expire at 11..14 s.
        assert_eq!(t.expire(Duration::from_secs(12)), Some(Duration::from_secs(13)));
        assert_eq!(t.items.len(), 2);
        assert_eq!(t.expire(Duration::from_secs(100)), None);
    }

    #[test]
    fn chat_counts_unread_only_while_closed_and_not_mine_or_history() {
        let (mut party, mut chat, mut toasts) = (Party::default(), Chat::default(), Toasts::default());
        let me = info("me", true);
        let bob = info("bob", false);
        let joined = NodeEvent::Joined {
            party: partyline_protocol::PartyId([1; 16]),
            members: vec![me.clone(), bob.clone()],
        };
        absorb(&joined, Duration::ZERO, &mut party, &mut chat, &mut toasts);
        let line = |peer: PeerId, history: bool| NodeEvent::Chat {
            seq: 1,
            peer,
            from: "x".into(),
            text: "hi".into(),
            ts_ms: 0,
            history,
        };
        for e in [line(bob.peer, false), line(bob.peer, true), line(me.peer, false)] {
            absorb(&e, Duration::ZERO, &mut party, &mut chat, &mut toasts);
        }
        assert_eq!(chat.unread, 1);
        assert!(chat.lines[2].mine);
        chat.set_open(true);
        assert_eq!(chat.unread, 0);
        absorb(&line(bob.peer, false), Duration::ZERO, &mut party, &mut chat, &mut toasts);
        assert_eq!(chat.unread, 0);
        for _ in 0..CHAT_LINES + 5 {
            absorb(&line(bob.peer, false), Duration::ZERO, &mut party, &mut chat, &mut toasts);
        }
        assert_eq!(chat.lines.len(), CHAT_LINES);
    }
}
