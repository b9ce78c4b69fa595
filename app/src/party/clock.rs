//! Wall time for the party engine (invite lifetimes, chat timestamps): the system clock, or, in
//! tests, one the test sets. Monotonic time (`Instant`) is passed into each call instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use partyline_protocol::UnixTime;

#[derive(Clone, Debug, Default)]
pub(crate) struct WallClock {
    /// Milliseconds since the Unix epoch, when a test holds the clock.
    set: Option<Arc<AtomicU64>>,
}

impl WallClock {
    /// The system's clock.
    pub(crate) fn system() -> Self {
        Self { set: None }
    }

    /// A clock that reads `ms` (milliseconds since the Unix epoch), which the caller moves.
    #[cfg(test)]
    pub(crate) fn set_by(ms: Arc<AtomicU64>) -> Self {
        Self { set: Some(ms) }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        match &self.set {
            Some(ms) => ms.load(Ordering::Relaxed),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    pub(crate) fn unix(&self) -> UnixTime {
        UnixTime(self.now_ms() / 1000)
    }
}
