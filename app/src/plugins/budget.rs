//! A call's time budget: [`CPU`] of the plugin thread's own CPU time, so that a plugin that a busy
//! machine (a game beside it) leaves waiting for a core is not stopped for time it never used;
//! and [`WALL`] of wall-clock time at most, whatever happens. The epoch clock calls
//! [`Budget::check`] when a call reaches its deadline tick.

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

/// The clock ticks this often; a call may run [`DEADLINE_TICKS`] ticks (100 ms).
pub(crate) const TICK: Duration = Duration::from_millis(5);
pub(crate) const DEADLINE_TICKS: u64 = 20;

/// CPU time one call may use.
pub(crate) const CPU: Duration = Duration::from_millis(DEADLINE_TICKS * TICK.as_millis() as u64);
/// Wall-clock time one call may take, even if descheduled.
pub(crate) const WALL: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    cpu_at_start: Duration,
    started: Instant,
}

/// The CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

impl Budget {
    /// A call starts now, on this thread.
    pub(crate) fn start() -> Self {
        Self { cpu_at_start: thread_cpu(), started: Instant::now() }
    }

    /// At a deadline tick (on the plugin's thread): stop the call, or let it run the ticks its
    /// CPU budget still allows.
    pub(crate) fn check(&self) -> UpdateDeadline {
        let used = thread_cpu().saturating_sub(self.cpu_at_start);
        let left = CPU.saturating_sub(used);
        if left < TICK / 2 || self.started.elapsed() >= WALL {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue((left.as_nanos() / TICK.as_nanos()).max(1) as u64)
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_spent_waiting_is_not_counted_but_time_spent_running_is() {
        let waiting = Budget::start();
        std::thread::sleep(CPU + Duration::from_millis(50));
        assert!(matches!(waiting.check(), UpdateDeadline::Continue(_)), "asleep, not running");
        let busy = Budget::start();
        let mut n = 0u64;
        while thread_cpu().saturating_sub(busy.cpu_at_start) < CPU {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        assert!(matches!(busy.check(), UpdateDeadline::Interrupt), "ran its whole budget");
    }
}
