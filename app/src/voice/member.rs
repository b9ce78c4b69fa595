//! One party member's incoming voice on the voice thread: jitter buffer, decoder, and the ring to
//! the mixer; plus what `/stats` and the loss reports say about it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use partyline_protocol::voice::{Pose, VoiceFrame};

use super::codec::{Decoder, SAMPLE_RATE};
use super::jitter::{JitterBuffer, JitterStats, Pace, Playout};
use super::mix::PlaybackCounters;
use super::stretch;

/// Talking shows for this long after the last talking frame, unless the talker said it stopped.
const TALKING_TIMEOUT: Duration = Duration::from_millis(250);
/// The most decoded audio kept ready for the audio thread, however often it ran dry (ms).
const MAX_READY_MS: usize = 80;
/// Each time the audio thread ran dry mid-talk, keep this much more ready (ms)...
const READY_STEP_MS: usize = 5;
/// ...and after this long without running dry, try one step less again.
const READY_RELAX: Duration = Duration::from_secs(30);

pub(crate) struct MemberVoice {
    pub(crate) name: String,
    jitter: JitterBuffer,
    decoder: Decoder,
    frame_samples: usize,
    frame_ms: u32,
    producer: rtrb::Producer<f32>,
    counters: Arc<PlaybackCounters>,
    ready: Ready,
    /// Latest frame flags: when a talking frame came, and whether the spurt ended.
    talking_until: Option<Instant>,
    pub(crate) speaking: bool,
    /// The position its frames carry (from the member's game).
    pub(crate) pose: Option<Pose>,
    /// Where the local user placed it (radar), used while its frames carry none.
    pub(crate) placed: Option<Pose>,
    bytes: u64,
    window: Window,
    /// Decoded audio on its way to the ring (one or two frames).
    pcm: Vec<f32>,
    /// Samples taken out (played faster) and put in (slower).
    time_scaled: (u64, u64),
}

/// Counts at the start of the current report window.
#[derive(Default, Clone, Copy)]
struct Window {
    stats: JitterStats,
    bytes: u64,
    at: Option<Instant>,
}

/// How much decoded audio to keep in the ring for the audio thread, in samples: as little as
/// works (each sample waiting there is latency), adapted to how the output device pulls. Starts
/// at the least the engine's timing allows and grows whenever the ring ran dry while the member
/// was talking (the device pulls bigger blocks than assumed, or this thread was late).
struct Ready {
    least: usize,
    target: usize,
    /// Underruns seen at the last play-out, and whether the member was playing then.
    underruns: u64,
    playing: bool,
    last_raise: Option<Instant>,
}

impl Ready {
    fn observe(&mut self, underruns: u64, playing: bool, now: Instant) {
        let step = SAMPLE_RATE as usize * READY_STEP_MS / 1000;
        if self.playing && playing && underruns > self.underruns {
            self.target = (self.target + step).min(SAMPLE_RATE as usize * MAX_READY_MS / 1000);
            self.last_raise = Some(now);
        } else if self.target > self.least
            && self.last_raise.is_some_and(|at| now.duration_since(at) > READY_RELAX)
        {
            self.target = (self.target - step).max(self.least);
            self.last_raise = Some(now);
        }
        (self.underruns, self.playing) = (underruns, playing);
    }
}

/// A member's reception over the last window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reception {
    /// Frames that were due in the window (received or lost).
    pub(crate) frames: u64,
    pub(crate) loss: f32,
    pub(crate) jitter_ms: f32,
    pub(crate) kbps: f32,
}

