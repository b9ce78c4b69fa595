//! The voice thread's devices: opening the microphone (and again after it failed), taking what it
//! captured through the DSP and the encoder to the network, and moving the party to other
//! speakers.

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;
use libp2p::PeerId;

use super::{Engine, REDUNDANCY_FROM_PERCENT, REOPEN_EVERY, TICK};

/// Overruns of one microphone stream before it is opened again with larger blocks.
const OVERRUNS_TO_GROW: u64 = 2;
use crate::events::NodeEvent;
use crate::voice::capture::{CAPTURE_BLOCKS_MS, Capture};
use crate::voice::capture_dsp::CaptureDsp;
use crate::voice::codec::SAMPLE_RATE;
use crate::voice::headset::Headset;
use crate::voice::mix::Mixer;
use crate::voice::{MicSource, SpeakerSink};

impl Engine {
    pub(super) fn open_input(&mut self) {
        let source = self.config.input.clone();
        match Capture::open(&source, self.capture_block_ms) {
            Ok(Some(capture)) => {
                match CaptureDsp::new(
                    capture.rate,
                    self.config.codec.frame_samples(),
                    self.config.gate,
                    self.config.noise_suppression,
                ) {
                    Ok(mut dsp) => {
                        // Keep the user's mode, key and mute across a reopened or another device.
                        if let Some(old) = &mut self.dsp {
                            dsp.gate().carry(old.gate());
                        }
                        dsp.gate().set_muted(self.muted || self.deafened);
                        if let Some(at) = self.captured_at.take() {
                            self.sender.skip(at.elapsed());
                        }
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

    /// Reports when a microphone file started playing and a speaker file started recording (wall
    /// clock), so that a test can line the two files up and measure mouth-to-ear latency.
    pub(super) fn announce_file_starts(&mut self) {
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

    /// Captures from another microphone, closing the one in use.
    pub(super) fn use_input(&mut self, source: MicSource) {
        if let Some(capture) = self.capture.take() {
            capture.close();
        }
        self.set_talking(false);
        self.sender.stop();
        self.config.input = source;
        self.reopen_at = None;
        self.open_input();
    }

    /// The companion page becomes the microphone and speakers (`Some`), or the ones in use before
    /// it are back (`None`). Reported as a `headset` event either way.
    pub(super) fn use_headset(&mut self, headset: Option<Headset>) {
        let device = headset.as_ref().map(|h| h.device.clone());
        match headset {
            Some(headset) => {
                if self.before_headset.is_none() {
                    self.before_headset = Some((self.config.input.clone(), self.config.output.clone()));
                }
                self.use_input(MicSource::Headset(headset.clone()));
                self.use_output(SpeakerSink::Headset(headset));
            }
            None => {
                let Some((input, output)) = self.before_headset.take() else { return };
                self.use_input(input);
                self.use_output(output);
            }
        }
        let _ = self.events.try_send(NodeEvent::Headset { device });
    }

    /// Moves the party to other speakers: a new mixer with every member, as loud and placed as
    /// before. If they cannot be opened, the ones in use stay.
    pub(super) fn use_output(&mut self, sink: SpeakerSink) {
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

    /// A microphone that overran (this thread did not read its small buffer in time: a busy
    /// machine) is opened again with the next larger block: what the device sustains.
    fn grow_capture_blocks(&mut self) {
        let Some(capture) = &self.capture else { return };
        let overruns = capture.status.overruns.load(Ordering::Relaxed);
        let Some(larger) =
            CAPTURE_BLOCKS_MS.iter().copied().find(|ms| capture.block_ms.is_some_and(|b| *ms > b))
        else {
            return;
        };
        if overruns < OVERRUNS_TO_GROW {
            return;
        }
        tracing::info!(overruns, block_ms = larger, "the microphone overran; opening it with larger blocks");
        self.input_overruns += overruns;
        self.capture_block_ms = larger;
        if let Some(capture) = self.capture.take() {
            capture.close();
        }
        self.open_input();
    }

    pub(super) fn capture(&mut self, now: Instant) {
        if self.file_start_at.is_some_and(|at| now >= at)
            && let Some(capture) = &self.capture
        {
            capture.status.go.store(true, Ordering::Relaxed);
        }
        // The headset's page went away: the voice goes back to this machine's devices.
        if matches!(self.config.input, MicSource::Headset(_))
            && self.capture.as_ref().is_some_and(|c| c.status.ended.load(Ordering::Relaxed))
        {
            return self.use_headset(None);
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
        self.grow_capture_blocks();
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
        if !self.scratch.is_empty() {
            self.captured_at = Some(now);
        }
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
}

/// Decoded audio kept ready for the audio thread to begin with (samples): what the output takes at
/// once, and what it plays while this thread sleeps for a tick. Each member's grows if that was
/// not enough (see `member::Ready`).
pub(super) fn ready(mixer: Option<&mut Mixer>) -> usize {
    let block = mixer.map_or(SAMPLE_RATE as usize / 100, |m| m.block_samples());
    block + SAMPLE_RATE as usize * TICK.as_millis() as usize / 1000
}

/// A ring for a member's decoded voice: into the mixer, or, with no output, one nobody reads (its
/// frames still count in the statistics).
pub(super) fn ring_for(
    mixer: Option<&mut Mixer>,
    peer: PeerId,
) -> Result<(rtrb::Producer<f32>, std::sync::Arc<crate::voice::mix::PlaybackCounters>)> {
    match mixer {
        Some(mixer) => mixer.add_member(peer),
        None => Ok((rtrb::RingBuffer::new(SAMPLE_RATE as usize).0, Default::default())),
    }
}
