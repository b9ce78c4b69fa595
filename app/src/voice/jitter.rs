//! A per-member adaptive jitter buffer.
//!
//! Frames arrive out of order, late, or not at all; the output device asks for one frame's worth
//! of audio at a time. The buffer answers each request with what to decode: the next frame, the
//! forward-error-correction copy carried by the frame after a lost one, a concealment (packet loss
//! concealment), or silence.
//!
//! How much to buffer follows the network, in the spirit of WebRTC NetEq: each frame's *relative
//! delay* (its transit time minus the smallest transit time seen lately) goes into a histogram that
//! slowly forgets; the target delay is its 95th percentile. When more is buffered than the target
//! (after a delay spike, a talk spurt that began with the audio from before the gate opened, or a
//! sender's clock that runs fast) the buffer asks to play [`Pace::Faster`]; when less (a spike, a
//! slow sender clock) [`Pace::Slower`]: the member's decoder then takes a pitch period out of the
//! audio or puts one in (`stretch`), so the delay moves in steps no one hears. Only far over its
//! target, when that was not enough, does it drop whole frames.

use std::collections::BTreeMap;
use std::time::Instant;

use super::delay::DelayEstimator;

/// Frames buffered per member at most (two seconds of 20 ms frames): a flooding sender cannot
/// grow it further.
pub(crate) const CAPACITY: usize = 100;
/// Extra frames tolerated above the target before playing faster, and over how many frame periods
/// the buffer must stay that full (its minimum level) to count.
const FASTER_MARGIN: u64 = 1;
const LEVEL_WINDOW: usize = 10;
/// Frames above the target, over a whole window, past which frames are dropped to catch up.
const DROP_MARGIN: u64 = 4;
/// How long to conceal when nothing arrives before giving up (silence until the next frame).
const MAX_EXPAND_MS: f64 = 100.0;
/// Recent loss (a moving average over about 200 frames) above which the target holds one frame
/// more.
const LOSSY: f64 = 0.01;
const LOSS_AVERAGING: f64 = 1.0 / 200.0;
/// What one [`Playout::Wait`] conceals (ms): Opus conceals in multiples of 2.5 ms.
pub(crate) const WAIT_MS: f64 = 5.0;
/// A gap this long (frames) before the next frame here is skipped at once rather than concealed.
const MAX_GAP: u64 = 25;

/// How fast to play what the buffer holds, for its level to meet the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    Steady,
    /// More is buffered than needed: shorten what is played.
    Faster,
    /// Less is buffered than needed: lengthen it.
    Slower,
}

/// What to play for the next frame period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Playout {
    /// Decode this frame.
    Frame(Vec<u8>),
    /// The frame is lost but the next one is here: decode its FEC data for the lost frame.
    Fec(Vec<u8>),
    /// Nothing to decode: conceal (the decoder extrapolates).
    Conceal,
    /// The next frame is not here yet and nothing after it: conceal a little (a few ms, not a
    /// whole frame) and ask again, so that a frame a few ms late costs a few ms of delay.
    Wait,
    /// Not talking: play silence.
    Silence,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct JitterStats {
    pub(crate) received: u64,
    /// Frames that never came in time: recovered by FEC or concealed.
    pub(crate) lost: u64,
    pub(crate) fec: u64,
    /// Missing frames filled in from the copy the next frame carried (redundancy).
    pub(crate) recovered: u64,
    pub(crate) concealed: u64,
    /// Arrived after their turn to play.
    pub(crate) late: u64,
    pub(crate) duplicates: u64,
    /// Dropped to catch up when playing faster was not enough.
    pub(crate) dropped: u64,
    /// Dropped because the buffer was full.
    pub(crate) overflow: u64,
    /// Quiet look-back left out at the start of a talk spurt.
    pub(crate) skipped: u64,
}

struct Packet {
    payload: Vec<u8>,
    end: bool,
    /// Look-back with nothing to hear in it: skipped when a spurt starts with it.
    quiet_lookback: bool,
    /// Rebuilt from the copy the next frame carried: the frame itself was lost.
    rebuilt: bool,
}

/// How a frame was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// As it was spoken: its arrival tells the network's delay.
    Live,
    /// Look-back, sent late on purpose when the talker's gate opened; `quiet`: nothing to hear.
    LookBack { quiet: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a talk spurt to start.
    Idle,
    Playing,
}

pub(crate) struct JitterBuffer {
    frame_ms: f64,
    samples_per_ms: f64,
    packets: BTreeMap<u64, Packet>,
    /// Next sequence number to play (extended to 64 bits).
    next: u64,
    highest: Option<u64>,
    state: State,
    /// When the first frame buffered while idle arrived.
    spurt_arrival: Option<Instant>,
    missing_in_a_row: u32,
    /// Levels at the last pops (a sliding window), to tell a lasting excess from a burst.
    levels: std::collections::VecDeque<u64>,
    /// Share of frames lost lately (moving average).
    loss: f64,
    delay: DelayEstimator,
    stats: JitterStats,
}

