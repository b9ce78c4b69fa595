//! A per-member adaptive jitter buffer.
//!
//! Frames arrive out of order, late, or not at all; the output asks for audio as it plays. The
//! buffer answers each request with what to decode: the next frame, the forward-error-correction
//! copy carried by the frame after a lost one, a concealment (packet loss concealment), or
//! silence.
//!
//! Play-out follows the talker's sample clock, as an RTP receiver's does: every frame is *due*
//! at its time stamp plus the smallest transit seen lately (`delay`), and each frame is played a
//! fixed time after it was due: the *target*, the jitter the member's frames show (the 95th
//! percentile of how much later than due they came, as WebRTC NetEq estimates it) plus the audio
//! the output keeps ready. A talk spurt starts when its first frame has waited out the target, so
//! every spurt has the same delay, whenever its frames came. While playing, how long after it
//! was due the next frame will be heard is measured at each request; when that is more than the
//! target (after a delay spike, a talk spurt that began with the audio from before the gate
//! opened, a sender's clock that runs fast) the buffer asks to play [`Pace::Faster`], when less
//! [`Pace::Slower`]: the member's decoder then takes a pitch period out of the audio or puts one
//! in (`stretch`), so the delay moves in steps no one hears. Only far over its target does it
//! drop whole frames.

use std::collections::BTreeMap;
use std::time::Instant;

use super::delay::DelayEstimator;

mod types;
pub(crate) use types::{Ahead, JitterStats, Pace, Playout, Sent};

/// Frames buffered per member at most (two seconds of 20 ms frames): a flooding sender cannot
/// grow it further.
pub(crate) const CAPACITY: usize = 100;
/// How much later than its target (ms) frames may be heard before playing faster, and how much
/// sooner before playing slower. A pitch period taken out or put in moves the delay by 2.5 to
/// 15 ms, so a narrower band would swing around the target; sooner is nearer to frames not
/// being there in time, so that side is narrow. Every cut is heard a little (PESQ-WB through
/// devices, voice activation, clean: 3.50 with 7.5 ms later, 3.68 with 20), so the later side
/// is wide enough that a clean call hardly ever needs one.
const LATER_MS: f64 = 20.0;
const SOONER_MS: f64 = 2.5;
/// Past its target by this much, frames are dropped to catch up (playing faster would take
/// seconds).
const DROP_OVER_MS: f64 = 100.0;
/// A frame that arrived is seen by the voice thread up to one of its ticks later.
const TICK_MS: f64 = 5.0;
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
/// 48 kHz time stamps.
const SAMPLES_PER_MS: f64 = 48.0;

struct Packet {
    /// The sender's time stamp, extended to 64 bits (48 kHz samples).
    ts: i64,
    payload: Vec<u8>,
    end: bool,
    /// Look-back with nothing to hear in it: skipped at a spurt's start while what follows it
    /// is still in time.
    quiet_lookback: bool,
    /// Rebuilt from the copy the next frame carried: the frame itself was lost.
    rebuilt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a talk spurt to start.
    Idle,
    Playing,
}

pub(crate) struct JitterBuffer {
    /// The member's frame length, learned from its time stamps (at first, our own); and the
    /// last step seen between neighbouring frames, how many times in a row.
    frame_samples: i64,
    length_seen: (i64, u8),
    packets: BTreeMap<u64, Packet>,
    /// Next sequence number to play (extended to 64 bits).
    next: u64,
    highest: Option<u64>,
    /// The last frame played (or given up): its sequence number and time stamp.
    last_played: Option<(u64, i64)>,
    /// The newest time stamp seen, as sent and extended.
    newest_ts: Option<(u32, i64)>,
    state: State,
    /// When the first frame buffered while idle arrived.
    spurt_arrival: Option<Instant>,
    /// How long (ms) play has been made up since the last frame that was here.
    missing_ms: f64,
    /// Share of frames lost lately (moving average).
    loss: f64,
    /// The spurt that started last does not follow on from the frame played before it.
    gap_before: bool,
    /// How long after it was due the last frame was heard, not counting what the output keeps
    /// ready (ms): the next talk spurt starts as late, as long as that is within the band around
    /// the target, so that it is heard exactly as late as the one before.
    last_heard_ms: Option<f64>,
    delay: DelayEstimator,
    stats: JitterStats,
}

