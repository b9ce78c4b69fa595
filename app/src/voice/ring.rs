//! A member's decoded voice on its way to the mixer: the ring the audio thread pulls from, how much
//! to keep ready in it, and where the audio thread is in it.
//!
//! The audio thread pulls whole device blocks at once, at moments that wander (ALSA through
//! PulseAudio delivered 13 and 20 ms requests at uneven times), so how much the ring holds right
//! now says only roughly how long until the next sample is heard: a block just pulled still
//! waits in the device's buffer. The output itself plays on the device's steady clock. The mixer
//! counts what its output rendered; [`Clock`] follows that count as a steady clock, and how far
//! the count ran ahead of it is audio taken from the ring but not heard yet. So the jitter buffer
//! sees the delay of what it hands out without the pulls' noise.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::codec::SAMPLE_RATE;
use super::mix::PlaybackCounters;

/// The most decoded audio kept ready for the audio thread, however often it ran dry (ms).
const MAX_READY_MS: usize = 80;
/// Each time the audio thread ran dry mid-talk, keep this much more ready (ms)...
const READY_STEP_MS: usize = 5;
/// ...and after this long without running dry, try one step less again.
const READY_RELAX: Duration = Duration::from_secs(30);
/// How quickly the clock follows what the output rendered (s): long against the pulls' period,
/// short against how fast device clocks drift.
const FOLLOW_S: f64 = 0.25;

const PER_MS: f64 = SAMPLE_RATE as f64 / 1e3;

pub(crate) struct Ring {
    producer: rtrb::Producer<f32>,
    counters: Arc<PlaybackCounters>,
    ready: Ready,
    clock: Clock,
    /// Samples pushed so far.
    pushed: u64,
}

impl Ring {
    /// `ready` is the least decoded audio (samples) to keep ready for the audio thread.
    pub(crate) fn new(producer: rtrb::Producer<f32>, counters: Arc<PlaybackCounters>, ready: usize) -> Self {
        Self {
            producer,
            ready: Ready { least: ready, target: ready, underruns: 0, playing: false, last_raise: None },
            clock: Clock { rendered: counters.rendered.clone(), at: None },
            counters,
            pushed: 0,
        }
    }

    /// Samples waiting for the audio thread.
    pub(crate) fn level(&self) -> usize {
        self.producer.buffer().capacity() - self.producer.slots()
    }

    pub(crate) fn level_ms(&self) -> f64 {
        self.level() as f64 / PER_MS
    }

    /// Whether less than the ready target waits.
    pub(crate) fn wants_more(&self) -> bool {
        self.level() < self.ready.target
    }

    /// How much is kept ready (ms).
    pub(crate) fn ready_ms(&self) -> f64 {
        self.ready.target as f64 / PER_MS
    }

    pub(crate) fn underruns(&self) -> u64 {
        self.counters.underruns.load(Ordering::Relaxed)
    }

    /// Moves `pcm` into the ring (what does not fit is dropped).
    pub(crate) fn push(&mut self, pcm: &mut Vec<f32>) {
        for s in pcm.drain(..) {
            if self.producer.push(s).is_err() {
                break;
            }
            self.pushed += 1;
        }
        pcm.clear();
    }

    /// How long until `extra` samples pushed after what waits now would start to be heard (ms,
    /// give or take a constant): what waits in the ring, and what the output took but has not
    /// played yet by its clock.
    pub(crate) fn queued_ms(&self, now: Instant, extra: usize) -> f64 {
        // Both counts as of one moment (the audio thread may pull in between).
        let (level, rendered) = loop {
            let before = self.clock.rendered.load(Ordering::Relaxed);
            let level = self.level();
            if self.clock.rendered.load(Ordering::Relaxed) == before {
                break (level, before);
            }
        };
        let taken = self.clock.position(now).map_or(0.0, |p| rendered as f64 - p);
        ((level + extra) as f64 + taken) / PER_MS
    }

    /// Looks at the output's progress (each tick of the voice thread); `playing`: the member's
    /// talk spurt is playing.
    pub(crate) fn observe(&mut self, now: Instant, playing: bool) {
        self.ready.observe(self.underruns(), playing, now);
        self.clock.observe(now);
    }

    /// Starts over on another mixer's ring (the speakers changed).
    pub(crate) fn replace(
        &mut self,
        producer: rtrb::Producer<f32>,
        counters: Arc<PlaybackCounters>,
        ready: usize,
    ) {
        *self = Self::new(producer, counters, ready);
    }
}

/// The output's position on a steady 48 kHz clock: what it rendered, smoothed over its pulls (a
/// first-order loop that runs on at 48 kHz and moves towards each count it sees).
struct Clock {
    rendered: Arc<AtomicU64>,
    /// The position (samples) at a time.
    at: Option<(Instant, f64)>,
}

impl Clock {
    fn observe(&mut self, now: Instant) {
        let rendered = self.rendered.load(Ordering::Relaxed);
        // An output that renders nothing (none, or not started) has no clock.
        if rendered == 0 {
            self.at = None;
            return;
        }
        let position = match self.at {
            None => rendered as f64,
            Some((at, p)) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                let predicted = p + dt * 1e3 * PER_MS;
                predicted + (rendered as f64 - predicted) * (1.0 - (-dt / FOLLOW_S).exp())
            }
        };
        self.at = Some((now, position));
    }

    fn position(&self, now: Instant) -> Option<f64> {
        let (at, position) = self.at?;
        Some(position + now.saturating_duration_since(at).as_secs_f64() * 1e3 * PER_MS)
    }
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

    #[test]
    fn the_clock_runs_steadily_through_the_outputs_bursts() {
        // The output takes 13.3 and 20 ms blocks, 0 to 8 ms off a steady beat; the voice thread
        // looks every 5 ms.
        let t0 = Instant::now();
        let rendered = Arc::new(AtomicU64::new(0));
        let mut clock = Clock { rendered: rendered.clone(), at: None };
        let block = |b: u64| if b.is_multiple_of(3) { 640 } else { 960 };
        let late = |b: u64| (b * 7 % 9) as f64;
        // When each block is taken, and how much was taken by then.
        let mut pulls = Vec::new();
        let (mut due, mut total) = (0.0, 0);
        for b in 0..700u64 {
            total += block(b);
            pulls.push((due + late(b), total));
            due += block(b) as f64 / PER_MS;
        }
        let mut errors = Vec::new();
        for tick in 1..2000u64 {
            let ms = tick as f64 * 5.0;
            let taken = pulls.iter().take_while(|(at, _)| *at <= ms).last().map_or(0, |p| p.1);
            rendered.store(taken, Ordering::Relaxed);
            let now = t0 + Duration::from_secs_f64(ms / 1e3);
            clock.observe(now);
            if tick > 200 {
                errors.push(clock.position(now).unwrap() / PER_MS - ms);
            }
        }
        let (lo, hi) = errors.iter().fold((f64::MAX, f64::MIN), |(lo, hi), e| (lo.min(*e), hi.max(*e)));
        assert!(hi - lo < 3.0, "steady within 3 ms: {lo}..{hi}");
        // What waits in a ring as it plays out, through the same bursts: steady too.
        let (producer, _consumer) = rtrb::RingBuffer::new(48_000);
        let counters = Arc::new(PlaybackCounters { rendered, ..Default::default() });
        let ring = Ring::new(producer, counters, 960);
        let q = ring.queued_ms(t0 + Duration::from_secs(10), 0);
        assert!(q.abs() < 25.0, "{q}");
    }
}
