//! The voice thread. Every 5 ms it takes what the microphone captured through the DSP and the
//! encoder and hands finished frames to the network; files arriving frames into each member's
//! jitter buffer; decodes until every member's ring holds enough for the audio thread; and
//! reports speaking changes, statistics and reception reports. Audio callbacks (capture ring in,
//! mixer rings out) never wait for it.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::Result;
use libp2p::PeerId;
use partyline_protocol::voice::{Pose, VoiceFrame};
use tokio::sync::mpsc;

use super::capture::Capture;
use super::capture_dsp::CaptureDsp;
use super::codec::{Encoder, SAMPLE_RATE};
use super::member::{MemberVoice, Reception, choose_loudest};
use super::mix::Mixer;
use super::positions::{MumbleLink, PositionsReport};
use super::send::Sender;
use super::{Inbound, VoiceCommand, VoiceConfig, VoiceOut};
use crate::events::{MemberPose, NodeEvent};

mod devices;
use devices::{ready, ring_for};
mod reports;

const TICK: Duration = Duration::from_millis(5);
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Reception reports older than this no longer steer the encoder's FEC and redundancy.
const REPORT_MAX_AGE: Duration = Duration::from_secs(30);
const REOPEN_EVERY: Duration = Duration::from_secs(3);
const POSE_EVERY: Duration = Duration::from_millis(50);
/// Frames repeat the previous one while the worst loss members report is at least this.
const REDUNDANCY_FROM_PERCENT: u8 = 1;
const FILE_START_DELAY: Duration = Duration::from_millis(500);

pub(super) struct Engine {
    config: VoiceConfig,
    commands: Receiver<VoiceCommand>,
    inbound: Receiver<Inbound>,
    out: mpsc::Sender<VoiceOut>,
    events: mpsc::Sender<NodeEvent>,
    mixer: Option<Mixer>,
    capture: Option<Capture>,
    dsp: Option<CaptureDsp>,
    encoder: Encoder,
    members: HashMap<PeerId, MemberVoice>,
    /// The other side's reports on how our voice reaches them: (loss ‰, when).
    reports: HashMap<PeerId, (u16, Instant)>,
    last_reception: HashMap<PeerId, Reception>,
    /// Numbers, stamps and sends our frames.
    sender: Sender,
    /// When the microphone last delivered samples (the time stamps of frames from the next one
    /// opened run on from there).
    captured_at: Option<Instant>,
    /// The smallest microphone blocks to ask for (ms): grows when the device overruns.
    capture_block_ms: u32,
    /// Overruns of microphone streams closed since (the open one counts its own).
    input_overruns: u64,
    /// Scratch space for choosing the loudest members.
    scores: Vec<f32>,
    talking: bool,
    /// The user muted themselves, or deafened (which mutes too); the gate follows both.
    muted: bool,
    deafened: bool,
    /// (muted, deafened) as last told to the front ends.
    reported: Option<(bool, bool)>,
    typed_pose: Option<Pose>,
    pose: Option<Pose>,
    mumble: Option<MumbleLink>,
    positions: PositionsReport,
    reopen_at: Option<Instant>,
    scratch: Vec<f32>,
    sent_window: (u64, Instant),
    sent_kbps: f32,
    unknown_frames: u64,
    malformed_frames: u64,
    output_started: super::output::StartTime,
    /// When a microphone file may start playing.
    file_start_at: Option<Instant>,
    /// Which of (microphone file, speaker file) start times were reported.
    announced: (bool, bool),
    /// The microphone and speakers in use before the companion page became the headset.
    before_headset: Option<(crate::voice::MicSource, crate::voice::SpeakerSink)>,
}

