//! How late a member's frames come, and when each is due.
//!
//! Each frame's *transit* is its arrival time minus the time its sender's sample clock stamped on
//! it (the time stamp, in ms). The smallest transit seen lately is what the path costs at best:
//! a frame is *due* at its time stamp plus that. How much later than due frames come (their
//! *relative delay*) goes into a histogram that slowly forgets, as WebRTC NetEq keeps one; the
//! jitter buffer's target is its 95th percentile.

use std::collections::VecDeque;
use std::time::Instant;

/// Histogram resolution and range of relative delays: the target moves in steps of a bin.
const BIN_MS: f64 = 1.0;
const BINS: usize = 1000;
/// Per-frame forgetting of the delay histogram (~4 s memory at 50 frames/s).
const FORGET: f64 = 0.995;
/// The histogram starts as if this many frames had arrived without jitter, so that the first
/// frames (which may wait for streams to open) do not set the delay for long.
const PRIOR_FRAMES: f64 = 20.0;
const QUANTILE: f64 = 0.95;
/// Frames over which the transit minimum is taken (5 s at 50 frames/s).
const MIN_WINDOW: usize = 250;
/// A frame this much earlier than the earliest before it, or later than anything a jitter buffer
/// could hold, means the sender's clock jumped (it restarted, or its microphone was opened
/// again): the estimate starts afresh from it.
const CLOCK_JUMP_MS: f64 = 2_000.0;

/// Relative delay statistics: a histogram with forgetting, as NetEq keeps for inter-arrival times.
/// Forgetting scales the weight of each new frame up instead of every bin down (bins are
/// rescaled now and then), so a frame costs one bin, not a thousand.
pub(super) struct DelayEstimator {
    histogram: Box<[f64; BINS]>,
    /// What the next frame adds to its bin, and all bins together.
    weight: f64,
    total: f64,
    /// The 95th percentile (ms), as of the last frame.
    quantile: f64,
    /// Recent transit times (ms) with their index, as a monotonic queue for the sliding minimum.
    transit_min: VecDeque<(u64, f64)>,
    count: u64,
    origin: Option<Instant>,
}

impl DelayEstimator {
    pub(super) fn new() -> Self {
        Self {
            histogram: Box::new([0.0; BINS]),
            weight: 1.0,
            total: 0.0,
            quantile: 0.0,
            transit_min: VecDeque::new(),
            count: 0,
            origin: None,
        }
    }

    /// A frame stamped `sent_ms` (on the sender's clock) arrived at `arrival`.
    pub(super) fn observe(&mut self, sent_ms: f64, arrival: Instant) {
        let origin = *self.origin.get_or_insert(arrival);
        let transit = ms_between(origin, arrival) - sent_ms;
        if let Some(&(_, min)) = self.transit_min.front()
            && (transit < min - CLOCK_JUMP_MS || transit > min + CLOCK_JUMP_MS)
        {
            tracing::debug!(transit, min, "the sender's clock jumped; delay estimate starts afresh");
            *self = Self::new();
            return self.observe(sent_ms, arrival);
        }
        self.count += 1;
        while self.transit_min.back().is_some_and(|&(_, t)| t >= transit) {
            self.transit_min.pop_back();
        }
        self.transit_min.push_back((self.count, transit));
        while self.transit_min.front().is_some_and(|&(i, _)| i + (MIN_WINDOW as u64) <= self.count) {
            self.transit_min.pop_front();
        }
        let min = self.transit_min.front().map_or(transit, |&(_, t)| t);
        let relative = (transit - min).max(0.0);
        // Forget slowly once there is history, quickly at first (as NetEq ramps its factor up):
        // every bin times `forget`, this frame's bin plus 1 - `forget`; kept scaled by `weight`.
        let forget = FORGET.min(1.0 - 1.0 / (self.count as f64 + PRIOR_FRAMES));
        self.weight /= forget;
        if self.weight > 1e100 {
            self.histogram.iter_mut().for_each(|p| *p /= self.weight);
            self.total /= self.weight;
            self.weight = 1.0;
        }
        let bin = ((relative / BIN_MS) as usize).min(BINS - 1);
        let add = self.weight * (1.0 - forget);
        self.histogram[bin] += add;
        self.total += add;
        self.quantile = self.find_quantile();
    }

    /// How long after it was due (at the smallest transit seen lately) `now` is for a frame
    /// stamped `sent_ms`; `None` before any frame was seen.
    pub(super) fn since_due_ms(&self, sent_ms: f64, now: Instant) -> Option<f64> {
        let (origin, &(_, min)) = (self.origin?, self.transit_min.front()?);
        Some(ms_between(origin, now) - sent_ms - min)
    }

    /// The 95th percentile of relative delay (ms): the upper edge of its bin.
    pub(super) fn quantile_ms(&self) -> f64 {
        self.quantile
    }

    fn find_quantile(&self) -> f64 {
        let mut cumulative = 0.0;
        for (i, p) in self.histogram.iter().enumerate() {
            cumulative += p;
            if cumulative >= QUANTILE * self.total {
                return if i == 0 { 0.0 } else { (i + 1) as f64 * BIN_MS };
            }
        }
        BINS as f64 * BIN_MS
    }
}

/// Milliseconds from `from` to `to`, negative if `to` is earlier.
fn ms_between(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(from.duration_since(to).as_secs_f64() * 1e3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frames_are_due_at_the_smallest_transit_and_the_target_follows_the_jitter() {
        let t0 = Instant::now();
        let mut d = DelayEstimator::new();
        assert_eq!(d.since_due_ms(0.0, t0), None);
        // 30 ms of transit, every fifth frame 40 ms later.
        for i in 0..500u32 {
            let extra = if i % 5 == 0 { 40.0 } else { 0.0 };
            let at = (f64::from(i) * 20.0 + 30.0 + extra) / 1e3;
            d.observe(f64::from(i) * 20.0, t0 + Duration::from_secs_f64(at));
        }
        // Frame 600 (sent at 12 s) is due 12 s after the first frame's arrival (which was
        // 40 ms late): at t0 + 12.030 s.
        let at = t0 + Duration::from_millis(12_030);
        let since = d.since_due_ms(12_000.0, at).unwrap();
        assert!(since.abs() < 0.01, "{since}");
        assert!((d.quantile_ms() - 41.0).abs() <= 0.01, "{}", d.quantile_ms());
    }

    #[test]
    fn a_jump_of_the_senders_clock_starts_afresh() {
        let t0 = Instant::now();
        let mut d = DelayEstimator::new();
        for i in 0..100u32 {
            d.observe(f64::from(i) * 20.0, t0 + Duration::from_millis(u64::from(i) * 20 + 30));
        }
        // The sender's clock fell 5 s behind (its microphone was reopened): frames look late.
        for i in 100..200u32 {
            d.observe(f64::from(i) * 20.0 - 5_000.0, t0 + Duration::from_millis(u64::from(i) * 20 + 30));
        }
        assert_eq!(d.quantile_ms(), 0.0, "no jitter, only a jump");
        let since = d.since_due_ms(200.0 * 20.0 - 5_000.0, t0 + Duration::from_millis(4_030)).unwrap();
        assert!(since.abs() < 0.01, "{since}");
    }
}
