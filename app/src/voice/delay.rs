//! How late a member's frames come: each frame's *relative delay* (its transit time minus the
//! smallest transit time seen lately) goes into a histogram that slowly forgets, as WebRTC NetEq
//! keeps one; the jitter buffer's target is its 95th percentile.

use std::collections::VecDeque;
use std::time::Instant;

/// Histogram resolution and range of relative delays.
const BIN_MS: f64 = 5.0;
const BINS: usize = 200;
/// Per-frame forgetting of the delay histogram (~4 s memory at 50 frames/s).
const FORGET: f64 = 0.995;
/// The histogram starts as if this many frames had arrived without jitter, so that the first
/// frames (which may wait for streams to open) do not set the delay for long.
const PRIOR_FRAMES: f64 = 20.0;
const QUANTILE: f64 = 0.95;
/// Frames over the transit minimum is taken (5 s at 50 frames/s).
const MIN_WINDOW: usize = 250;
/// Relative delay statistics: a histogram with forgetting, as NetEq keeps for inter-arrival times.
pub(super) struct DelayEstimator {
    histogram: [f64; BINS],
    /// Recent transit times (ms) with their index, as a monotonic queue for the sliding minimum.
    transit_min: VecDeque<(u64, f64)>,
    count: u64,
    origin: Option<Instant>,
    ts_base: Option<u32>,
}

impl DelayEstimator {
    pub(super) fn new() -> Self {
        Self { histogram: [0.0; BINS], transit_min: VecDeque::new(), count: 0, origin: None, ts_base: None }
    }

    pub(super) fn observe(&mut self, ts: u32, arrival: Instant, samples_per_ms: f64) {
        let origin = *self.origin.get_or_insert(arrival);
        let base = *self.ts_base.get_or_insert(ts);
        let sent_ms = f64::from(ts.wrapping_sub(base) as i32) / samples_per_ms;
        let arrived_ms = arrival.saturating_duration_since(origin).as_secs_f64() * 1e3;
        let transit = arrived_ms - sent_ms;
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
        // Forget slowly once there is history, quickly at first (as NetEq ramps its factor up).
        let forget = FORGET.min(1.0 - 1.0 / (self.count as f64 + PRIOR_FRAMES));
        for p in &mut self.histogram {
            *p *= forget;
        }
        let bin = ((relative / BIN_MS) as usize).min(BINS - 1);
        self.histogram[bin] += 1.0 - forget;
    }

    pub(super) fn quantile_ms(&self) -> f64 {
        let total: f64 = self.histogram.iter().sum();
        let mut cumulative = 0.0;
        for (i, p) in self.histogram.iter().enumerate() {
            cumulative += p;
            if cumulative >= QUANTILE * total {
                return i as f64 * BIN_MS;
            }
        }
        (BINS as f64) * BIN_MS
    }
}
