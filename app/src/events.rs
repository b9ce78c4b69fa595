//! What the node tells its front ends (the CLI now, the overlay later): one stream of events, in the
//! order things happened. Front ends keep their own view by folding these; they never reach into
//! the node's state.

use std::path::PathBuf;

use libp2p::{Multiaddr, PeerId};
use partyline_protocol::voice::Pose;
use partyline_protocol::wire::{LeaveReason, Presence};
use partyline_protocol::{ContentId, InviteId, PartyId, UnixTime};
use serde::{Deserialize, Serialize};

/// How this node reaches a member right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// At least one connection that does not go through a relay.
    Direct,
    /// Only through a relay circuit.
    Relayed,
    /// Not connected at the moment.
    Offline,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Relayed => "relayed",
            Self::Offline => "offline",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub peer: PeerId,
    pub name: String,
    pub presence: Presence,
    /// The party's owner, which hosts it.
    pub owner: bool,
    /// This node itself.
    pub me: bool,
    pub path: Path,
}

/// Counters of what the node refused from other peers, or could not deliver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub frames_in: u64,
    pub dropped_oversize: u64,
    pub dropped_malformed: u64,
    pub dropped_rate_limited: u64,
    pub dropped_unauthorized: u64,
    pub streams_refused: u64,
    /// Events the front end did not take in time.
    pub events_lost: u64,
    /// Members' plugin messages the plugins did not take in time (they have a queue of their
    /// own, so that a flood of them never crowds out the node's own events).
    pub plugin_messages_lost: u64,
    /// Messages to a peer that was not keeping up.
    pub dropped_outbound: u64,
}

/// How voice flows right now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceStats {
    /// The microphone in use (`None`: listen-only).
    pub input: Option<String>,
    /// Where the party is heard (`None`: nowhere, no output could be opened).
    pub output: Option<String>,
    /// The microphone's recent level, dBFS.
    pub input_level_db: f32,
    /// The largest block of samples the microphone delivered at once since the last statistics
    /// (ms): frames leave no more evenly than this.
    pub input_block_ms: f32,
    /// Times the microphone overran (this side did not read it in time; the gap became silence).
    pub input_overruns: u64,
    pub mode: String,
    pub talking: bool,
    /// What we send to each member, voice frames and their framing, kbit/s.
    pub sent_kbps: f32,
    /// The loss (percent) our encoder's forward error correction is tuned for: the worst a
    /// member reported.
    pub fec_loss_percent: u8,
    /// Whether each frame also carries the previous one (while members report loss).
    pub redundancy: bool,
    /// Voice frames from peers that are not members, and malformed ones: dropped.
    pub unknown_frames: u64,
    pub malformed_frames: u64,
    /// Network side: frames read, and dropped because they were stale when their turn to be
    /// sent came, because a member's send queue was full, or because they came in faster than
    /// a member may send (or faster than the voice thread took them); voice streams refused.
    pub frames_in: u64,
    pub dropped_stale: u64,
    pub dropped_queue_full: u64,
    pub dropped_inbound: u64,
    pub streams_refused: u64,
    /// Frames received and sent as datagrams, and members reached that way now (the others
    /// over streams).
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub datagram_paths: usize,
    pub members: Vec<MemberVoiceStats>,
}

/// How one member's voice reaches us.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberVoiceStats {
    pub peer: PeerId,
    pub name: String,
    /// Fraction of frames the network lost over the last report window (rebuilt or not).
    pub loss: f32,
    pub jitter_ms: f32,
    /// Audio waiting to be heard: jitter buffer and mixer ring; and in the ring alone.
    pub buffer_ms: f32,
    pub ring_ms: f32,
    /// How long after it was due (its time stamp plus the smallest transit seen) the last frame
    /// started to play from the mixer, and what the jitter buffer aims at for that (ms).
    pub wait_ms: f32,
    pub target_ms: f32,
    pub kbps: f32,
    pub received: u64,
    pub lost: u64,
    pub fec: u64,
    /// Lost frames rebuilt exactly from the copy the next frame carried.
    pub recovered: u64,
    pub concealed: u64,
    pub late: u64,
    pub dropped: u64,
    /// Audio taken out of this member's voice to play it faster (ms) and put in to play it
    /// slower, following the jitter buffer's target.
    pub faster_ms: u64,
    pub slower_ms: u64,
    pub underruns: u64,
    pub speaking: bool,
}