impl Engine {
    pub(super) fn new(
        config: VoiceConfig,
        commands: Receiver<VoiceCommand>,
        inbound: Receiver<Inbound>,
        out: mpsc::Sender<VoiceOut>,
        events: mpsc::Sender<NodeEvent>,
    ) -> Result<Self> {
        let encoder = Encoder::new(config.codec)?;
        let mumble = config.mumble_link.then(MumbleLink::new);
        let mut engine = Self {
            commands,
            inbound,
            out,
            events,
            mixer: None,
            capture: None,
            dsp: None,
            encoder,
            members: HashMap::new(),
            reports: HashMap::new(),
            last_reception: HashMap::new(),
            sender: Sender::new(config.codec.frame_samples()),
            captured_at: None,
            capture_block_ms: 10,
            input_overruns: 0,
            scores: Vec::new(),
            talking: false,
            muted: false,
            deafened: false,
            reported: None,
            typed_pose: None,
            pose: None,
            mumble,
            positions: PositionsReport::default(),
            reopen_at: None,
            scratch: Vec::with_capacity(SAMPLE_RATE as usize),
            sent_window: (0, Instant::now()),
            sent_kbps: 0.0,
            unknown_frames: 0,
            malformed_frames: 0,
            output_started: Default::default(),
            file_start_at: None,
            announced: (false, false),
            before_headset: None,
            config,
        };
        match Mixer::new(engine.config.output.to_target(&engine.output_started), engine.config.spatial) {
            Ok(mixer) => engine.mixer = Some(mixer),
            Err(e) => engine.error(format!("no audio output ({e:#}); you will not hear the party")),
        }
        engine.open_input();
        Ok(engine)
    }

    fn error(&self, message: String) {
        tracing::warn!("{message}");
        let _ = self.events.try_send(NodeEvent::Error { message });
    }

    /// Deafened members do not talk either. The front ends hear of every change.
    fn apply_mute(&mut self) {
        if let Some(dsp) = &mut self.dsp {
            dsp.gate().set_muted(self.muted || self.deafened);
        }
        let state = (self.muted, self.deafened);
        if self.reported != Some(state) {
            self.reported = Some(state);
            let _ = self.events.try_send(NodeEvent::VoiceState { muted: state.0, deafened: state.1 });
        }
    }

    pub(super) fn run(mut self) {
        // Front ends learn that voice is on, and how.
        self.apply_mute();
        let mut next_tick = Instant::now();
        let mut next_report = Instant::now() + REPORT_EVERY;
        let mut next_pose = Instant::now();
        loop {
            if !self.handle_commands() {
                return;
            }
            let now = Instant::now();
            self.capture(now);
            self.receive();
            self.play_out(now);
            self.update_speaking(now);
            if now >= next_pose {
                next_pose = now + POSE_EVERY;
                self.update_pose(now);
            }
            self.announce_file_starts();
            if now >= next_report {
                next_report = now + REPORT_EVERY;
                self.report(now);
            }
            next_tick += TICK;
            match next_tick.checked_duration_since(Instant::now()) {
                Some(wait) => std::thread::sleep(wait),
                None => next_tick = Instant::now(),
            }
        }
    }

