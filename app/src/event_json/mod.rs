//! Node events in their JSON form: one object per event, its kind in `"event"`, with stable field
//! names (README lists them). The CLI prints them with `--json`; the session sends them to other
//! processes that follow it over the local socket, and those (`partyline games`, `send`) read
//! them back as the same types. [`Event`] is the one definition of that form; `from.rs` makes one
//! out of a [`NodeEvent`].

use std::path::PathBuf;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::NodeEvent;
pub use crate::events::{Outcome, Stats, VoiceStats};

mod from;

/// One event as JSON has it. Ids are text (`peer` a peer id, `id` a content id in hex); an event
/// of a kind this build does not know reads as [`Event::Unknown`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Listening {
        addrs: Vec<String>,
    },
    Link {
        link: String,
        invite: String,
        expires: String,
        max_uses: Option<u32>,
    },
    LinkOffered {
        party: String,
        owner: PeerId,
    },
    LinkOfferClosed {
        joining: bool,
    },
    /// `members`: their names.
    Joined {
        party: String,
        members: Vec<String>,
    },
    MemberJoined {
        peer: PeerId,
        name: String,
    },
    /// `reason`: left, timeout or kicked.
    MemberLeft {
        peer: PeerId,
        name: String,
        reason: String,
    },
    /// `presence`: online, away or muted.
    Presence {
        peer: PeerId,
        name: String,
        presence: String,
    },
    /// `ts`: ms since the Unix epoch.
    Chat {
        from: String,
        text: String,
        ts: u64,
        seq: u64,
        peer: PeerId,
        history: bool,
    },
    Members {
        members: Vec<Member>,
    },
    /// `path`: direct, relayed or offline.
    Connection {
        peer: PeerId,
        name: String,
        path: String,
    },
    HolePunch {
        peer: PeerId,
        name: String,
        ok: bool,
        error: Option<String>,
    },
    Revoked {
        invites: Vec<String>,
    },
    Reconnecting {
        attempt: u32,
    },
    Speaking {
        peer: PeerId,
        name: String,
        on: bool,
    },
    VoiceState {
        muted: bool,
        deafened: bool,
    },
    VoiceStats(VoiceStats),
    Positions {
        me: Option<Place>,
        members: Vec<MemberPlace>,
    },
    AudioStarted {
        source: String,
        at_ms: u64,
    },
    Stats(Stats),
    /// `bytes`: how many came (the bytes themselves are the plugin's).
    PluginMessage {
        plugin: String,
        from: PeerId,
        bytes: usize,
    },
    PluginPanel {
        plugin: String,
        name: String,
        title: String,
        elements: Vec<Element>,
    },
    /// `outcome` (working, done or failed) only when the plugin reports how a request went.
    PluginToast {
        plugin: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Outcome>,
    },
    PluginStopped {
        plugin: String,
        reason: String,
    },
    PathAsked {
        plugin: String,
        name: String,
        path: String,
    },
    PathAskClosed {
        plugin: String,
        shared: bool,
    },
    PluginAsks {
        plugin: String,
        name: String,
        permissions: Vec<String>,
    },
    Shared {
        id: String,
        name: String,
        total: u64,
        files: u64,
        path: PathBuf,
    },
    Transfer {
        id: String,
        name: String,
        label: String,
        done: u64,
        total: u64,
        peers: usize,
        direct: usize,
    },
    TransferComplete {
        id: String,
        name: String,
        label: String,
        total: u64,
        files: u64,
        path: PathBuf,
    },
    TransferFailed {
        id: String,
        name: String,
        label: String,
        message: String,
    },
    TransferPeerDropped {
        id: String,
        peer: PeerId,
        reason: String,
    },
    CompanionPairing {
        url: String,
    },
    DeviceWaiting {
        name: String,
        code: String,
    },
    DevicePaired {
        name: String,
    },
    DeviceRevoked {
        name: String,
    },
    DeviceConnected {
        name: String,
    },
    Headset {
        device: Option<String>,
    },
    DeviceLeft {
        name: String,
    },
    Devices {
        devices: Vec<Device>,
    },
    /// `fatal`: joining failed for good (the node has left); absent otherwise.
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fatal: bool,
    },
    Kicked {
        banned: bool,
    },
    PartyEnded,
    Left,
    /// Written by another version of Partyline.
    #[serde(other)]
    Unknown,
}

/// A member as `members` lists it. `path`: direct, relayed, offline, or self.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub peer: PeerId,
    pub name: String,
    pub presence: String,
    pub owner: bool,
    pub me: bool,
    pub path: String,
}

/// A paired companion device; `last_used`: ms since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub name: String,
    pub last_used: u64,
}

/// A position: metres, and the yaw in degrees (as `/pos` takes it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub x: f32,
    pub y: f32,
    pub z: f32,
    pub yaw: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberPlace {
    pub peer: PeerId,
    pub name: String,
    #[serde(flatten)]
    pub place: Place,
}

/// One element of a plugin's panel, its kind in `"kind"` (an image gives only its size).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Element {
    Text { text: String },
    Heading { text: String },
    Button { id: String, label: String },
    Input { id: String, placeholder: String, value: String },
    Items { items: Vec<String> },
    Progress { label: String, done: u64, total: u64 },
    Qr { text: String },
    Image { width: u32, height: u32 },
}

impl Event {
    /// The JSON line for it.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }

    /// Reads one JSON line; `None` if it is not an event.
    pub fn from_line(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }
}

pub fn to_json(event: &NodeEvent) -> Value {
    serde_json::to_value(Event::from(event)).expect("events serialize")
}

#[cfg(test)]
mod tests;
