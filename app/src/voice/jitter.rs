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
mod tests {
    use std::time::Duration;

    use super::*;

    const FRAME: u32 = 20;

    /// Drives a buffer with frames sent every 20 ms × `clock` of the sender's clock, delivered after
    /// `delay(seq)` ms (None: lost), played every 20 ms of the receiver's. Returns what was played.
    fn run(frames: u32, clock: f64, delay: impl Fn(u32) -> Option<f64>) -> (Vec<Playout>, JitterBuffer) {
        let (played, jb) = drive(frames, clock, delay, false);
        (played.into_iter().map(|(_, p)| p).collect(), jb)
    }

    /// How many frames were played faster and slower.
    fn paces(played: &[(Pace, Playout)]) -> (usize, usize) {
        let count = |pace| played.iter().filter(|(p, _)| *p == pace).count();
        (count(Pace::Faster), count(Pace::Slower))
    }

    /// As [`run`], with the pace of each frame played; with `redundant` every frame carries a
    /// copy of the one before.
    fn drive(
        frames: u32,
        clock: f64,
        delay: impl Fn(u32) -> Option<f64>,
        redundant: bool,
    ) -> (Vec<(Pace, Playout)>, JitterBuffer) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(FRAME);
        let mut arrivals: Vec<(f64, u32)> = (0..frames)
            .filter_map(|seq| delay(seq).map(|d| (f64::from(seq) * 20.0 * clock + d, seq)))
            .collect();
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut played = Vec::new();
        let mut next_arrival = 0;
        let end_ms = f64::from(frames) * 20.0 * clock + 2000.0;
        let mut now_ms = 0.0;
        while now_ms < end_ms {
            while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= now_ms {
                let (at, seq) = arrivals[next_arrival];
                let at = t0 + Duration::from_secs_f64(at / 1e3);
                jb.push(seq, seq * 960, &seq.to_be_bytes(), false, at, Sent::Live);
                if redundant && seq > 0 {
                    jb.push_redundant(seq - 1, &(seq - 1).to_be_bytes());
                }
                next_arrival += 1;
            }
            // The member's decoder takes about 8 ms (a pitch period) out of a frame played faster
            // and puts as much into one played slower.
            let pace = jb.pace();
            let playout = jb.pop(t0 + Duration::from_secs_f64(now_ms / 1e3));
            now_ms += match (&playout, pace) {
                (Playout::Wait, _) => WAIT_MS,
                (_, Pace::Steady) => 20.0,
                (_, Pace::Faster) => 12.0,
                (_, Pace::Slower) => 28.0,
            };
            played.push((pace, playout));
        }
        (played, jb)
    }

    fn frames_played(played: &[Playout]) -> Vec<u32> {
        played
            .iter()
            .filter_map(|p| match p {
                Playout::Frame(b) => Some(u32::from_be_bytes(b[..4].try_into().unwrap())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn steady_stream_plays_everything_in_order_with_little_delay() {
        let (played, jb) = run(500, 1.0, |_| Some(30.0));
        assert_eq!(frames_played(&played), (0..500).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.dropped), (0, 0, 0));
        assert!(jb.target_ms() <= 25.0, "target {} ms", jb.target_ms());
    }

    #[test]
    fn reordering_within_the_jitter_is_absorbed() {
        // Every other pair of frames swaps places: 0..40 ms of jitter.
        let (played, jb) = run(1000, 1.0, |seq| Some(if seq % 2 == 0 { 60.0 } else { 20.0 }));
        let order = frames_played(&played);
        let expected: Vec<u32> = (0..1000).collect();
        // The first frames may be lost while the estimate learns the jitter; then nothing.
        let late = jb.stats().late;
        assert!(late <= 5, "{late} late frames");
        assert_eq!(&order[order.len() - 900..], &expected[100..], "in order once learned");
        assert!(jb.target_ms() >= 40.0 && jb.target_ms() <= 80.0, "target {} ms", jb.target_ms());
    }

    #[test]
    fn isolated_losses_take_the_fec_path_and_bursts_conceal() {
        // 5% isolated loss, then a burst of 3.
        let lost = |seq: u32| (seq % 20 == 7 && seq < 400) || (400..403).contains(&seq);
        let (played, jb) = run(500, 1.0, |seq| if lost(seq) { None } else { Some(25.0) });
        let s = jb.stats();
        assert_eq!(s.lost, 20 + 3);
        // Isolated losses: the next frame is there, so FEC; in the burst only the last one has a
        // next frame.
        assert_eq!(s.fec, 20 + 1);
        assert_eq!(played.iter().filter(|p| matches!(p, Playout::Fec(_))).count(), 21);
        let fec_for: Vec<u32> = played
            .iter()
            .filter_map(|p| match p {
                Playout::Fec(b) => Some(u32::from_be_bytes(b[..4].try_into().unwrap())),
                _ => None,
            })
            .collect();
        assert!(
            fec_for.iter().all(|next| lost(next - 1) && !lost(*next)),
            "FEC comes from the frame after the loss"
        );
        // One frame may be dropped afterwards to win back the delay the burst added.
        assert_eq!(frames_played(&played).len() as u64 + s.dropped, 500 - 23);
    }

    #[test]
    fn copies_in_the_next_frame_rebuild_isolated_losses_exactly() {
        // The same losses as above, with every frame carrying the one before.
        let lost = |seq: u32| (seq % 20 == 7 && seq < 400) || (400..403).contains(&seq);
        let (played, jb) = drive(500, 1.0, |seq| if lost(seq) { None } else { Some(25.0) }, true);
        let played: Vec<Playout> = played.into_iter().map(|(_, p)| p).collect();
        let s = jb.stats();
        // Isolated losses and the last of the burst come back from the copies; the first two of
        // the burst had no surviving copy and fall to FEC (the second) and concealment (the first).
        assert_eq!(s.recovered, 20 + 1);
        assert_eq!((s.lost, s.fec), (2, 1));
        let order = frames_played(&played);
        let expected: Vec<u32> = (0..500).filter(|seq| !(400..402).contains(seq)).collect();
        assert_eq!(order.len() as u64 + s.dropped, expected.len() as u64);
        assert!(order.iter().all(|seq| expected.contains(seq)), "only frames that were sent or copied");
        assert!(order.contains(&7) && order.contains(&402), "rebuilt frames are played as frames");
        // A copy of a frame that is here or already played changes nothing.
        let mut jb = JitterBuffer::new(FRAME);
        let now = Instant::now();
        jb.push(0, 0, &[0], false, now, Sent::Live);
        jb.push(1, 960, &[1], false, now, Sent::Live);
        jb.push_redundant(0, &[9]);
        assert_eq!(jb.stats().recovered, 0);
        while jb.pop(now + Duration::from_millis(100)) != Playout::Frame(vec![1]) {}
        jb.push_redundant(0, &[9]);
        jb.push_redundant(1, &[9]);
        assert_eq!(jb.stats().recovered, 0);
        assert_eq!(jb.level(), 0);
    }

    #[test]
    fn losses_hold_one_frame_more_so_that_copies_come_in_time() {
        // 5% isolated loss with copies in the next frame, on a network without jitter: the copy
        // of every lost frame is there when its turn comes, nothing is concealed.
        let lost = |seq: u32| seq % 20 == 7;
        let (played, jb) = drive(1000, 1.0, |seq| if lost(seq) { None } else { Some(25.0) }, true);
        let s = jb.stats();
        assert!(jb.target_ms() >= 40.0, "target {} ms", jb.target_ms());
        assert!(s.recovered >= 45, "{s:?}");
        let late_in_the_run =
            played[300..900].iter().filter(|(_, p)| matches!(p, Playout::Wait | Playout::Conceal)).count();
        assert_eq!(late_in_the_run, 0, "{s:?}");
    }

    #[test]
    fn retransmitted_frames_do_not_raise_the_delay() {
        // 5% of frames arrive 120 ms late (a retransmission after a loss), the rest on time: the
        // delay stays small and those frames are recovered (FEC) rather than waited for.
        let (_, jb) = run(1000, 1.0, |seq| Some(if seq % 20 == 3 { 145.0 } else { 25.0 }));
        // They count as lost, which holds one frame more, not 120 ms more.
        assert!(jb.target_ms() <= 40.0, "target {} ms", jb.target_ms());
        let s = jb.stats();
        assert!(s.fec >= 45 && s.late >= 45, "{s:?}");
    }

    #[test]
    fn sender_clock_drift_is_absorbed_by_playing_faster_or_slower() {
        for clock in [0.99, 1.01] {
            let (played, jb) = drive(3000, clock, |_| Some(30.0), false);
            let s = jb.stats();
            let (faster, slower) = paces(&played);
            let played: Vec<Playout> = played.into_iter().map(|(_, p)| p).collect();
            // A fast sender's surplus is played faster, a slow sender's shortfall slower: every
            // frame is played, none is late or dropped.
            assert_eq!((s.late, s.dropped), (0, 0), "clock {clock}: {s:?}");
            assert_eq!(frames_played(&played).len(), 3000, "clock {clock}: {s:?}");
            if clock < 1.0 {
                assert!(faster >= 30 && slower <= 5, "clock {clock}: {faster} faster, {slower} slower");
            } else {
                assert!(slower >= 30 && faster <= 5, "clock {clock}: {faster} faster, {slower} slower");
            }
        }
    }

    #[test]
    fn catches_up_after_a_delay_spike() {
        // Frames 200..215 are held up until 300 ms, then arrive at once.
        let (played, jb) = drive(
            1000,
            1.0,
            |seq| {
                Some(if (200..215).contains(&seq) {
                    30.0 + 300.0 - f64::from(seq - 200) * 20.0
                } else {
                    30.0
                })
            },
            false,
        );
        let s = jb.stats();
        let (faster, _) = paces(&played);
        assert_eq!(s.lost + s.late, 0, "a spike is a delay, not a loss: {s:?}");
        assert!(faster >= 5, "caught up by playing faster: {faster}");
        assert!(s.dropped < 10, "and dropping few frames if any: {s:?}");
        assert!(
            played.iter().filter(|(_, p)| matches!(p, Playout::Wait)).count() >= 3,
            "stretched during the spike"
        );
        // Back to a small delay: the last frames play steadily.
        assert!(played[played.len() - 150..played.len() - 110].iter().all(|(p, _)| *p == Pace::Steady));
    }

    #[test]
    fn a_look_back_plays_faster_and_does_not_raise_the_delay() {
        // Five talk spurts of 40 frames, 2 s apart; each starts with 3 frames of look-back sent
        // at once with the first live frame. Played every 20 ms, 12 ms when faster (as above).
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(FRAME);
        let mut arrivals = Vec::new();
        let mut seq = 0u32;
        for spurt in 0..5u32 {
            let start = f64::from(spurt) * 2000.0;
            for i in 0..43u32 {
                let lookback = i < 3;
                let sent = if lookback { start + 60.0 } else { start + f64::from(i - 3) * 20.0 + 60.0 };
                let ts = (spurt * 100 + i) * 960;
                arrivals.push((sent + 25.0, seq, ts, lookback, i == 42));
                seq += 1;
            }
        }
        let (mut now, mut next, mut faster, mut played) = (0.0, 0, 0, 0);
        while now < 10_500.0 {
            while next < arrivals.len() && arrivals[next].0 <= now {
                let (at, seq, ts, lookback, end) = arrivals[next];
                let sent = if lookback { Sent::LookBack { quiet: false } } else { Sent::Live };
                jb.push(seq, ts, &[0], end, t0 + Duration::from_secs_f64(at / 1e3), sent);
                next += 1;
            }
            let pace = jb.pace();
            faster += usize::from(pace == Pace::Faster);
            played +=
                usize::from(matches!(jb.pop(t0 + Duration::from_secs_f64(now / 1e3)), Playout::Frame(_)));
            now += if pace == Pace::Faster { 12.0 } else { 20.0 };
        }
        assert_eq!(played, 5 * 43, "every frame played");
        assert!(jb.target_ms() <= 25.0, "the look-back is not jitter: target {} ms", jb.target_ms());
        assert!(faster >= 5, "the backlog was played faster: {faster}");
        assert_eq!(jb.stats().dropped, 0);
    }

    #[test]
    fn quiet_look_back_is_left_out() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(FRAME);
        for seq in 0..3 {
            jb.push(seq, seq * 960, &[seq as u8], false, t0, Sent::LookBack { quiet: seq < 2 });
        }
        jb.push(3, 3 * 960, &[3], false, t0, Sent::Live);
        assert_eq!(jb.pop(t0), Playout::Frame(vec![2]), "from the look-back with sound in it");
        assert_eq!(jb.stats().skipped, 2);
    }

    #[test]
    fn a_flood_cannot_grow_the_buffer() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(FRAME);
        for seq in 0..10_000 {
            jb.push(seq, seq * 960, &[0; 100], false, t0, Sent::Live);
        }
        assert!(jb.packets.len() <= CAPACITY);
        assert_eq!(jb.stats().overflow, 10_000 - CAPACITY as u64);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(FRAME);
        let mut order = Vec::new();
        for (i, seq) in (u32::MAX - 3..=u32::MAX).chain(0..4).enumerate() {
            let at = t0 + Duration::from_millis(20 * i as u64);
            jb.push(seq, seq.wrapping_mul(960), &[i as u8], false, at, Sent::Live);
            if let Playout::Frame(b) = jb.pop(at + Duration::from_millis(10)) {
                order.push(b[0]);
            }
        }
        assert_eq!(order, (0..8).collect::<Vec<u8>>());
    }

    #[test]
    fn a_restarted_sender_is_heard_again_at_once() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(FRAME);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for i in 0..200u32 {
            jb.push(5000 + i, (5000 + i) * 960, &[1], false, at(20 * u64::from(i)), Sent::Live);
            let _ = jb.pop(at(20 * u64::from(i) + 10));
        }
        // The sender restarts: its numbers begin at 0 again.
        let mut heard = 0;
        for i in 0..20u32 {
            jb.push(i, i * 960, &[2], false, at(4000 + 20 * u64::from(i)), Sent::Live);
            if jb.pop(at(4000 + 20 * u64::from(i) + 10)) == Playout::Frame(vec![2]) {
                heard += 1;
            }
        }
        assert!(heard >= 18, "heard {heard} of 20 frames after the restart");
    }

    #[test]
    fn a_jump_ahead_is_skipped_not_concealed() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(FRAME);
        jb.push(0, 0, &[0], false, t0, Sent::Live);
        assert_eq!(jb.pop(t0 + Duration::from_millis(30)), Playout::Frame(vec![0]));
        jb.push(1_000_000, 0, &[9], false, t0 + Duration::from_millis(40), Sent::Live);
        let outs: Vec<Playout> = (0..3).map(|i| jb.pop(t0 + Duration::from_millis(50 + 20 * i))).collect();
        assert!(outs.contains(&Playout::Frame(vec![9])), "{outs:?}");
        assert!(jb.level() <= 2);
    }

    #[test]
    fn end_of_talk_returns_to_silence() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(FRAME);
        jb.push(0, 0, &[1], false, t0, Sent::Live);
        jb.push(1, 960, &[2], true, t0, Sent::Live);
        let outs: Vec<Playout> = (0..4).map(|i| jb.pop(t0 + Duration::from_millis(100 + 20 * i))).collect();
        assert_eq!(
            outs,
            vec![Playout::Frame(vec![1]), Playout::Frame(vec![2]), Playout::Silence, Playout::Silence]
        );
    }
}
