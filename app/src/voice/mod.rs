//! The voice engine: microphone → noise suppression, voice detection and transmit gate → Opus →
//! the party; and from each member: jitter buffer → Opus (FEC, concealment) → positional mix →
//! speakers.
//!
//! Threads: the capture callback (or a file player) fills a lock-free ring; the voice thread
//! ([`engine`]) does all DSP and codec work; the audio output thread (kira) pulls each member's
//! decoded audio from its own lock-free ring. The network side talks to the voice thread through
//! bounded channels only: frames in, frames and reports out.

pub mod bench;
mod capture;
mod capture_dsp;
mod codec;
mod cue;
mod delay;
mod engine;
mod gate;
pub mod headset;
mod jitter;
mod member;
mod mix;
mod output;
mod positions;
mod ring;
mod send;
mod stretch;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Instant;

use anyhow::{Context, Result};
use libp2p::PeerId;
use partyline_protocol::voice::Pose;
use tokio::sync::{mpsc, oneshot};

pub use capture::list_devices;
pub use codec::CodecSettings;
pub use gate::{GateSettings, VoiceMode};
pub use mix::SpatialSettings;
pub(crate) use positions::parse_pose;

use crate::events::{NodeEvent, VoiceStats};

/// Frames from the network waiting for the voice thread; beyond this they are dropped.
const INBOUND_QUEUE: usize = 512;
const COMMAND_QUEUE: usize = 256;

/// Where the microphone comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MicSource {
    #[default]
    DefaultDevice,
    Device(String),
    /// A WAV file played as the microphone, in real time, then silence.
    File(PathBuf),
    /// The companion page's microphone (a phone or handheld as headset).
    Headset(headset::Headset),
    /// Listen only.
    None,
}

/// Where the party is heard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SpeakerSink {
    #[default]
    DefaultDevice,
    Device(String),
    /// A stereo WAV file written in real time.
    File(PathBuf),
    /// The companion page's speakers (a phone or handheld as headset), sent Opus.
    Headset(headset::Headset),
    /// Nowhere (still paced in real time).
    None,
}

impl MicSource {
    /// `none`, `default`, or a device name.
    pub fn device(name: &str) -> Self {
        match name {
            "none" => Self::None,
            "default" | "" => Self::DefaultDevice,
            name => Self::Device(name.to_owned()),
        }
    }
}

impl SpeakerSink {
    /// `none`, `default`, or a device name.
    pub fn device(name: &str) -> Self {
        match name {
            "none" => Self::None,
            "default" | "" => Self::DefaultDevice,
            name => Self::Device(name.to_owned()),
        }
    }

    /// What it is called in statistics.
    fn describe(&self) -> String {
        match self {
            Self::DefaultDevice => "default".into(),
            Self::Device(name) => name.clone(),
            Self::File(path) => format!("file {}", path.display()),
            Self::Headset(h) => format!("headset {}", h.device),
            Self::None => "none".into(),
        }
    }

    /// The output to open; a file output reports when its first sample was written to `started`.
    fn to_target(&self, started: &output::StartTime) -> output::OutputTarget {
        match self {
            Self::DefaultDevice => output::OutputTarget::DefaultDevice,
            Self::Device(name) => output::OutputTarget::Device(name.clone()),
            Self::File(path) => output::OutputTarget::File { path: path.clone(), started: started.clone() },
            Self::Headset(h) => output::OutputTarget::Headset(h.speaker()),
            Self::None => output::OutputTarget::Null,
        }
    }
}

