//! One party member's incoming voice on the voice thread: jitter buffer, decoder, and the ring to
//! the mixer; plus what `/stats` and the loss reports say about it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use partyline_protocol::voice::{Pose, VoiceFrame};

use super::codec::{Decoder, SAMPLE_RATE};
use super::jitter::{self, Ahead, JitterBuffer, JitterStats, Pace, Playout, Sent};
use super::mix::PlaybackCounters;
use super::ring::Ring;
use super::stretch;

/// Look-back this quiet (-dBov) has nothing to hear in it: it is left out at a talk spurt's start
/// as long as what follows is still heard in time (so the spurt starts with less to catch up on).
/// Only digital silence: leaving out quiet onsets (45 dB down or more) cost PESQ-WB 0.15.
const QUIET_LEVEL: u8 = partyline_protocol::voice::SILENT;
/// Talking shows for this long after the last talking frame, unless the talker said it stopped.
const TALKING_TIMEOUT: Duration = Duration::from_millis(250);
pub(crate) struct MemberVoice {
    pub(crate) name: String,
    jitter: JitterBuffer,
    decoder: Decoder,
    frame_samples: usize,
    ring: Ring,
    /// Latest frame flags: when a talking frame came, and whether the spurt ended.
    talking_until: Option<Instant>,
    pub(crate) speaking: bool,
    /// The position its frames carry (from the member's game).
    pub(crate) pose: Option<Pose>,
    /// Where the local user placed it (radar), used while its frames carry none.
    pub(crate) placed: Option<Pose>,
    bytes: u64,
    window: Window,
    /// Decoded audio on its way to the ring (one or two frames).
    pcm: Vec<f32>,
    /// Among the loudest, decoded and mixed (else only kept in time, see [`Self::pass_over`]).
    pub(crate) mixed: bool,
    /// Where the passing over of frames got to; and whether the decoder missed frames since.
    passed_until: Option<Instant>,
    decoder_stale: bool,
    /// The loudest level lately (dBov) and when it was heard.
    peak: (f32, Instant),
    /// Samples taken out (played faster) and put in (slower).
    time_scaled: (u64, u64),
}

/// Counts at the start of the current report window.
#[derive(Default, Clone, Copy)]
struct Window {
    stats: JitterStats,
    bytes: u64,
    at: Option<Instant>,
}

/// A reception window holds at least this many frames (one second's) before it is told...
const FEWEST_FRAMES: u64 = 50;
/// ...unless it is this old.
const LONGEST_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// A member's reception over the last window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reception {
    /// Frames that were due in the window (received or lost).
    pub(crate) frames: u64,
    pub(crate) loss: f32,
    pub(crate) jitter_ms: f32,
    pub(crate) kbps: f32,
}

impl MemberVoice {
    /// `ready` is the least decoded audio (samples) to keep ready for the audio thread.
    pub(crate) fn new(
        name: String,
        frame_ms: u32,
        ready: usize,
        producer: rtrb::Producer<f32>,
        counters: Arc<PlaybackCounters>,
    ) -> Result<Self> {
        let frame_samples = (SAMPLE_RATE * frame_ms / 1000) as usize;
        Ok(Self {
            name,
            jitter: JitterBuffer::new(frame_ms),
            decoder: Decoder::new(frame_samples)?,
            frame_samples,
            ring: Ring::new(producer, counters, ready),
            talking_until: None,
            speaking: false,
            pose: None,
            placed: None,
            bytes: 0,
            // The first window starts when the member does.
            window: Window { at: Some(Instant::now()), ..Window::default() },
            pcm: Vec::with_capacity(4 * frame_samples),
            time_scaled: (0, 0),
            mixed: true,
            passed_until: None,
            decoder_stale: false,
            peak: (f32::NEG_INFINITY, Instant::now()),
        })
    }

    /// Decodes into another mixer's ring from now on (the speakers changed).
    /// `ready`: the least decoded audio to keep ready for this mixer.
    pub(crate) fn reattach(
        &mut self,
        producer: rtrb::Producer<f32>,
        counters: Arc<PlaybackCounters>,
        ready: usize,
    ) {
        self.ring.replace(producer, counters, ready);
    }

    pub(crate) fn receive(&mut self, frame: &VoiceFrame<'_>, framed_len: usize, arrival: Instant) {
        self.bytes += framed_len as u64;
        let sent = match frame.lookback {
            true => Sent::LookBack { quiet: frame.level.is_some_and(|l| l >= QUIET_LEVEL) },
            false => Sent::Live,
        };
        self.jitter.push(frame.seq, frame.ts, frame.opus, frame.end, arrival, sent);
        if let Some(previous) = frame.redundant {
            self.jitter.push_redundant(frame.seq.wrapping_sub(1), previous);
        }
        if let Some(level) = frame.level {
            let db = -f32::from(level);
            if db >= self.loudness(arrival) {
                self.peak = (db, arrival);
            }
        }
        if frame.talking && !frame.end {
            self.talking_until = Some(arrival + TALKING_TIMEOUT);
        } else if frame.end {
            self.talking_until = None;
        }
    }