impl JitterBuffer {
    pub(crate) fn new(frame_ms: u32) -> Self {
        Self {
            frame_ms: f64::from(frame_ms),
            samples_per_ms: 48.0,
            packets: BTreeMap::new(),
            next: 0,
            highest: None,
            state: State::Idle,
            spurt_arrival: None,
            missing_in_a_row: 0,
            levels: std::collections::VecDeque::with_capacity(LEVEL_WINDOW),
            loss: 0.0,
            delay: DelayEstimator::new(),
            stats: JitterStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Target delay in milliseconds: the jitter this member's frames show, plus one frame; and
    /// one more while frames get lost, so that the frame after a lost one (which carries its copy
    /// and its FEC) is usually here when the lost one's turn comes.
    pub(crate) fn target_ms(&self) -> f64 {
        let lossy = self.loss > LOSSY;
        self.delay.quantile_ms() + self.frame_ms * if lossy { 2.0 } else { 1.0 }
    }

    /// Counts one frame's turn: whether the frame itself had been lost.
    fn note_turn(&mut self, lost: bool) {
        self.loss += (f64::from(u8::from(lost)) - self.loss) * LOSS_AVERAGING;
    }

    /// Jitter estimate in milliseconds (the 95th percentile of relative delay).
    pub(crate) fn jitter_ms(&self) -> f64 {
        self.delay.quantile_ms()
    }

    fn target_frames(&self) -> u64 {
        ((self.target_ms() / self.frame_ms).ceil() as u64).clamp(1, CAPACITY as u64 / 2)
    }

    /// The least buffered over the last window of pops (0 until the window is full).
    fn lowest_recent_level(&self) -> u64 {
        if self.levels.len() < LEVEL_WINDOW { 0 } else { self.levels.iter().copied().min().unwrap_or(0) }
    }

    /// How fast the next frames should play: faster while the buffer has stayed above its target
    /// for a window of frames, slower while it is below.
    pub(crate) fn pace(&self) -> Pace {
        if self.state != State::Playing {
            Pace::Steady
        } else if self.lowest_recent_level() > self.target_frames() + FASTER_MARGIN {
            Pace::Faster
        } else if self.level() + 1 < self.target_frames() {
            Pace::Slower
        } else {
            Pace::Steady
        }
    }

    /// Frames buffered ahead of the playout point, holes included.
    pub(crate) fn level(&self) -> u64 {
        match (self.state, self.highest) {
            (State::Playing, Some(h)) if h >= self.next => h - self.next + 1,
            (State::Idle, Some(_)) => self.packets.len() as u64,
            _ => 0,
        }
    }

    pub(crate) fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// The 32-bit sequence number `seq` as the 64-bit one nearest to what was seen so far.
    fn extend(&self, seq: u32) -> u64 {
        let Some(reference) = self.highest else { return u64::from(seq) + (1 << 32) };
        let base = reference & !0xffff_ffff;
        [base.wrapping_sub(1 << 32), base, base + (1 << 32)]
            .into_iter()
            .map(|b| b + u64::from(seq))
            .min_by_key(|c| c.abs_diff(reference))
            .expect("three candidates")
    }

    /// Files a frame that arrived at `arrival`.
    pub(crate) fn push(
        &mut self,
        seq: u32,
        ts: u32,
        payload: &[u8],
        end: bool,
        arrival: Instant,
        sent: Sent,
    ) {
        let mut seq = self.extend(seq);
        // Far behind what was played: the sender started over (it restarted). Start afresh.
        if self.state == State::Playing && seq + (CAPACITY as u64) < self.next {
            self.restart(seq);
            seq = self.extend(seq as u32);
        }
        if self.packets.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.received += 1;
        // Late frames are useless to play but tell how much to buffer, except when two or more
        // later frames came first: then it was lost and sent again (QUIC retransmits), and
        // waiting for such frames would add a round trip to every voice. Those count as lost;
        // the next frame's FEC covers them.
        let overtaken = self.highest.is_some_and(|h| h >= seq + 2);
        if sent == Sent::Live && !overtaken {
            self.delay.observe(ts, arrival, self.samples_per_ms);
        }
        if self.state == State::Playing && seq < self.next {
            self.stats.late += 1;
            return;
        }
        if self.packets.len() >= CAPACITY {
            self.packets.pop_first();
            self.stats.overflow += 1;
        }
        if self.state == State::Idle && self.spurt_arrival.is_none() {
            self.spurt_arrival = Some(arrival);
        }
        let quiet_lookback = sent == Sent::LookBack { quiet: true };
        self.packets.insert(seq, Packet { payload: payload.to_vec(), end, quiet_lookback, rebuilt: false });
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
    }

    /// The copy of frame `seq` that the frame after it carried: used when the frame itself has
    /// not come and its turn has not passed. Not an arrival: it says nothing about delay.
    pub(crate) fn push_redundant(&mut self, seq: u32, payload: &[u8]) {
        let seq = self.extend(seq);
        let played = self.state == State::Playing && seq < self.next;
        if played || self.packets.contains_key(&seq) || self.packets.len() >= CAPACITY {
            return;
        }
        self.stats.recovered += 1;
        self.packets.insert(
            seq,
            Packet { payload: payload.to_vec(), end: false, quiet_lookback: false, rebuilt: true },
        );
    }

    /// What to play for the next frame period.
    pub(crate) fn pop(&mut self, now: Instant) -> Playout {
        if self.state == State::Idle && !self.start(now) {
            return Playout::Silence;
        }
        // The next frame here is far ahead (the sender skipped ahead, or a long outage): jump to it
        // instead of concealing frame by frame through the gap.
        if let Some(&lowest) = self.packets.keys().next()
            && lowest > self.next + MAX_GAP
        {
            self.stats.lost += (lowest - self.next).min(CAPACITY as u64);
            self.next = lowest;
        }
        // Far too much buffered for a while, though playing faster: drop a frame to catch up (a
        // frame that is here; a missing one is a loss, handled below).
        if self.lowest_recent_level() > self.target_frames() + DROP_MARGIN
            && self.packets.remove(&self.next).is_some()
        {
            self.stats.dropped += 1;
            self.next += 1;
            self.levels.clear();
        }
        if self.levels.len() == LEVEL_WINDOW {
            self.levels.pop_front();
        }
        self.levels.push_back(self.level());
        if let Some(packet) = self.packets.remove(&self.next) {
            self.next += 1;
            self.missing_in_a_row = 0;
            self.note_turn(packet.rebuilt);
            if packet.end {
                self.go_idle(now);
            }
            return Playout::Frame(packet.payload);
        }
        let later_exists = self.highest.is_some_and(|h| h > self.next);
        if later_exists {
            // Lost (or hopelessly late): recover from the next frame's FEC if it is here.
            self.stats.lost += 1;
            self.note_turn(true);
            self.next += 1;
            self.missing_in_a_row = 0;
            if let Some(next) = self.packets.get(&self.next) {
                self.stats.fec += 1;
                return Playout::Fec(next.payload.clone());
            }
            self.stats.concealed += 1;
            return Playout::Conceal;
        }
        // Nothing later either: the frame is late, the network stalls, or the talker stopped
        // without saying so. Stretch a little at a time (conceal without advancing) for a while,
        // then fall silent.
        self.missing_in_a_row += 1;
        if f64::from(self.missing_in_a_row) * WAIT_MS > MAX_EXPAND_MS {
            self.go_idle(now);
            return Playout::Silence;
        }
        self.stats.concealed += 1;
        Playout::Wait
    }

    /// Forgets the stream so far; `seq` is the first frame of a new one.
    fn restart(&mut self, seq: u64) {
        self.packets.clear();
        self.highest = None;
        self.state = State::Idle;
        self.spurt_arrival = None;
        self.missing_in_a_row = 0;
        self.delay = DelayEstimator::new();
        tracing::debug!(seq, "voice stream restarted");
    }

    fn go_idle(&mut self, now: Instant) {
        self.state = State::Idle;
        self.missing_in_a_row = 0;
        self.spurt_arrival = None;
        if !self.packets.is_empty() {
            // Frames of the next spurt are already here.
            self.spurt_arrival = Some(now);
        }
    }

    /// Starts a talk spurt once the first frame has waited out the target delay.
    fn start(&mut self, now: Instant) -> bool {
        // A spurt starts where there is something to hear: quiet look-back is left out.
        while self.packets.len() > 1 && self.packets.first_key_value().is_some_and(|(_, p)| p.quiet_lookback)
        {
            self.packets.pop_first();
            self.stats.skipped += 1;
        }
        let Some((&first, _)) = self.packets.first_key_value() else { return false };
        let waited_ms =
            self.spurt_arrival.map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64() * 1e3);
        let buffered = self.packets.len() as u64;
        if buffered < self.target_frames() && waited_ms + self.frame_ms < self.target_ms() {
            return false;
        }
        self.next = first;
        self.state = State::Playing;
        self.missing_in_a_row = 0;
        // What is here at the start is no burst: it is the look-back a talker sends when its
        // gate opens, to be played faster at once.
        self.levels.clear();
        self.levels.extend(std::iter::repeat_n(buffered, LEVEL_WINDOW));
        true
    }
}

#[cfg(test)]
mod tests;
