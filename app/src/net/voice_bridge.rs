//! Between the event loop and the voice thread: who gets our voice (the party's members, from the
//! membership view), frames and reports going out, reports coming in, and user controls.

use std::collections::HashSet;

use anyhow::{Result, anyhow};
use libp2p::PeerId;
use partyline_protocol::voice::Pose;
use partyline_protocol::wire::Message;
use tokio::sync::oneshot;

use super::links::Links;
use super::voice_dgram::VoiceDatagrams;
use super::voice_links::VoiceLinks;
use crate::events::VoiceStats;
use crate::membership::Membership;
use crate::voice::{MicSource, SpeakerSink, Voice, VoiceCommand, VoiceMode, VoiceOut};

/// What a user can change about voice.
#[derive(Clone, Debug, PartialEq)]
pub enum VoiceControl {
    /// The push-to-talk key went down (`true`) or up.
    Key(bool),
    Mode(VoiceMode),
    Muted(bool),
    /// Hear nobody (and send nothing).
    Deafened(bool),
    /// A member's volume by name: 1.0 as sent, 0 silent, up to 2.
    Volume {
        name: String,
        volume: f32,
    },
    /// Stop (or start again) hearing a member, keeping its volume.
    MuteMember {
        name: String,
        muted: bool,
    },
    /// The local player's position, typed; `None` clears it.
    Pose(Option<Pose>),
    /// Hear a member from here (relative to you, facing +z) while the game feeds no positions:
    /// the overlay's radar. `None` puts them back in the centre.
    Place {
        name: String,
        pose: Option<Pose>,
    },
    /// Another microphone: `default`, `none` or (part of) a device's name.
    Input(String),
    /// Other speakers, named the same way.
    Output(String),
    /// The companion page as microphone and speakers (`None`: back to the ones before).
    Headset(Option<crate::voice::headset::Headset>),
}

/// How often at most a member is told our datagram endpoint again when it tells us its own.
const RETELL_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) struct VoiceBridge {
    voice: Voice,
    pub(crate) links: VoiceLinks,
    /// Voice over datagrams to the members reached directly (`None`: streams only).
    datagrams: Option<VoiceDatagrams>,
    /// When each member was last told our datagram endpoint.
    told: std::collections::HashMap<PeerId, std::time::Instant>,
    /// The members the voice thread was given (following the membership view).
    members: HashSet<PeerId>,
}

impl VoiceBridge {
    pub(crate) fn new(voice: Voice, links: VoiceLinks, datagrams: Option<VoiceDatagrams>) -> Self {
        Self { voice, links, datagrams, told: Default::default(), members: HashSet::new() }
    }

    pub(crate) fn voice_mut(&mut self) -> &mut Voice {
        &mut self.voice
    }

    fn add(&mut self, peer: PeerId, name: &str, links: &mut Links) {
        if self.members.insert(peer) {
            self.links.add_peer(peer);
            self.voice.command(VoiceCommand::AddMember { peer, name: name.to_owned() });
            self.tell_endpoint(peer, links);
        }
    }

    fn remove(&mut self, peer: &PeerId) {
        if self.members.remove(peer) {
            self.links.remove_peer(peer);
            self.told.remove(peer);
            if let Some(d) = &mut self.datagrams {
                d.remove_peer(peer);
            }
            self.voice.command(VoiceCommand::RemoveMember(*peer));
        }
    }

    /// Tells a member where our voice datagrams are received.
    fn tell_endpoint(&mut self, peer: PeerId, links: &mut Links) {
        if let Some(d) = &self.datagrams {
            links.send(peer, Message::VoiceEndpoint { port: d.port() });
            self.told.insert(peer, std::time::Instant::now());
        }
    }

    /// A member told us where its voice datagrams are received; false if `peer` is not a member.
    /// It hears ours back unless it was told lately (it may have restarted since).
    pub(crate) fn on_endpoint(&mut self, peer: PeerId, port: u16, links: &mut Links) -> bool {
        if !self.members.contains(&peer) {
            return false;
        }
        let Some(d) = &mut self.datagrams else { return true };
        d.announced(peer, port);
        if self.told.get(&peer).is_none_or(|at| at.elapsed() > RETELL_AFTER) {
            self.tell_endpoint(peer, links);
        }
        true
    }

