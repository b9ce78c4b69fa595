//! Wall-clock instants as they travel on the wire: whole seconds since the Unix epoch.
//!
//! The protocol never reads the clock itself; callers pass `now` in, which keeps every check here
//! deterministic and testable.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The current time from the system clock (for callers; the protocol itself never calls this).
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Self {
        Self(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0)
    }

    /// `self + d`, saturating instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_secs()))
    }
}

impl fmt::Display for UnixTime {
    /// RFC 3339 in UTC, e.g. `2026-11-22T06:40:00Z`; far-future values print as seconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // humantime only formats up to year 9999.
        if self.0 < 253_402_300_800 {
            write!(f, "{}", humantime::format_rfc3339_seconds(self.to_system()))
        } else {
            write!(f, "@{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339() {
        assert_eq!(UnixTime(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(UnixTime(1_795_329_600).to_string(), "2026-11-22T06:40:00Z");
        assert_eq!(UnixTime(u64::MAX).to_string(), format!("@{}", u64::MAX));
    }
}
