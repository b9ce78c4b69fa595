//! One party member's incoming voice on the voice thread: jitter buffer, decoder, and the ring to
//! the mixer; plus what `/stats` and the loss reports say about it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use partyline_protocol::voice::{Pose, VoiceFrame};

use super::codec::{Decoder, SAMPLE_RATE};
use super::jitter::{JitterBuffer, JitterStats, Playout};
use super::mix::PlaybackCounters;

/// Talking shows for this long after the last talking frame, unless the talker said it stopped.
const TALKING_TIMEOUT: Duration = Duration::from_millis(250);

pub(crate) struct MemberVoice {
    pub(crate) name: String,
    jitter: JitterBuffer,
    decoder: Decoder,
    frame_samples: usize,
    frame_ms: u32,
    producer: rtrb::Producer<f32>,
    counters: Arc<PlaybackCounters>,
    /// Latest frame flags: when a talking frame came, and whether the spurt ended.
    talking_until: Option<Instant>,
    pub(crate) speaking: bool,
    pub(crate) pose: Option<Pose>,
    bytes: u64,
    window: Window,
}

/// Counts at the start of the current report window.
#[derive(Default, Clone, Copy)]
struct Window {
    stats: JitterStats,
    bytes: u64,
    at: Option<Instant>,
}

/// A member's reception over the last window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reception {
    pub(crate) loss: f32,
    pub(crate) jitter_ms: f32,
    pub(crate) kbps: f32,
}

impl MemberVoice {
    pub(crate) fn new(
        name: String,
        frame_ms: u32,
        producer: rtrb::Producer<f32>,
        counters: Arc<PlaybackCounters>,
    ) -> Result<Self> {
        let frame_samples = (SAMPLE_RATE * frame_ms / 1000) as usize;
        Ok(Self {
            name,
            jitter: JitterBuffer::new(frame_ms),
            decoder: Decoder::new(frame_samples)?,
            frame_samples,
            frame_ms,
            producer,
            counters,
            talking_until: None,
            speaking: false,
            pose: None,
            bytes: 0,
            window: Window::default(),
        })
    }

    pub(crate) fn receive(&mut self, frame: &VoiceFrame<'_>, framed_len: usize, arrival: Instant) {
        self.bytes += framed_len as u64;
        self.jitter.push(frame.seq, frame.ts, frame.opus, frame.end, arrival);
        if frame.talking && !frame.end {
            self.talking_until = Some(arrival + TALKING_TIMEOUT);
        } else if frame.end {
            self.talking_until = None;
        }
    }

    /// Whether the member is talking now (for speaking indicators).
    pub(crate) fn talking(&self, now: Instant) -> bool {
        self.talking_until.is_some_and(|until| now < until) || self.jitter.is_playing()
    }

    /// Decodes frames until `target` samples wait in the ring for the audio thread: the device's
    /// consumption paces the decoding, so drift and pauses are the jitter buffer's business.
    pub(crate) fn play_out(&mut self, now: Instant, target: usize) {
        let capacity = self.producer.buffer().capacity();
        while capacity - self.producer.slots() < target {
            let pcm = match self.jitter.pop(now) {
                Playout::Frame(packet) => self.decoder.decode(&packet),
                Playout::Fec(next) => self.decoder.decode_fec(&next),
                Playout::Conceal => self.decoder.conceal(),
                // Not talking: let the ring run dry (the mixer plays silence), so the next talk
                // spurt starts with no backlog.
                Playout::Silence => return,
            };
            for s in pcm {
                if self.producer.push(*s).is_err() {
                    break;
                }
            }
            if pcm.len() < self.frame_samples / 2 {
                return;
            }
        }
    }

    /// Audio waiting for the listener: jitter buffer plus the ring to the mixer, in ms.
    pub(crate) fn buffered_ms(&self) -> f32 {
        let ring = self.producer.buffer().capacity() - self.producer.slots();
        self.jitter.level() as f32 * self.frame_ms as f32 + ring as f32 * 1000.0 / SAMPLE_RATE as f32
    }

    pub(crate) fn stats(&self) -> JitterStats {
        self.jitter.stats()
    }

    pub(crate) fn underruns(&self) -> u64 {
        self.counters.underruns.load(Ordering::Relaxed)
    }

    /// Reception since the last call, which starts a new window.
    pub(crate) fn take_window(&mut self, now: Instant) -> Reception {
        let stats = self.jitter.stats();
        let before = self.window;
        self.window = Window { stats, bytes: self.bytes, at: Some(now) };
        let lost = stats.lost - before.stats.lost;
        let received = stats.received - before.stats.received;
        let seconds = before.at.map_or(0.0, |at| now.duration_since(at).as_secs_f32());
        Reception {
            loss: if lost + received == 0 { 0.0 } else { lost as f32 / (lost + received) as f32 },
            jitter_ms: self.jitter.jitter_ms() as f32,
            kbps: if seconds > 0.0 {
                (self.bytes - before.bytes) as f32 * 8.0 / 1000.0 / seconds
            } else {
                0.0
            },
        }
    }
}