    /// Whether the member is talking now (for speaking indicators).
    pub(crate) fn talking(&self, now: Instant) -> bool {
        self.talking_until.is_some_and(|until| now < until) || self.jitter.is_playing()
    }

    /// How loud the member has been lately (dBov): the loudest frame, fading by 20 dB a second.
    pub(crate) fn loudness(&self, now: Instant) -> f32 {
        self.peak.0 - 20.0 * now.saturating_duration_since(self.peak.1).as_secs_f32()
    }

    /// Not among the loudest: frames whose turn came are passed over undecoded, so the jitter
    /// buffer keeps time and the member can be heard again at once.
    pub(crate) fn pass_over(&mut self, now: Instant) {
        let since = *self.passed_until.get_or_insert(now);
        let frame = Duration::from_secs_f64(self.jitter.frame_ms() / 1e3);
        let mut until = since;
        while until + frame <= now {
            until += frame;
            self.decoder_stale = true;
            if self.jitter.pop(now, Ahead::default()) == Playout::Silence {
                until = now;
            }
        }
        self.passed_until = Some(until);
    }

    /// Decodes frames until enough samples wait in the ring for the audio thread: the device's
    /// consumption paces the decoding, so drift and pauses are the jitter buffer's business.
    pub(crate) fn play_out(&mut self, now: Instant) {
        self.passed_until = None;
        if self.decoder_stale {
            // It missed frames: start afresh rather than from a state that no longer fits.
            if let Ok(decoder) = Decoder::new(self.frame_samples) {
                self.decoder = decoder;
            }
            self.decoder_stale = false;
        }
        self.ring.observe(now, self.jitter.is_playing());
        self.decode_ahead(now);
    }

    fn decode_ahead(&mut self, now: Instant) {
        while self.ring.wants_more() {
            let pace = self.jitter.pace(now, self.ahead(now));
            // Not talking: let the ring run dry (the mixer plays silence), so the next talk
            // spurt starts with no backlog.
            if !self.decode_next(now) {
                return;
            }
            // Playing faster cuts a pitch period from this frame and the next (two frames, so
            // that the longest periods fit), and one more from the second half when far behind (a
            // spurt starting with its look-back); slower adds one to this frame.
            let samples = |ms: f64| (ms * f64::from(SAMPLE_RATE) / 1e3) as usize;
            match pace {
                Pace::Faster(most) if self.jitter.level() > 0 && self.decode_next(now) => {
                    let mut cut = stretch::accelerate(&mut self.pcm, samples(most));
                    if cut > 0 && samples(most) > 2 * cut && self.pcm.len() > self.frame_samples {
                        let mut second = self.pcm.split_off(self.pcm.len() / 2);
                        cut += stretch::accelerate(&mut second, samples(most) - cut);
                        self.pcm.append(&mut second);
                    }
                    self.time_scaled.0 += cut as u64;
                }
                Pace::Slower(most) => {
                    self.time_scaled.1 += stretch::expand(&mut self.pcm, samples(most)) as u64
                }
                _ => {}
            }
            let short = self.pcm.len() < self.frame_samples / 2;
            self.ring.push(&mut self.pcm);
            if short {
                return;
            }
        }
    }

    /// What the output holds ahead of the next frame: the ring and what is decoded on its way
    /// there.
    fn ahead(&self, now: Instant) -> Ahead {
        Ahead { queued_ms: self.ring.queued_ms(now, self.pcm.len()), ready_ms: self.ring.ready_ms() }
    }

