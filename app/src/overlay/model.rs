//! What the overlay shows, folded from the node's events: the one owner of the overlay's view of
//! the party. Widgets read these resources and render them; they never keep copies.

use std::collections::VecDeque;
use std::time::Duration;

use bevy::prelude::*;
use libp2p::PeerId;
use partyline_protocol::wire::{LeaveReason, Presence};

use partyline_protocol::voice::Pose;

use crate::events::{MemberInfo, MemberPose, NodeEvent, Outcome, Path};

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
    /// Whether voice is on: the voice engine reports its state when it starts (chat only: never).
    pub(crate) voice: bool,
    /// As the voice engine reports them: the buttons show these, never a click's guess.
    pub(crate) muted: bool,
    pub(crate) deafened: bool,
    /// A link from outside waiting for Join / Stay: its party and owner, shortened.
    pub(crate) offer: Option<(String, String)>,
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

/// Where the games put the members, relative to me (metres: x to my right, y ahead); empty while
/// no game feeds positions. Apart from [`Party`]: it changes while players move, and only the
/// radar shows it.
#[derive(Resource, Debug, Default, PartialEq)]
pub(crate) struct GamePositions(pub(crate) Vec<(PeerId, Vec2)>);

impl GamePositions {
    pub(crate) fn of(&self, peer: &PeerId) -> Option<Vec2> {
        self.0.iter().find(|(p, _)| p == peer).map(|(_, at)| *at)
    }

    /// From the voice engine's report: each member relative to where I stand and face (to the
    /// origin facing -z, if my game says nothing).
    fn from_report(me: Option<Pose>, members: &[MemberPose]) -> Self {
        let me = me.unwrap_or_default();
        // Yaw 0 faces -z; a positive yaw turns left, towards -x.
        let (sin, cos) = me.yaw.sin_cos();
        let (ahead, right) = (Vec2::new(-sin, -cos), Vec2::new(cos, -sin));
        Self(
            members
                .iter()
                .map(|m| {
                    let d = Vec2::new(m.pose.x - me.x, m.pose.z - me.z);
                    (m.peer, Vec2::new(d.dot(right), d.dot(ahead)))
                })
                .collect(),
        )
    }
}

/// The overlay's view of the node: what [`absorb`] folds events into.
pub(crate) struct View<'a> {
    pub(crate) party: &'a mut Party,
    pub(crate) chat: &'a mut Chat,
    pub(crate) toasts: &'a mut Toasts,
    pub(crate) positions: &'a mut GamePositions,
    pub(crate) panels: &'a mut Panels,
}

/// Plugins' panels as they last drew them, by plugin id; and what plugins ask the user to
/// allow (by id: its name, the permissions).
#[derive(Resource, Default, Debug, PartialEq)]
pub(crate) struct Panels {
    pub(crate) panels: std::collections::BTreeMap<String, PluginPanel>,
    pub(crate) asks: std::collections::BTreeMap<String, (String, Vec<String>)>,
    /// The plugin whose panel the drawer shows (its tab); by default the first.
    pub(crate) shown: Option<String>,
    /// A path typed into a plugin's panel, waiting for the user's yes: the plugin's name, the path.
    pub(crate) path_ask: Option<(String, String)>,
}