impl MemberVoice {
    /// `ready` is the least decoded audio (samples) to keep ready for the audio thread.
    pub(crate) fn new(
        name: String,
        frame_ms: u32,
        ready: usize,
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
            ready: Ready { least: ready, target: ready, underruns: 0, playing: false, last_raise: None },
            talking_until: None,
            speaking: false,
            pose: None,
            placed: None,
            bytes: 0,
            window: Window::default(),
            pcm: Vec::with_capacity(4 * frame_samples),
            time_scaled: (0, 0),
        })
    }

    /// Decodes into another mixer's ring from now on (the speakers changed).
    /// `ready`: the least decoded audio to keep ready for this mixer.
    pub(crate) fn reattach(
        &mut self,
        producer: rtrb::Producer<f32>,
        counters: Arc<PlaybackCounters>,
        ready: usize,
    ) {
        (self.producer, self.counters) = (producer, counters);
        self.ready = Ready { least: ready, target: ready, underruns: 0, playing: false, last_raise: None };
    }

    pub(crate) fn receive(&mut self, frame: &VoiceFrame<'_>, framed_len: usize, arrival: Instant) {
        self.bytes += framed_len as u64;
        self.jitter.push(frame.seq, frame.ts, frame.opus, frame.end, arrival, !frame.lookback);
        if let Some(previous) = frame.redundant {
            self.jitter.push_redundant(frame.seq.wrapping_sub(1), previous);
        }
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

    /// Decodes frames until enough samples wait in the ring for the audio thread: the device's
    /// consumption paces the decoding, so drift and pauses are the jitter buffer's business.
    pub(crate) fn play_out(&mut self, now: Instant) {
        self.decode_ahead(now);
        self.ready.observe(self.underruns(), self.jitter.is_playing(), now);
    }

    fn decode_ahead(&mut self, now: Instant) {
        let capacity = self.producer.buffer().capacity();
        while capacity - self.producer.slots() < self.ready.target {
            let pace = self.jitter.pace();
            // Not talking: let the ring run dry (the mixer plays silence), so the next talk
            // spurt starts with no backlog.
            if !self.decode_next(now) {
                return;
            }
            // Playing faster cuts a pitch period from this frame and the next (two frames, so
            // that the longest periods fit); slower adds one to this frame.
            match pace {
                Pace::Faster if self.jitter.level() > 0 && self.decode_next(now) => {
                    self.time_scaled.0 += stretch::accelerate(&mut self.pcm) as u64;
                }
                Pace::Slower => self.time_scaled.1 += stretch::expand(&mut self.pcm) as u64,
                _ => {}
            }
            let short = self.pcm.len() < self.frame_samples / 2;
            for s in self.pcm.drain(..) {
                if self.producer.push(s).is_err() {
                    break;
                }
            }
            self.pcm.clear();
            if short {
                return;
            }
        }
    }

    /// Decodes what the jitter buffer says to play next onto `pcm`; false when it says silence.
    fn decode_next(&mut self, now: Instant) -> bool {
        let pcm = match self.jitter.pop(now) {
            Playout::Frame(packet) => self.decoder.decode(&packet),
            Playout::Fec(next) => self.decoder.decode_fec(&next),
            Playout::Conceal => self.decoder.conceal(),
            Playout::Silence => return false,
        };
        self.pcm.extend_from_slice(pcm);
        true
    }

    /// Samples taken out of and put into this member's voice to follow the jitter buffer's
    /// target: (faster, slower), in ms.
    pub(crate) fn time_scaled_ms(&self) -> (u64, u64) {
        let per_ms = u64::from(SAMPLE_RATE / 1000);
        (self.time_scaled.0 / per_ms, self.time_scaled.1 / per_ms)
    }

    /// Whether there is audio to mix: a talk spurt plays, or its end still waits in the ring.
    pub(crate) fn has_audio(&self) -> bool {
        self.jitter.is_playing() || self.producer.slots() < self.producer.buffer().capacity()
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
        // What the network lost, whether or not the copy in the next frame made up for it: the
        // talker keeps its redundancy on while this is above zero.
        let lost = (stats.lost + stats.recovered) - (before.stats.lost + before.stats.recovered);
        let received = stats.received - before.stats.received;
        let seconds = before.at.map_or(0.0, |at| now.duration_since(at).as_secs_f32());
        Reception {
            frames: lost + received,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_dry_while_talking_keeps_more_ready_and_it_relaxes_later() {
        let least = 720;
        let step = SAMPLE_RATE as usize * READY_STEP_MS / 1000;
        let mut ready = Ready { least, target: least, underruns: 0, playing: false, last_raise: None };
        let t0 = Instant::now();
        // Running dry between talk spurts is expected: no change.
        ready.observe(5, false, t0);
        ready.observe(9, true, t0);
        assert_eq!(ready.target, least);
        // Mid-talk: one step more each time, up to the cap.
        ready.observe(10, true, t0);
        assert_eq!(ready.target, least + step);
        for n in 0..100 {
            ready.observe(11 + n, true, t0);
        }
        assert_eq!(ready.target, SAMPLE_RATE as usize * MAX_READY_MS / 1000);
        // Quiet for long enough: one step back at a time, never below the least.
        let cap = ready.target;
        ready.observe(110, true, t0 + Duration::from_secs(10));
        assert_eq!(ready.target, cap);
        ready.observe(110, true, t0 + READY_RELAX + Duration::from_secs(1));
        assert_eq!(ready.target, cap - step);
        for n in 2..100 {
            ready.observe(110, true, t0 + (READY_RELAX + Duration::from_secs(1)) * n);
        }
        assert_eq!(ready.target, least);
    }
}
