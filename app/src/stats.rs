//! Counters of refused input, shared by the stream readers and the party engine.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::events::Stats;

#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) frames_in: AtomicU64,
    pub(crate) dropped_oversize: AtomicU64,
    pub(crate) dropped_malformed: AtomicU64,
    pub(crate) dropped_rate_limited: AtomicU64,
    pub(crate) dropped_unauthorized: AtomicU64,
    pub(crate) streams_refused: AtomicU64,
    pub(crate) events_lost: AtomicU64,
    pub(crate) plugin_messages_lost: AtomicU64,
    pub(crate) dropped_outbound: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            frames_in: get(&self.frames_in),
            dropped_oversize: get(&self.dropped_oversize),
            dropped_malformed: get(&self.dropped_malformed),
            dropped_rate_limited: get(&self.dropped_rate_limited),
            dropped_unauthorized: get(&self.dropped_unauthorized),
            streams_refused: get(&self.streams_refused),
            events_lost: get(&self.events_lost),
            plugin_messages_lost: get(&self.plugin_messages_lost),
            dropped_outbound: get(&self.dropped_outbound),
        }
    }
}