impl Panels {
    /// The plugin whose panel is shown: the chosen one while it has a panel, else the first.
    pub(crate) fn shown(&self) -> Option<&String> {
        self.shown.as_ref().filter(|p| self.panels.contains_key(*p)).or_else(|| self.panels.keys().next())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PluginPanel {
    /// The plugin's name as installed: what its tab and heading say.
    pub(crate) name: String,
    /// The plugin's own title, shown under its name.
    pub(crate) title: String,
    pub(crate) elements: Vec<crate::events::PanelElement>,
}

/// Which parts of the view an event changed: widgets redraw only for what they show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Touched {
    pub(crate) party: bool,
    pub(crate) chat: bool,
    pub(crate) toasts: bool,
    pub(crate) positions: bool,
    pub(crate) panels: bool,
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

/// Folds one node event into the overlay's view; says what it changed.
pub(crate) fn absorb(event: &NodeEvent, now: Duration, view: View<'_>) -> Touched {
    let View { party, chat, toasts, positions, panels } = view;
    let mut touched = Touched::default();
    let mut toasted = false;
    let mut toast = |kind, text: String| {
        toasts.push(now, kind, text);
        toasted = true;
    };
    match event {
        NodeEvent::LinkOffered { party: id, owner } => {
            let short = |s: String| s.chars().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
            party.offer = Some((short(id.to_string()), short(owner.to_string())));
            touched.party = true;
            toast(ToastKind::Info, "A link asks you to join another party".into());
        }
        NodeEvent::LinkOfferClosed { .. } => touched.party = party.offer.take().is_some(),
        NodeEvent::Joined { members, .. } | NodeEvent::Members { members } => {
            if matches!(event, NodeEvent::Joined { .. }) {
                party.status = Status::InParty;
                toast(ToastKind::Info, "In the party".into());
            }
            party.members.retain(|m| members.iter().any(|i| i.peer == m.peer));
            for info in members {
                party.upsert(info);
            }
            party.sort();
            touched.party = true;
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
                touched.party = true;
            }
            toast(ToastKind::Info, format!("{name} joined"));
        }
        NodeEvent::MemberLeft { peer, name, reason } => {
            party.members.retain(|m| m.peer != *peer);
            touched.party = true;
            let why = match reason {
                LeaveReason::Kicked => " (kicked)",
                LeaveReason::Banned => " (banned)",
                LeaveReason::Timeout => " (lost connection)",
                LeaveReason::Left => "",
            };
            toast(ToastKind::Info, format!("{name} left{why}"));
        }
        NodeEvent::Presence { peer, presence, .. } => {
            touched.party = set(party.member_mut(peer).map(|m| &mut m.presence), *presence);
        }
        NodeEvent::Connection { peer, path, .. } => {
            touched.party = set(party.member_mut(peer).map(|m| &mut m.path), *path);
        }
        NodeEvent::Speaking { peer, on, .. } => {
            touched.party = set(party.member_mut(peer).map(|m| &mut m.speaking), *on);
        }
        // What the voice engine says, whoever asked (a click here, stdin, another process).
        NodeEvent::VoiceState { muted, deafened } => {
            touched.party = set(Some(&mut party.voice), true)
                | set(Some(&mut party.muted), *muted)
                | set(Some(&mut party.deafened), *deafened);
        }
        NodeEvent::Link { link, .. } => touched.party = set(Some(&mut party.link), Some(link.clone())),
        NodeEvent::Chat { from, text, peer, history, .. } => {
            if chat.lines.len() == CHAT_LINES {
                chat.lines.pop_front();
            }
            let mine = party.me().is_some_and(|m| m.peer == *peer);
            chat.lines.push_back(ChatLine { from: from.clone(), text: text.clone(), mine });
            if !chat.open && !history && !mine {
                chat.unread = chat.unread.saturating_add(1);
            }
            touched.chat = true;
        }
        NodeEvent::Positions { me, members } => {
            touched.positions = set(Some(positions), GamePositions::from_report(*me, members));
        }
        NodeEvent::Reconnecting { attempt } => {
            touched.party = set(Some(&mut party.status), Status::Reconnecting(*attempt));
        }
        NodeEvent::Error { message } => toast(ToastKind::Error, message.clone()),
        NodeEvent::PluginPanel { plugin, name, title, elements } => {
            let panel = PluginPanel { name: name.clone(), title: title.clone(), elements: elements.clone() };
            if panels.panels.get(plugin) != Some(&panel) {
                panels.panels.insert(plugin.clone(), panel);
                touched.panels = true;
            }
        }
        NodeEvent::PluginAsks { plugin, name, permissions } => {
            touched.panels = if permissions.is_empty() {
                panels.asks.remove(plugin).is_some()
            } else {
                toast(ToastKind::Info, format!("Plugin {name} asks for permissions (▦)"));
                panels.asks.insert(plugin.clone(), (name.clone(), permissions.clone()));
                true
            };
        }
        NodeEvent::PathAsked { name, path, .. } => {
            toast(ToastKind::Info, format!("Share {path} with {name}? (▦)"));
            panels.path_ask = Some((name.clone(), path.clone()));
            touched.panels = true;
        }
        NodeEvent::PathAskClosed { .. } => touched.panels = panels.path_ask.take().is_some(),
        NodeEvent::PluginToast { plugin, text, outcome } => {
            let kind = if *outcome == Some(Outcome::Failed) { ToastKind::Error } else { ToastKind::Info };
            toast(kind, format!("{plugin}: {text}"));
        }
        NodeEvent::PluginStopped { plugin, reason } => {
            toast(ToastKind::Error, format!("Plugin {plugin} stopped: {reason}"));
        }
        NodeEvent::Shared { name, .. } => toast(ToastKind::Info, format!("Sharing {name}")),
        NodeEvent::TransferComplete { name, .. } => toast(ToastKind::Info, format!("{name} downloaded")),
        NodeEvent::TransferFailed { name, message, .. } => toast(ToastKind::Error, format!("{name}: {message}")),
        NodeEvent::JoinFailed { message } => {
            party.status = Status::Idle;
            touched.party = true;
            toast(ToastKind::Error, message.clone());
        }
        NodeEvent::Kicked { .. } | NodeEvent::PartyEnded | NodeEvent::Left => {
            leave(party, positions);
            touched.party = true;
            touched.positions = true;
            match event {
                NodeEvent::Kicked { banned: true } => {
                    toast(ToastKind::Error, "You were banned from the party".into());
                }
                NodeEvent::Kicked { .. } => toast(ToastKind::Error, "You were removed from the party".into()),
                NodeEvent::PartyEnded => toast(ToastKind::Info, "The party has ended".into()),
                _ => {}
            }
        }
        NodeEvent::Listening { .. }
        | NodeEvent::HolePunch { .. }
        | NodeEvent::Revoked { .. }
        | NodeEvent::VoiceStats(_)
        | NodeEvent::AudioStarted { .. }
        | NodeEvent::PluginMessage { .. }
        // Plugins draw their downloads' progress in their panels.
        | NodeEvent::Transfer { .. }
        | NodeEvent::TransferPeerDropped { .. }
        | NodeEvent::Stats(_)
        | NodeEvent::CompanionPairing { .. }
        | NodeEvent::DeviceWaiting { .. }
        | NodeEvent::DevicePaired { .. }
        | NodeEvent::DeviceRevoked { .. }
        | NodeEvent::DeviceConnected { .. }
        | NodeEvent::Headset { .. }
        | NodeEvent::DeviceLeft { .. }
        | NodeEvent::Devices { .. } => {}
    }
    touched.toasts = toasted;
    touched
}

/// Writes `value` into `slot` (if there is one); whether that changed it.
fn set<T: PartialEq>(slot: Option<&mut T>, value: T) -> bool {
    match slot {
        Some(slot) if *slot != value => {
            *slot = value;
            true
        }
        _ => false,
    }
}

fn leave(party: &mut Party, positions: &mut GamePositions) {
    party.status = Status::Idle;
    party.members.clear();
    party.link = None;
    positions.0.clear();
}

#[cfg(test)]
mod tests;