    /// Decodes what the jitter buffer says to play next onto `pcm`; false when it says silence.
    fn decode_next(&mut self, now: Instant) -> bool {
        self.decoder.set_frame_samples((self.jitter.frame_ms() * f64::from(SAMPLE_RATE) / 1e3) as usize);
        let ahead = self.ahead(now);
        let over = self.jitter.over_target_ms(now, ahead);
        let playout = self.jitter.pop(now, ahead);
        // A spurt after a pause: the talker's encoder went on through frames never sent; start the
        // decoder afresh rather than from where the last spurt left it.
        if self.jitter.take_gap()
            && let Ok(decoder) = Decoder::new(self.frame_samples)
        {
            self.decoder = decoder;
        }
        if tracing::enabled!(target: "partyline::voice::playout", tracing::Level::TRACE) {
            tracing::trace!(
                target: "partyline::voice::playout",
                member = %self.name,
                over_ms = over.unwrap_or(f64::NAN),
                queued_ms = ahead.queued_ms,
                ready_ms = ahead.ready_ms,
                target_ms = self.jitter.target_ms(),
                level = self.jitter.level(),
                playout = playout.kind(),
                underruns = self.underruns(),
            );
        }
        let pcm = match playout {
            Playout::Frame(packet) => self.decoder.decode(&packet),
            Playout::Fec(next) => self.decoder.decode_fec(&next),
            Playout::Conceal => self.decoder.conceal(),
            Playout::Wait => self.decoder.conceal_for(SAMPLE_RATE as usize * jitter::WAIT_MS as usize / 1000),
            Playout::Silence => return false,
        };
        self.pcm.extend_from_slice(pcm);
        true
    }

    /// Samples taken out of and put into this member's voice to follow the jitter buffer's
    /// target: (faster, slower), in ms.
    pub(crate) fn time_scaled_ms(&self) -> (u64, u64) {
        let per_ms = u64::from(SAMPLE_RATE / 1000);
        (self.time_scaled.0 / per_ms, self.time_scaled.1 / per_ms)
    }

    /// Whether there is audio to mix: a talk spurt plays (and is mixed), or audio still waits in
    /// the ring.
    pub(crate) fn has_audio(&self) -> bool {
        (self.mixed && self.jitter.is_playing()) || self.ring.level() > 0
    }

    /// Whether it is talking, has frames waiting to be played or audio left to play: a candidate
    /// for mixing. (A spurt's first frames wait in an idle jitter buffer: were the member not a
    /// candidate then, its first frame would be passed over undecoded.)
    pub(crate) fn audible(&self) -> bool {
        self.jitter.is_playing() || self.jitter.level() > 0 || self.ring.level() > 0
    }

    /// Audio waiting for the listener: jitter buffer plus the ring to the mixer, in ms.
    pub(crate) fn buffered_ms(&self) -> f32 {
        (self.jitter.level() as f64 * self.jitter.frame_ms()) as f32 + self.ring_ms()
    }

    /// How long after it was due the last frame started to play from the mixer (ms).
    pub(crate) fn wait_ms(&self) -> f32 {
        self.jitter.last_heard_ms().map_or(0.0, |ms| (ms + self.ring.ready_ms()) as f32)
    }

    /// What the jitter buffer aims at for [`Self::wait_ms`] (ms).
    pub(crate) fn target_ms(&self) -> f32 {
        (self.jitter.target_ms() + self.ring.ready_ms()) as f32
    }

    /// Decoded audio waiting in the ring to the mixer, in ms.
    pub(crate) fn ring_ms(&self) -> f32 {
        self.ring.level_ms() as f32
    }

    pub(crate) fn stats(&self) -> JitterStats {
        self.jitter.stats()
    }

    pub(crate) fn underruns(&self) -> u64 {
        self.ring.underruns()
    }

    /// Reception since the last call, which starts a new window; `None` (the window goes on)
    /// while it holds too few frames to tell the loss (the tail of a talk spurt: at 5% loss, ten
    /// frames show none more often than not), for up to [`LONGEST_WINDOW`].
    pub(crate) fn take_window(&mut self, now: Instant) -> Option<Reception> {
        let stats = self.jitter.stats();
        let before = self.window;
        // What the network lost, whether or not the copy in the next frame made up for it: the
        // talker keeps its redundancy on while this is above zero.
        let lost = (stats.lost + stats.recovered) - (before.stats.lost + before.stats.recovered);
        let received = stats.received - before.stats.received;
        let seconds = before.at.map_or(0.0, |at| now.duration_since(at).as_secs_f32());
        if (1..FEWEST_FRAMES).contains(&(lost + received)) && seconds < LONGEST_WINDOW.as_secs_f32() {
            return None;
        }
        self.window = Window { stats, bytes: self.bytes, at: Some(now) };
        Some(Reception {
            frames: lost + received,
            loss: if lost + received == 0 { 0.0 } else { lost as f32 / (lost + received) as f32 },
            jitter_ms: self.jitter.jitter_ms() as f32,
            kbps: if seconds > 0.0 {
                (self.bytes - before.bytes) as f32 * 8.0 / 1000.0 / seconds
            } else {
                0.0
            },
        })
    }
}

/// How much louder a member must be to take the place of one already mixed (dB), so that the
/// choice of the loudest does not flap between members about as loud.
const KEEP_MIXED_DB: f32 = 6.0;

