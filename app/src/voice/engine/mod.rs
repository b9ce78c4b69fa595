//! The voice thread. Every 5 ms it takes what the microphone captured through the DSP and the
//! encoder and hands finished frames to the network; files arriving frames into each member's
//! jitter buffer; decodes until every member's ring holds enough for the audio thread; and
//! reports speaking changes, statistics and reception reports. Audio callbacks (capture ring in,
//! mixer rings out) never wait for it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
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
use super::{Inbound, MicSource, SpeakerSink, VoiceCommand, VoiceConfig, VoiceOut};
use crate::events::{MemberPose, NodeEvent};

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
/// Decoded audio kept ready for the audio thread to begin with (samples): what the output takes at
/// once, and what it plays while this thread sleeps for a tick. Each member's grows if that was
/// not enough (see `member::Ready`).
fn ready(mixer: Option<&mut Mixer>) -> usize {
    let block = mixer.map_or(SAMPLE_RATE as usize / 100, |m| m.block_samples());
    block + SAMPLE_RATE as usize * TICK.as_millis() as usize / 1000
}

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
    /// Scratch space for choosing the loudest members.
    scores: Vec<f32>,
    talking: bool,
    /// The user muted themselves, or deafened (which mutes too); the gate follows both.
    muted: bool,
    deafened: bool,
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
            scores: Vec::new(),
            talking: false,
            muted: false,
            deafened: false,
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

    /// Deafened members do not talk either.
    fn apply_mute(&mut self) {
        if let Some(dsp) = &mut self.dsp {
            dsp.gate().set_muted(self.muted || self.deafened);
        }
    }

    fn open_input(&mut self) {
        let source = self.config.input.clone();
        match Capture::open(&source) {
            Ok(Some(capture)) => {
                match CaptureDsp::new(
                    capture.rate,
                    self.config.codec.frame_samples(),
                    self.config.gate,
                    self.config.noise_suppression,
                ) {
                    Ok(mut dsp) => {
                        // Keep the user's mode and mute across a reopened device.
                        if let Some(old) = &mut self.dsp {
                            dsp.gate().set_mode(old.gate().settings().mode);
                        }
                        dsp.gate().set_muted(self.muted || self.deafened);
                        tracing::info!(input = %capture.description, rate = capture.rate, "microphone open");
                        self.dsp = Some(dsp);
                        self.capture = Some(capture);
                        self.reopen_at = None;
                    }
                    Err(e) => self.error(format!("cannot process the microphone: {e:#}")),
                }
            }
            Ok(None) => {}
            Err(e) => {
                let retry = matches!(source, MicSource::DefaultDevice | MicSource::Device(_));
                self.error(format!("{e:#}; listen-only{}", if retry { ", retrying" } else { "" }));
                self.reopen_at = retry.then(|| Instant::now() + REOPEN_EVERY);
            }
        }
    }

    pub(super) fn run(mut self) {
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

    /// Reports when a microphone file started playing and a speaker file started recording (wall
    /// clock), so that a test can line the two files up and measure mouth-to-ear latency.
    fn announce_file_starts(&mut self) {
        let time = |t: Option<std::time::SystemTime>| {
            t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64)
        };
        if !self.announced.0
            && matches!(self.config.input, MicSource::File(_))
            && let Some(at_ms) = time(
                self.capture
                    .as_ref()
                    .and_then(|c| *c.status.started.lock().unwrap_or_else(|p| p.into_inner())),
            )
        {
            self.announced.0 = true;
            let _ = self.events.try_send(NodeEvent::AudioStarted { source: "mic-file", at_ms });
        }
        if !self.announced.1
            && let Some(at_ms) = time(*self.output_started.lock().unwrap_or_else(|p| p.into_inner()))
        {
            self.announced.1 = true;
            let _ = self.events.try_send(NodeEvent::AudioStarted { source: "speaker-file", at_ms });
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
                VoiceCommand::Input(source) => {
                    if let Some(capture) = self.capture.take() {
                        capture.close();
                    }
                    self.set_talking(false);
                    self.sender.stop();
                    self.config.input = source;
                    self.reopen_at = None;
                    self.open_input();
                }
                VoiceCommand::Output(sink) => self.use_output(sink),
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

    /// Moves the party to other speakers: a new mixer with every member, as loud and placed as
    /// before. If they cannot be opened, the ones in use stay.
    fn use_output(&mut self, sink: SpeakerSink) {
        let mut mixer = match Mixer::new(sink.to_target(&self.output_started), self.config.spatial) {
            Ok(mixer) => mixer,
            Err(e) => {
                return self.error(format!(
                    "cannot play on {}: {e:#}; the speakers stay as they were",
                    sink.describe()
                ));
            }
        };
        mixer.set_deafened(self.deafened);
        let ready = ready(Some(&mut mixer));
        for (peer, member) in &mut self.members {
            match mixer.add_member(*peer) {
                Ok((producer, counters)) => member.reattach(producer, counters, ready),
                Err(e) => tracing::warn!(member = %member.name, "cannot play a member's voice: {e:#}"),
            }
            mixer.set_member_pose(peer, member.pose.or(member.placed));
        }
        if let Some(old) = &self.mixer {
            mixer.keep_settings_of(old);
        }
        tracing::info!(output = %sink.describe(), "speakers changed");
        self.config.output = sink;
        self.mixer = Some(mixer);
    }

    fn capture(&mut self, now: Instant) {
        if self.file_start_at.is_some_and(|at| now >= at)
            && let Some(capture) = &self.capture
        {
            capture.status.go.store(true, Ordering::Relaxed);
        }
        if self.capture.as_ref().is_some_and(|c| c.status.failed.load(Ordering::Relaxed)) {
            let capture = self.capture.take().expect("checked");
            let why =
                capture.status.error.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
            self.error(format!(
                "the microphone ({}) stopped: {why}; listen-only, retrying",
                capture.description
            ));
            capture.close();
            self.reopen_at = Some(now + REOPEN_EVERY);
            self.set_talking(false);
        }
        if self.capture.is_none() {
            if self.reopen_at.is_some_and(|at| now >= at) {
                self.open_input();
            }
            return;
        }
        let (Some(capture), Some(dsp)) = (&mut self.capture, &mut self.dsp) else { return };
        self.scratch.clear();
        capture.drain(&mut self.scratch, now);
        let (pose, encoder, sender, out) = (self.pose, &mut self.encoder, &mut self.sender, &self.out);
        // Each frame repeats the one before while anyone reports loss: a lost frame is rebuilt
        // exactly from the next one (FEC alone rebuilds a rough version, and only at higher loss).
        let redundancy = encoder.expected_loss() >= REDUNDANCY_FROM_PERCENT;
        let mut talking = None;
        dsp.push(&self.scratch, |frame| {
            talking = Some(frame.send && !frame.end);
            // Every frame is encoded, sent or not, so the encoder's state runs on and the frames
            // before a talk spurt can go out with it.
            let opus = encoder.encode(frame.pcm).ok();
            sender.frame(&frame, opus, pose, redundancy, out);
        });
        if let Some(talking) = talking {
            self.set_talking(talking);
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

/// A ring for a member's decoded voice: into the mixer, or, with no output, one nobody reads (its
/// frames still count in the statistics).
fn ring_for(
    mixer: Option<&mut Mixer>,
    peer: PeerId,
) -> Result<(rtrb::Producer<f32>, std::sync::Arc<super::mix::PlaybackCounters>)> {
    match mixer {
        Some(mixer) => mixer.add_member(peer),
        None => Ok((rtrb::RingBuffer::new(SAMPLE_RATE as usize).0, Default::default())),
    }
}