    /// Follows the membership view: members who came get our voice (and are told where our
    /// datagrams go), members who left no longer do.
    pub(crate) fn follow(&mut self, view: &Membership, links: &mut Links) {
        let gone: Vec<PeerId> = self.members.iter().filter(|p| !view.is_other(p)).copied().collect();
        for peer in gone {
            self.remove(&peer);
        }
        for m in view.others() {
            self.add(m.info.peer, &m.info.name, links);
        }
    }

    /// Sends what the voice thread produced: frames to every member, a report to its member.
    pub(crate) fn on_out(&mut self, out: VoiceOut, links: &mut Links) {
        match out {
            VoiceOut::Frame { seq, bytes, created } => {
                let datagrams = self.datagrams.as_ref();
                let sent = |peer: &PeerId| datagrams.is_some_and(|d| d.send(peer, &bytes));
                self.links.send(seq, bytes.clone(), created, sent);
            }
            VoiceOut::Report { peer, loss_permille, jitter_ms } => {
                if self.members.contains(&peer) {
                    links.send(peer, Message::VoiceReport { loss_permille, jitter_ms });
                }
            }
        }
    }

    /// A member told us how our voice reaches it; false if `peer` is not a member.
    pub(crate) fn on_report(&mut self, peer: PeerId, loss_permille: u16) -> bool {
        if !self.members.contains(&peer) {
            return false;
        }
        self.voice.command(VoiceCommand::Report { peer, loss_permille });
        true
    }

    pub(crate) fn control(&mut self, control: VoiceControl, members: &Membership) -> Result<()> {
        let command = match control {
            VoiceControl::Key(down) => VoiceCommand::Key(down),
            VoiceControl::Mode(mode) => VoiceCommand::Mode(mode),
            // The voice engine owns both (and deafened also means not talking).
            VoiceControl::Muted(muted) => VoiceCommand::Muted(muted),
            VoiceControl::Deafened(deafened) => VoiceCommand::Deafened(deafened),
            VoiceControl::Volume { name, volume } => {
                VoiceCommand::Volume { peer: member(members, &name)?, volume }
            }
            VoiceControl::MuteMember { name, muted } => {
                VoiceCommand::MemberMuted { peer: member(members, &name)?, muted }
            }
            VoiceControl::Pose(pose) => VoiceCommand::Pose(pose),
            VoiceControl::Place { name, pose } => VoiceCommand::Place { peer: member(members, &name)?, pose },
            VoiceControl::Input(name) => VoiceCommand::Input(MicSource::device(&name)),
            VoiceControl::Output(name) => VoiceCommand::Output(SpeakerSink::device(&name)),
            VoiceControl::Headset(headset) => VoiceCommand::Headset(headset),
        };
        self.voice.command(command);
        Ok(())
    }

    /// The voice thread's statistics, completed with the network side's counters.
    pub(crate) fn stats(&self, reply: oneshot::Sender<Result<VoiceStats>>) {
        let (tx, rx) = oneshot::channel();
        self.voice.command(VoiceCommand::Stats(tx));
        let counters = self.links.counters.clone();
        let datagram_paths = self.datagrams.as_ref().map_or(0, VoiceDatagrams::paths);
        tokio::spawn(async move {
            let stats = rx.await.map_err(|_| anyhow!("voice has stopped")).map(|mut stats| {
                let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                stats.frames_in = get(&counters.frames_in);
                stats.dropped_stale = get(&counters.dropped_stale);
                stats.dropped_queue_full = get(&counters.dropped_queue_full);
                stats.dropped_inbound = get(&counters.dropped_inbound);
                stats.streams_refused = get(&counters.refused);
                stats.datagrams_in = get(&counters.datagrams_in);
                stats.datagrams_out = get(&counters.datagrams_out);
                stats.datagram_paths = datagram_paths;
                stats
            });
            let _ = reply.send(stats);
        });
    }
}

/// The other member called `name` (exactly, or else ignoring case).
fn member(members: &Membership, name: &str) -> Result<PeerId> {
    members.named(name).map(|m| m.info.peer).ok_or_else(|| anyhow!("no member named {name:?}"))
}