    /// Returns false on shutdown.
    fn handle_commands(&mut self) -> bool {
        loop {
            let command = match self.commands.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            };
            match command {
                VoiceCommand::AddMember { peer, name } => self.add_member(peer, name),
                VoiceCommand::RemoveMember(peer) => {
                    if let Some(m) = self.members.remove(&peer)
                        && m.speaking
                    {
                        let _ = self.events.try_send(NodeEvent::Speaking { peer, name: m.name, on: false });
                    }
                    self.reports.remove(&peer);
                    if let Some(mixer) = &mut self.mixer {
                        mixer.remove_member(&peer);
                    }
                }
                VoiceCommand::Key(down) => {
                    let Some(dsp) = &mut self.dsp else { continue };
                    let before = dsp.gate().keyed();
                    dsp.gate().key(down);
                    let after = dsp.gate().keyed();
                    if let (Some(on), Some(mixer), true) = (after, &mut self.mixer, self.config.cues)
                        && before != after
                    {
                        mixer.cue(on);
                    }
                }
                VoiceCommand::Mode(mode) => {
                    self.config.gate.mode = mode;
                    if let Some(dsp) = &mut self.dsp {
                        dsp.gate().set_mode(mode);
                    }
                }
                VoiceCommand::Muted(muted) => {
                    self.muted = muted;
                    self.apply_mute();
                }
                VoiceCommand::Deafened(deafened) => {
                    self.deafened = deafened;
                    if let Some(mixer) = &mut self.mixer {
                        mixer.set_deafened(deafened);
                    }
                    self.apply_mute();
                }
                VoiceCommand::Volume { peer, volume } => {
                    if let Some(mixer) = &mut self.mixer {
                        mixer.set_volume(&peer, volume);
                    }
                }
                VoiceCommand::MemberMuted { peer, muted } => {
                    if let Some(mixer) = &mut self.mixer {
                        mixer.set_muted(&peer, muted);
                    }
                }
                VoiceCommand::Pose(pose) => self.typed_pose = pose,
                VoiceCommand::Place { peer, pose } => {
                    if let Some(member) = self.members.get_mut(&peer) {
                        member.placed = pose;
                        if let Some(mixer) = &mut self.mixer {
                            mixer.set_member_pose(&peer, member.pose.or(pose));
                        }
                    }
                }
                VoiceCommand::Report { peer, loss_permille } => {
                    if self.members.contains_key(&peer) {
                        self.reports.insert(peer, (loss_permille, Instant::now()));
                    }
                }
                VoiceCommand::Input(source) => self.use_input(source),
                VoiceCommand::Output(sink) => self.use_output(sink),
                VoiceCommand::Headset(headset) => self.use_headset(headset),
                VoiceCommand::Stats(reply) => {
                    let _ = reply.send(self.stats());
                }
            }
        }
    }

    fn add_member(&mut self, peer: PeerId, name: String) {
        if self.members.contains_key(&peer) {
            return;
        }
        // A microphone file (a bot talking) starts once someone can hear it, and the streams to
        // them had a moment to open.
        if self.file_start_at.is_none() {
            self.file_start_at = Some(Instant::now() + FILE_START_DELAY);
        }
        let frame_ms = self.config.codec.frame_ms;
        let ready = ready(self.mixer.as_mut());
        match ring_for(self.mixer.as_mut(), peer)
            .and_then(|(producer, counters)| MemberVoice::new(name, frame_ms, ready, producer, counters))
        {
            Ok(m) => {
                self.members.insert(peer, m);
            }
            Err(e) => self.error(format!("cannot play a member's voice: {e:#}")),
        }
    }

    fn set_talking(&mut self, talking: bool) {
        if talking != self.talking {
            self.talking = talking;
            let (peer, name) = (self.config.me, self.config.my_name.clone());
            let _ = self.events.try_send(NodeEvent::Speaking { peer, name, on: talking });
        }
    }

    fn receive(&mut self) {
        while let Ok(Inbound { peer, bytes, arrival }) = self.inbound.try_recv() {
            let Some(member) = self.members.get_mut(&peer) else {
                self.unknown_frames += 1;
                continue;
            };
            let Ok(frame) = VoiceFrame::decode(&bytes) else {
                self.malformed_frames += 1;
                continue;
            };
            member.receive(&frame, bytes.len() + 2, arrival);
            if frame.pose != member.pose {
                member.pose = frame.pose;
                if let Some(mixer) = &mut self.mixer {
                    mixer.set_member_pose(&peer, frame.pose.or(member.placed));
                }
            }
        }
    }

    /// Decodes and mixes the loudest members talking; keeps the others' jitter buffers in time.
    fn play_out(&mut self, now: Instant) {
        let n = self.config.mix_loudest;
        choose_loudest(&mut self.members, n, now, &mut self.scores);
        for (peer, member) in &mut self.members {
            if member.mixed {
                member.play_out(now);
            } else {
                member.pass_over(now);
            }
            if let Some(mixer) = &mut self.mixer {
                mixer.set_active(peer, member.has_audio());
            }
        }
    }

    fn update_speaking(&mut self, now: Instant) {
        for (peer, member) in &mut self.members {
            let talking = member.talking(now);
            if talking != member.speaking {
                member.speaking = talking;
                let _ = self.events.try_send(NodeEvent::Speaking {
                    peer: *peer,
                    name: member.name.clone(),
                    on: talking,
                });
            }
        }
    }

    fn update_pose(&mut self, now: Instant) {
        let game = self.mumble.as_mut().and_then(|m| m.poll(now)).or(self.typed_pose);
        // Members placed on the radar are heard relative to a listener at the origin.
        let placed = self.members.values().any(|m| m.placed.is_some());
        let pose = game.or(placed.then(Pose::default));
        if pose != self.pose {
            self.pose = pose;
            if let Some(mixer) = &mut self.mixer {
                mixer.set_listener_pose(pose);
            }
        }
        let members = &self.members;
        let fed = || {
            let mut fed: Vec<MemberPose> = (members.iter())
                .filter_map(|(peer, m)| Some(MemberPose { peer: *peer, name: m.name.clone(), pose: m.pose? }))
                .collect();
            fed.sort_by_key(|m| m.peer);
            fed
        };
        if let Some(event) = self.positions.next(game, fed, now) {
            let _ = self.events.try_send(event);
        }
    }
}
