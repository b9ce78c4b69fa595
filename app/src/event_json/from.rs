//! A node event in its JSON form.

use partyline_protocol::voice::Pose;

use super::{Device, Element, Event, Member, MemberPlace, Place};
use crate::events::{MemberInfo, NodeEvent, PanelElement};

impl From<&NodeEvent> for Event {
    fn from(event: &NodeEvent) -> Self {
        use NodeEvent as N;
        match event.clone() {
            N::Listening { addrs } => {
                Self::Listening { addrs: addrs.iter().map(ToString::to_string).collect() }
            }
            N::Link { link, invite, expires, max_uses } => {
                Self::Link { link, invite: invite.to_string(), expires: expires.to_string(), max_uses }
            }
            N::LinkOffered { party, owner } => Self::LinkOffered { party: party.to_string(), owner },
            N::LinkOfferClosed { joining } => Self::LinkOfferClosed { joining },
            N::Joined { party, members } => Self::Joined {
                party: party.to_string(),
                members: members.into_iter().map(|m| m.name).collect(),
            },
            N::MemberJoined { peer, name } => Self::MemberJoined { peer, name },
            N::MemberLeft { peer, name, reason } => {
                Self::MemberLeft { peer, name, reason: reason.as_str().into() }
            }
            N::Presence { peer, name, presence } => {
                Self::Presence { peer, name, presence: presence.as_str().into() }
            }
            N::Chat { seq, peer, from, text, ts_ms, history } => {
                Self::Chat { from, text, ts: ts_ms, seq, peer, history }
            }
            N::Members { members } => Self::Members { members: members.iter().map(member).collect() },
            N::Connection { peer, name, path } => Self::Connection { peer, name, path: path.as_str().into() },
            N::HolePunch { peer, name, ok, error } => Self::HolePunch { peer, name, ok, error },
            N::Revoked { invites } => {
                Self::Revoked { invites: invites.iter().map(ToString::to_string).collect() }
            }
            N::Reconnecting { attempt } => Self::Reconnecting { attempt },
            N::Speaking { peer, name, on } => Self::Speaking { peer, name, on },
            N::VoiceState { muted, deafened } => Self::VoiceState { muted, deafened },
            N::VoiceStats(v) => Self::VoiceStats(v),
            N::Positions { me, members } => Self::Positions {
                me: me.as_ref().map(place),
                members: members
                    .into_iter()
                    .map(|m| MemberPlace { peer: m.peer, name: m.name, place: place(&m.pose) })
                    .collect(),
            },
            N::AudioStarted { source, at_ms } => Self::AudioStarted { source: source.into(), at_ms },
            N::Stats(s) => Self::Stats(s),
            N::PluginMessage { peer, plugin, data } => {
                Self::PluginMessage { plugin, from: peer, bytes: data.len() }
            }
            N::PluginPanel { plugin, name, title, elements } => Self::PluginPanel {
                plugin,
                name,
                title,
                elements: elements.into_iter().map(element).collect(),
            },
            N::PluginToast { plugin, text, outcome } => Self::PluginToast { plugin, text, outcome },
            N::PluginStopped { plugin, reason } => Self::PluginStopped { plugin, reason },
            N::PathAsked { plugin, name, path } => Self::PathAsked { plugin, name, path },
            N::PathAskClosed { plugin, shared } => Self::PathAskClosed { plugin, shared },
            N::PluginAsks { plugin, name, permissions } => Self::PluginAsks { plugin, name, permissions },
            N::Shared { id, name, total, files, path } => {
                Self::Shared { id: id.to_string(), name, total, files, path }
            }
            N::Transfer { id, name, label, done, total, peers, direct, .. } => {
                Self::Transfer { id: id.to_string(), name, label, done, total, peers, direct }
            }
            N::TransferComplete { id, name, label, total, files, path, .. } => {
                Self::TransferComplete { id: id.to_string(), name, label, total, files, path }
            }
            N::TransferFailed { id, name, label, message, .. } => {
                Self::TransferFailed { id: id.to_string(), name, label, message }
            }
            N::TransferPeerDropped { id, peer, reason } => {
                Self::TransferPeerDropped { id: id.to_string(), peer, reason }
            }
            N::CompanionPairing { url } => Self::CompanionPairing { url },
            N::DeviceWaiting { name, code } => Self::DeviceWaiting { name, code },
            N::DevicePaired { name } => Self::DevicePaired { name },
            N::DeviceRevoked { name } => Self::DeviceRevoked { name },
            N::DeviceConnected { name } => Self::DeviceConnected { name },
            N::Headset { device } => Self::Headset { device },
            N::DeviceLeft { name } => Self::DeviceLeft { name },
            N::Devices { devices } => Self::Devices {
                devices: devices.into_iter().map(|(name, last_used)| Device { name, last_used }).collect(),
            },
            N::Error { message } => Self::Error { message, fatal: false },
            N::JoinFailed { message } => Self::Error { message, fatal: true },
            N::Kicked { banned } => Self::Kicked { banned },
            N::PartyEnded => Self::PartyEnded,
            N::Left => Self::Left,
        }
    }
}

fn member(m: &MemberInfo) -> Member {
    Member {
        peer: m.peer,
        name: m.name.clone(),
        presence: m.presence.as_str().into(),
        owner: m.owner,
        me: m.me,
        path: if m.me { "self".into() } else { m.path.as_str().into() },
    }
}

fn element(e: PanelElement) -> Element {
    use PanelElement as E;
    match e {
        E::Text(text) => Element::Text { text },
        E::Heading(text) => Element::Heading { text },
        E::Button { id, label } => Element::Button { id, label },
        E::Input { id, placeholder, value } => Element::Input { id, placeholder, value },
        E::Items(items) => Element::Items { items },
        E::Progress { label, done, total } => Element::Progress { label, done, total },
        E::Qr(text) => Element::Qr { text },
        E::Image { width, height, .. } => Element::Image { width, height },
    }
}

fn place(p: &Pose) -> Place {
    Place { x: p.x, y: p.y, z: p.z, yaw: p.yaw.to_degrees() }
}
