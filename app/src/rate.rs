//! Rate limits: a token bucket (`burst` tokens, refilled at `per_sec`) caps what one peer may
//! send; a byte rate paces what this node uploads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;

#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(burst: u32, per_sec: f64, now: Instant) -> Self {
        Self { tokens: f64::from(burst), burst: f64::from(burst), per_sec, last: now }
    }

    /// How long since a token was last asked for.
    pub(crate) fn idle(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last)
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A token bucket per peer, shared by the tasks that hold a clone.
#[derive(Clone)]
pub(crate) struct PeerBuckets {
    buckets: Arc<Mutex<HashMap<PeerId, TokenBucket>>>,
    burst: u32,
    per_sec: f64,
}

/// Peers whose buckets are kept; past this, those idle for a while are forgotten.
const PEER_BUCKETS: usize = 256;

impl PeerBuckets {
    pub(crate) fn new(burst: u32, per_sec: f64) -> Self {
        Self { buckets: Arc::default(), burst, per_sec }
    }

    /// Whether `peer` may send one more now.
    pub(crate) fn take(&self, peer: PeerId, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PEER_BUCKETS && !buckets.contains_key(&peer) {
            buckets.retain(|_, b| b.idle(now) < Duration::from_secs(10));
        }
        buckets.entry(peer).or_insert_with(|| TokenBucket::new(self.burst, self.per_sec, now)).take(now)
    }
}

/// Paces bytes to `per_sec`: each reservation is sent when the ones before it have had their
/// time (a virtual clock that never runs behind now by more than `slack`, so an idle sender gets
/// a short burst, not an unbounded one).
#[derive(Clone, Debug)]
pub(crate) struct ByteRate {
    per_sec: f64,
    slack: Duration,
    next: Instant,
}

impl ByteRate {
    pub(crate) fn new(per_sec: u64, now: Instant) -> Self {
        Self { per_sec: per_sec.max(1) as f64, slack: Duration::from_millis(50), next: now }
    }

    /// Reserves `bytes`: how long to wait before sending them.
    pub(crate) fn reserve(&mut self, bytes: u64, now: Instant) -> Duration {
        self.next = self.next.max(now.checked_sub(self.slack).unwrap_or(now));
        let wait = self.next.saturating_duration_since(now);
        self.next += Duration::from_secs_f64(bytes as f64 / self.per_sec);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_rate_paces_to_its_rate_after_a_short_burst() {
        let t0 = Instant::now();
        let mut rate = ByteRate::new(1000, t0);
        assert_eq!(rate.reserve(500, t0), Duration::ZERO);
        assert_eq!(rate.reserve(500, t0), Duration::from_millis(500));
        assert_eq!(rate.reserve(1000, t0), Duration::from_secs(1));
        // Idle for long: only `slack` of credit, then the rate again.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(rate.reserve(50, later), Duration::ZERO);
        assert_eq!(rate.reserve(100, later), Duration::ZERO);
        assert_eq!(rate.reserve(100, later), Duration::from_millis(100));
    }

    #[test]
    fn allows_bursts_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(3, 2.0, t0);
        assert!((0..3).all(|_| bucket.take(t0)));
        assert!(!bucket.take(t0));
        assert!(bucket.take(t0 + Duration::from_millis(500)));
        assert!(!bucket.take(t0 + Duration::from_millis(500)));
        // Refill is capped at the burst size.
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 3);
    }
}