#[derive(Clone, Debug)]
pub struct VoiceConfig {
    pub input: MicSource,
    pub output: SpeakerSink,
    pub codec: CodecSettings,
    pub gate: GateSettings,
    pub noise_suppression: bool,
    pub spatial: SpatialSettings,
    /// Read the local player's position from the MumbleLink shared memory games write.
    pub mumble_link: bool,
    /// Streams per member that voice frames are spread over (see `net::voice_links`).
    pub streams_per_peer: usize,
    /// Short tones when push-to-talk opens and closes the microphone.
    pub cues: bool,
    /// Members decoded and mixed at once at most: the loudest of those talking (the frames'
    /// speech levels say who); the others' jitter buffers keep time without decoding.
    pub mix_loudest: usize,
    pub(crate) me: PeerId,
    pub(crate) my_name: String,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            input: MicSource::default(),
            output: SpeakerSink::default(),
            codec: CodecSettings::default(),
            gate: GateSettings::default(),
            noise_suppression: true,
            spatial: SpatialSettings::default(),
            mumble_link: true,
            streams_per_peer: 8,
            cues: true,
            mix_loudest: 8,
            me: PeerId::random(),
            my_name: String::new(),
        }
    }
}

pub(crate) enum VoiceCommand {
    AddMember {
        peer: PeerId,
        name: String,
    },
    RemoveMember(PeerId),
    /// The push-to-talk key went down or up.
    Key(bool),
    Mode(VoiceMode),
    Muted(bool),
    Deafened(bool),
    Volume {
        peer: PeerId,
        volume: f32,
    },
    MemberMuted {
        peer: PeerId,
        muted: bool,
    },
    /// The local player's typed position (MumbleLink, when a game feeds it, takes precedence).
    Pose(Option<Pose>),
    /// Where to hear a member whose frames carry no position (placed on the overlay's radar).
    Place {
        peer: PeerId,
        pose: Option<Pose>,
    },
    Report {
        peer: PeerId,
        loss_permille: u16,
    },
    /// Capture from another microphone (closing the one in use).
    Input(MicSource),
    /// Play the party on other speakers, keeping every member's volume and place.
    Output(SpeakerSink),
    /// Use the companion page as microphone and speakers (`None`: back to the ones before).
    Headset(Option<headset::Headset>),
    Stats(oneshot::Sender<VoiceStats>),
}

/// A voice frame from a member, as read off its stream.
pub(crate) struct Inbound {
    pub(crate) peer: PeerId,
    pub(crate) bytes: Vec<u8>,
    pub(crate) arrival: Instant,
}

/// What the voice thread hands the network.
pub(crate) enum VoiceOut {
    /// A framed voice frame for every member.
    Frame { seq: u32, bytes: std::sync::Arc<[u8]>, created: Instant },
    /// How `peer`'s voice reaches us, for `peer`.
    Report { peer: PeerId, loss_permille: u16, jitter_ms: u16 },
}

/// The network side's handle on the voice thread.
pub(crate) struct Voice {
    commands: SyncSender<VoiceCommand>,
    inbound: SyncSender<Inbound>,
    pub(crate) out: mpsc::Receiver<VoiceOut>,
    pub(crate) streams_per_peer: usize,
}

impl Voice {
    pub(crate) fn start(config: VoiceConfig, events: mpsc::Sender<NodeEvent>) -> Result<Self> {
        let (commands, command_rx) = std::sync::mpsc::sync_channel(COMMAND_QUEUE);
        let (inbound, inbound_rx): (SyncSender<Inbound>, Receiver<Inbound>) =
            std::sync::mpsc::sync_channel(INBOUND_QUEUE);
        let (out_tx, out) = mpsc::channel(256);
        let streams_per_peer = config.streams_per_peer.clamp(1, 8);
        std::thread::Builder::new()
            .name("partyline-voice".into())
            .spawn(move || {
                match engine::Engine::new(config, command_rx, inbound_rx, out_tx, events.clone()) {
                    Ok(engine) => engine.run(),
                    Err(e) => {
                        let _ = events.try_send(NodeEvent::Error { message: format!("voice is off: {e:#}") });
                    }
                }
            })
            .context("cannot start the voice thread")?;
        Ok(Self { commands, inbound, out, streams_per_peer })
    }

    pub(crate) fn command(&self, command: VoiceCommand) {
        if let Err(TrySendError::Full(_)) = self.commands.try_send(command) {
            tracing::warn!("voice thread is not keeping up with commands");
        }
    }

    pub(crate) fn inbound_sender(&self) -> SyncSender<Inbound> {
        self.inbound.clone()
    }
}