/// A member's position, as its game reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberPose {
    pub peer: PeerId,
    pub name: String,
    pub pose: Pose,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// Addresses this node listens on or is reachable at (relayed ones included).
    Listening {
        addrs: Vec<Multiaddr>,
    },
    /// A new invite link.
    Link {
        link: String,
        invite: InviteId,
        expires: UnixTime,
        max_uses: Option<u32>,
    },
    /// A link came from outside (the desktop's link handler, another `partyline`) while in a
    /// party: nothing is done until the user accepts it (`/accept-link`) or declines it.
    LinkOffered {
        party: PartyId,
        owner: PeerId,
    },
    /// The link that came from outside was accepted (`joining`) or declined.
    LinkOfferClosed {
        joining: bool,
    },
    /// This node is in the party now (as its host or a member).
    Joined {
        party: PartyId,
        members: Vec<MemberInfo>,
    },
    MemberJoined {
        peer: PeerId,
        name: String,
    },
    MemberLeft {
        peer: PeerId,
        name: String,
        reason: LeaveReason,
    },
    Presence {
        peer: PeerId,
        name: String,
        presence: Presence,
    },
    /// A chat message in the party's order; `history` when replayed from storage.
    Chat {
        seq: u64,
        peer: PeerId,
        from: String,
        text: String,
        ts_ms: u64,
        history: bool,
    },
    /// Answer to a members request.
    Members {
        members: Vec<MemberInfo>,
    },
    /// The way to a member changed (for example a relayed connection upgraded to a direct one).
    Connection {
        peer: PeerId,
        name: String,
        path: Path,
    },
    /// A hole punch (DCUtR) to a member through a relay finished.
    HolePunch {
        peer: PeerId,
        name: String,
        ok: bool,
        error: Option<String>,
    },
    Revoked {
        invites: Vec<InviteId>,
    },
    /// A member (or this node, with `peer` our own id) started or stopped talking.
    Speaking {
        peer: PeerId,
        name: String,
        on: bool,
    },
    /// This node's own voice as the voice engine has it: `muted` (the user muted themselves) and
    /// `deafened` (hears nobody, and sends nothing either). Sent when voice starts and whenever
    /// either changes, whoever asked (the overlay, stdin, another process over the local socket);
    /// never with voice off.
    VoiceState {
        muted: bool,
        deafened: bool,
    },
    VoiceStats(VoiceStats),
    /// Where the game puts this player (`me`) and the members whose voice carries a position
    /// (from their games); sent when they change, a few times a second at most.
    Positions {
        me: Option<Pose>,
        members: Vec<MemberPose>,
    },
    /// A microphone file started playing, or a speaker file recording, at this wall-clock time
    /// (ms since the Unix epoch).
    AudioStarted {
        source: &'static str,
        at_ms: u64,
    },
    /// The host is unreachable; the node keeps trying.
    Reconnecting {
        attempt: u32,
    },
    Stats(Stats),
    /// Bytes for plugin `plugin` from the same plugin on member `peer`.
    PluginMessage {
        peer: PeerId,
        plugin: String,
        data: Vec<u8>,
    },
    /// A plugin's panel, to draw in place of its previous one. `name` is the plugin's name as
    /// installed (what tabs and headings show); `title` is the plugin's own, shown under it.
    PluginPanel {
        plugin: String,
        name: String,
        title: String,
        elements: Vec<PanelElement>,
    },
    /// A plugin's short message; `outcome` when it says how something the user asked of it
    /// went (`notify.report`).
    PluginToast {
        plugin: String,
        text: String,
        outcome: Option<Outcome>,
    },
    /// A running plugin asks for these permissions, not granted (empty: it asks for nothing more).
    PluginAsks {
        plugin: String,
        name: String,
        permissions: Vec<String>,
    },
    /// The user typed the path of something on this machine into a plugin's panel: nothing of it
    /// reaches the plugin until the user says yes (`/allow-path`) or no (`/deny-path`).
    PathAsked {
        plugin: String,
        /// The plugin's name as installed.
        name: String,
        path: String,
    },
    /// The path was shared with the plugin (`shared`), or not.
    PathAskClosed {
        plugin: String,
        shared: bool,
    },
    /// A plugin was stopped (it crashed, overran its deadline or its memory); it stays stopped
    /// until restarted.
    PluginStopped {
        plugin: String,
        reason: String,
    },
    /// A file or folder is shared: members can download it by its id.
    Shared {
        id: ContentId,
        name: String,
        total: u64,
        files: u64,
        path: PathBuf,
    },
    /// How far a download is: `done` of `total` bytes verified and written, from `peers`
    /// members (0 while none who has it is found; `total` is 0 until its manifest is known).
    Transfer {
        id: ContentId,
        name: String,
        /// What asked for it calls it this (a game's name, a file offered).
        label: String,
        done: u64,
        total: u64,
        peers: usize,
        /// Of those, the ones sending over a direct channel (the rest over the party connection).
        direct: usize,
        /// The plugin that asked for it.
        plugin: Option<String>,
    },
    /// A download is complete: every byte verified, synced, and in `path`.
    TransferComplete {
        id: ContentId,
        name: String,
        label: String,
        total: u64,
        files: u64,
        path: PathBuf,
        /// The plugin that asked for it.
        plugin: Option<String>,
    },
    /// A download stopped (cancelled, no space, …); what it wrote is kept to resume.
    TransferFailed {
        id: ContentId,
        name: String,
        label: String,
        message: String,
        plugin: Option<String>,
    },
    /// A member's data for a download was wrong (or it misbehaved): it is not asked again.
    TransferPeerDropped {
        id: ContentId,
        peer: PeerId,
        reason: String,
    },
    /// The companion gateway: a pairing link to show as a QR code, a device waiting for the
    /// user to confirm its code, a device paired or revoked, the paired devices.
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
    /// The companion page of this device is the player's microphone and speakers (`None`: this
    /// machine's are again).
    Headset {
        device: Option<String>,
    },
    /// A paired device opened the companion page (its first connection), or closed it (its last).
    DeviceConnected {
        name: String,
    },
    DeviceLeft {
        name: String,
    },
    Devices {
        /// Name, and when last used (ms since the Unix epoch).
        devices: Vec<(String, u64)>,
    },
    /// Something went wrong; the node keeps running.
    Error {
        message: String,
    },
    // Terminal events: the node has left the party after these.
    /// Joining failed for good (rejected, unreachable, timed out).
    JoinFailed {
        message: String,
    },
    Kicked {
        banned: bool,
    },
    PartyEnded,
    Left,
}

/// How something the user asked of a plugin went (the WIT `notify.outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Working,
    Done,
    Failed,
}

/// One element of a plugin's panel (the WIT `ui.element`).
#[derive(Clone, Debug, PartialEq)]
pub enum PanelElement {
    Text(String),
    Heading(String),
    Button {
        id: String,
        label: String,
    },
    Input {
        id: String,
        placeholder: String,
        value: String,
    },
    Items(Vec<String>),
    Progress {
        label: String,
        done: u64,
        total: u64,
    },
    /// A QR code of this text.
    Qr(String),
    /// RGBA pixels, row by row.
    Image {
        width: u32,
        height: u32,
        rgba: Vec<u8>,
    },
}

impl NodeEvent {
    /// Whether the party engine's members may have changed with it (who, their names or
    /// presence).
    pub fn touches_membership(&self) -> bool {
        matches!(
            self,
            Self::Joined { .. } | Self::MemberJoined { .. } | Self::MemberLeft { .. } | Self::Presence { .. }
        ) || self.is_terminal()
    }

    /// After a terminal event the node is no longer in a party.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::JoinFailed { .. } | Self::Kicked { .. } | Self::PartyEnded | Self::Left)
    }
}