/// Marks as mixed the `n` loudest of the members that can be heard, the others not. `scores` is
/// scratch space.
pub(crate) fn choose_loudest<K>(
    members: &mut std::collections::HashMap<K, MemberVoice>,
    n: usize,
    now: Instant,
    scores: &mut Vec<f32>,
) {
    let score = |m: &MemberVoice| m.loudness(now) + if m.mixed { KEEP_MIXED_DB } else { 0.0 };
    scores.clear();
    scores.extend(members.values().filter(|m| m.audible()).map(score));
    let threshold = if scores.len() <= n || n == 0 {
        f32::NEG_INFINITY
    } else {
        *scores.select_nth_unstable_by(n - 1, |a, b| b.total_cmp(a)).1
    };
    for m in members.values_mut() {
        m.mixed = m.audible() && score(m) >= threshold;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talker(frames: u32, level: u8, t0: Instant) -> MemberVoice {
        let (producer, _) = rtrb::RingBuffer::new(SAMPLE_RATE as usize);
        let mut m = MemberVoice::new("m".into(), 20, 1200, producer, Arc::default()).unwrap();
        hear(&mut m, 0..frames, level, t0);
        m
    }

    #[test]
    fn a_window_of_a_few_frames_goes_on_until_it_can_tell_the_loss() {
        let t0 = Instant::now();
        let mut m = talker(10, 50, t0);
        assert!(m.take_window(t0 + Duration::from_secs(2)).is_none(), "ten frames cannot tell");
        hear(&mut m, 10..60, 50, t0);
        let reception = m.take_window(t0 + Duration::from_secs(4)).expect("sixty frames can");
        assert_eq!(reception.frames, 60);
        let mut quiet = talker(10, 50, t0);
        assert_eq!(quiet.take_window(t0 + LONGEST_WINDOW * 2).map(|r| r.frames), Some(10), "too old to wait");
    }

    fn hear(m: &mut MemberVoice, seqs: std::ops::Range<u32>, level: u8, t0: Instant) {
        for seq in seqs {
            let frame = VoiceFrame {
                seq,
                ts: seq * 960,
                talking: true,
                end: false,
                lookback: false,
                level: Some(level),
                pose: None,
                opus: &[0xf8, 0xff, 0xfe],
                redundant: None,
            };
            m.receive(&frame, 20, t0 + Duration::from_millis(20 * u64::from(seq)));
        }
    }

    #[test]
    fn the_loudest_are_mixed_the_others_kept_in_time() {
        let t0 = Instant::now();
        let mut members: std::collections::HashMap<u8, MemberVoice> =
            [(0, talker(5, 60, t0)), (1, talker(5, 20, t0)), (2, talker(5, 30, t0)), (3, talker(0, 10, t0))]
                .into();
        // Frames waiting for their spurt to start make a member a candidate: its first frame is
        // decoded, not passed over.
        assert!(members[&1].audible() && !members[&3].audible());
        let now = t0 + Duration::from_millis(100);
        for m in members.values_mut() {
            m.play_out(now);
        }
        let mut scores = Vec::new();
        choose_loudest(&mut members, 2, now, &mut scores);
        let mixed = |members: &std::collections::HashMap<u8, MemberVoice>| {
            let mut v: Vec<u8> = members.iter().filter(|(_, m)| m.mixed).map(|(k, _)| *k).collect();
            v.sort();
            v
        };
        assert_eq!(mixed(&members), [1, 2], "the two loudest of those talking (3 has said nothing)");
        // The quiet one gets a little louder than one that is mixed: no change (no flapping)...
        let now = now + Duration::from_millis(20);
        hear(members.get_mut(&0).unwrap(), 5..6, 27, t0);
        choose_loudest(&mut members, 2, now, &mut scores);
        assert_eq!(mixed(&members), [1, 2]);
        // ...much louder: it takes the place of the quietest.
        hear(members.get_mut(&0).unwrap(), 6..7, 15, t0);
        choose_loudest(&mut members, 2, now, &mut scores);
        assert_eq!(mixed(&members), [0, 1]);
        // One passed over keeps time: a second later (50 frames' turns) it holds only the frames
        // whose turn has not come (55 came at once, the last 160 ms before they were spoken).
        let passed = members.get_mut(&2).unwrap();
        hear(passed, 5..60, 30, t0);
        for ms in (0..1000).step_by(5) {
            passed.pass_over(now + Duration::from_millis(ms));
        }
        assert!(passed.jitter.level() <= 8, "level {}", passed.jitter.level());
        assert!(passed.decoder_stale);
        passed.mixed = true;
        passed.play_out(now + Duration::from_millis(1000));
        assert!(!passed.decoder_stale, "a fresh decoder when heard again");
    }
}