impl JitterBuffer {
    pub(crate) fn new(frame_ms: u32) -> Self {
        Self {
            frame_samples: i64::from(frame_ms) * SAMPLES_PER_MS as i64,
            length_seen: (0, 0),
            packets: BTreeMap::new(),
            next: 0,
            highest: None,
            last_played: None,
            newest_ts: None,
            state: State::Idle,
            spurt_arrival: None,
            missing_ms: 0.0,
            loss: 0.0,
            gap_before: false,
            last_heard_ms: None,
            delay: DelayEstimator::new(),
            stats: JitterStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The member's frame length (ms), as its time stamps show it.
    pub(crate) fn frame_ms(&self) -> f64 {
        self.frame_samples as f64 / SAMPLES_PER_MS
    }

    /// How long after it was due a frame is heard, at the target (ms), not counting what the
    /// output keeps ready: the jitter this member's frames show and the voice thread's tick; and
    /// a frame more while frames get lost, so that the frame after a lost one (which carries its
    /// copy and its FEC) is usually here when the lost one's turn comes.
    pub(crate) fn target_ms(&self) -> f64 {
        let lossy = self.loss > LOSSY;
        self.delay.quantile_ms() + TICK_MS + if lossy { self.frame_ms() } else { 0.0 }
    }

    fn target_with(&self, ahead: Ahead) -> f64 {
        self.target_ms() + ahead.ready_ms
    }

    /// Counts one frame's turn: whether the frame itself had been lost.
    fn note_turn(&mut self, lost: bool) {
        self.loss += (f64::from(u8::from(lost)) - self.loss) * LOSS_AVERAGING;
    }

    /// How long after it was due the last frame was heard, not counting what the output keeps
    /// ready (ms).
    pub(crate) fn last_heard_ms(&self) -> Option<f64> {
        self.last_heard_ms
    }

    /// Jitter estimate in milliseconds (the 95th percentile of relative delay).
    pub(crate) fn jitter_ms(&self) -> f64 {
        self.delay.quantile_ms()
    }

    /// The time stamp of frame `seq`: its own, or counted in frames from the nearest frame after
    /// it that is here (the same talk spurt), else from the last one played.
    fn ts_of(&self, seq: u64) -> Option<i64> {
        if let Some(p) = self.packets.get(&seq) {
            return Some(p.ts);
        }
        let steps = |from: u64| seq as i64 - from as i64;
        self.packets
            .range(seq..)
            .next()
            .map(|(&s, p)| p.ts + steps(s) * self.frame_samples)
            .or_else(|| self.last_played.map(|(s, ts)| ts + steps(s) * self.frame_samples))
    }

    /// How long after it was due frame `seq` will be heard if it is handed out now: the output
    /// plays what it holds first (ms; `None` before anything was heard).
    fn heard_after_due(&self, seq: u64, now: Instant, ahead: Ahead) -> Option<f64> {
        let ts = self.ts_of(seq)?;
        Some(self.delay.since_due_ms(ts as f64 / SAMPLES_PER_MS, now)? + ahead.queued_ms)
    }

    /// How much later than the target (ms) the next frame would be heard if handed out now.
    pub(crate) fn over_target_ms(&self, now: Instant, ahead: Ahead) -> Option<f64> {
        Some(self.heard_after_due(self.next, now, ahead)? - self.target_with(ahead))
    }

    /// How fast the next frames should play: faster while they would be heard later than the
    /// target, slower while sooner (steady while the next frame is not here: nothing to stretch).
    pub(crate) fn pace(&self, now: Instant, ahead: Ahead) -> Pace {
        if self.state != State::Playing || !self.packets.contains_key(&self.next) {
            return Pace::Steady;
        }
        let Some(heard) = self.heard_after_due(self.next, now, ahead) else { return Pace::Steady };
        // Neither moves the delay past the other side of the band.
        let over = heard - self.target_with(ahead);
        if over > LATER_MS {
            Pace::Faster(over + SOONER_MS)
        } else if over < -SOONER_MS {
            Pace::Slower(LATER_MS - over)
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

    /// The 32-bit time stamp `ts` as the 64-bit one nearest to the newest seen.
    fn extend_ts(&mut self, ts: u32) -> i64 {
        let extended = match self.newest_ts {
            None => i64::from(ts),
            Some((raw, ext)) => ext + i64::from(ts.wrapping_sub(raw) as i32),
        };
        if self.newest_ts.is_none_or(|(_, ext)| extended > ext) {
            self.newest_ts = Some((ts, extended));
        }
        extended
    }

    /// Learns the member's frame length from neighbouring frames' time stamps: the same step
    /// three times in a row (frames around a pause of the talker's gate are further apart).
    fn learn_frame_length(&mut self, seq: u64, ts: i64) {
        let Some(before) = self.packets.get(&(seq.wrapping_sub(1))).filter(|p| !p.end) else { return };
        let step = ts - before.ts;
        // Opus frames are 2.5 to 60 ms long.
        if !(120..=2880).contains(&step) || step % 120 != 0 {
            return;
        }
        self.length_seen = match self.length_seen {
            (s, n) if s == step => (s, n.saturating_add(1)),
            _ => (step, 1),
        };
        if self.length_seen.1 >= 3 {
            self.frame_samples = step;
        }
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
        let ts = self.extend_ts(ts);
        self.stats.received += 1;
        // Late frames are useless to play but tell how much to buffer, except when two or more
        // later frames came first: then it was lost and sent again (QUIC retransmits), and
        // waiting for such frames would add a round trip to every voice. Those count as lost;
        // the next frame's FEC covers them.
        let overtaken = self.highest.is_some_and(|h| h >= seq + 2);
        if sent == Sent::Live && !overtaken {
            self.delay.observe(ts as f64 / SAMPLES_PER_MS, arrival);
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
        self.learn_frame_length(seq, ts);
        let quiet_lookback = sent == Sent::LookBack { quiet: true };
        self.packets
            .insert(seq, Packet { ts, payload: payload.to_vec(), end, quiet_lookback, rebuilt: false });
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
        let Some(ts) = self.ts_of(seq) else { return };
        self.stats.recovered += 1;
        self.packets.insert(
            seq,
            Packet { ts, payload: payload.to_vec(), end: false, quiet_lookback: false, rebuilt: true },
        );
    }

    /// Moves the play-out point past frame `seq` (played, dropped or given up).
    fn passed(&mut self, seq: u64, ts: Option<i64>) {
        if let Some(ts) = ts {
            self.last_played = Some((seq, ts));
        }
        self.next = seq + 1;
    }

    /// What to play next, the output holding `ahead` of it.
    pub(crate) fn pop(&mut self, now: Instant, ahead: Ahead) -> Playout {
        if self.state == State::Idle && !self.start(now, ahead) {
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
        // Far too late, though playing faster: drop a frame to catch up (a frame that is here; a
        // missing one is a loss, handled below).
        let heard = self.heard_after_due(self.next, now, ahead);
        if heard.is_some() {
            self.last_heard_ms = heard.map(|h| h - ahead.ready_ms);
        }
        let over = heard.map(|h| h - self.target_with(ahead));
        if over.is_some_and(|over| over > DROP_OVER_MS)
            && let Some(packet) = self.packets.remove(&self.next)
        {
            self.stats.dropped += 1;
            self.passed(self.next, Some(packet.ts));
            if packet.end {
                self.go_idle(now);
                return Playout::Silence;
            }
        }
        if let Some(packet) = self.packets.remove(&self.next) {
            self.passed(self.next, Some(packet.ts));
            self.missing_ms = 0.0;
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
            self.passed(self.next, self.ts_of(self.next));
            self.missing_ms = 0.0;
            // Waiting for it was concealment already, standing in for it and for the frames lost
            // with it: those are passed over while the frame after them would be heard nearer
            // the target so, and a burst of losses does not leave the rest heard later.
            let half = self.frame_ms() / 2.0;
            while !self.packets.contains_key(&self.next)
                && self.over_target_ms(now, ahead).is_some_and(|over| over > -half)
            {
                self.stats.lost += 1;
                self.note_turn(true);
                self.passed(self.next, self.ts_of(self.next));
            }
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
        self.missing_ms += WAIT_MS;
        if self.missing_ms > MAX_EXPAND_MS {
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
        self.last_played = None;
        self.newest_ts = None;
        self.state = State::Idle;
        self.spurt_arrival = None;
        self.missing_ms = 0.0;
        self.delay = DelayEstimator::new();
        tracing::debug!(seq, "voice stream restarted");
    }

    fn go_idle(&mut self, now: Instant) {
        self.state = State::Idle;
        self.missing_ms = 0.0;
        self.spurt_arrival = None;
        if !self.packets.is_empty() {
            // Frames of the next spurt are already here.
            self.spurt_arrival = Some(now);
        }
    }

    /// Starts a talk spurt once its first frame has waited out the target, or as long as the last
    /// spurt's frames waited if that is within the band around it: every spurt is heard as long
    /// after it was spoken as the one before. Quiet look-back at its start is left out while what
    /// follows it is still heard in time.
    fn start(&mut self, now: Instant, ahead: Ahead) -> bool {
        let target = self.target_ms();
        let target =
            self.last_heard_ms.map_or(target, |last| last.clamp(target - SOONER_MS, target + LATER_MS))
                + ahead.ready_ms;
        while let Some((&first, packet)) = self.packets.first_key_value()
            && packet.quiet_lookback
            && self.packets.range(first + 1..).next().is_some_and(|(&second, _)| {
                self.heard_after_due(second, now, ahead).is_some_and(|heard| heard >= target)
            })
        {
            self.packets.remove(&first);
            self.stats.skipped += 1;
        }
        let Some((&first, _)) = self.packets.first_key_value() else { return false };
        let go = match self.heard_after_due(first, now, ahead) {
            Some(heard) => heard >= target,
            // Nothing to tell when frames are due yet (only look-back came so far).
            None => {
                let waited_ms = self
                    .spurt_arrival
                    .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64() * 1e3);
                waited_ms >= target
            }
        };
        if !go {
            return false;
        }
        tracing::trace!(
            target: "partyline::voice::playout",
            first,
            heard = self.heard_after_due(first, now, ahead),
            target,
            frames = self.packets.len(),
            skipped = self.stats.skipped,
            "spurt starts"
        );
        // Frames the talker encoded but did not send (its gate was closed) lie between this spurt
        // and the last one: the decoder must not go on as if they had been played.
        let follows =
            self.last_played.is_some_and(|(_, ts)| self.ts_of(first) == Some(ts + self.frame_samples));
        self.gap_before = !follows;
        self.next = first;
        self.state = State::Playing;
        self.missing_ms = 0.0;
        true
    }

    /// Whether the talk spurt that just started does not follow on from the last frame played
    /// (cleared by asking).
    pub(crate) fn take_gap(&mut self) -> bool {
        std::mem::take(&mut self.gap_before)
    }
}

#[cfg(test)]
mod tests;
