//! The jitter buffer driven by simulated networks: delays, losses, reordering, drift, spikes.

use std::time::Duration;

use super::*;

const FRAME: u32 = 20;
/// An output that holds nothing ahead (the tests play each frame the moment it is handed out).
const NO: Ahead = Ahead { queued_ms: 0.0, ready_ms: 0.0 };

fn now(t0: Instant, ms: f64) -> Instant {
    t0 + Duration::from_secs_f64(ms / 1e3)
}

/// Drives a buffer with frames sent every 20 ms × `clock` of the sender's clock, delivered after
/// `delay(seq)` ms (None: lost), played every 20 ms of the receiver's. Returns what was played.
fn run(frames: u32, clock: f64, delay: impl Fn(u32) -> Option<f64>) -> (Vec<Playout>, JitterBuffer) {
    let (played, jb) = drive(frames, clock, delay, false);
    (played.into_iter().map(|(_, p)| p).collect(), jb)
}

/// How many frames were played faster and slower.
fn paces(played: &[(Pace, Playout)]) -> (usize, usize) {
    let faster = played.iter().filter(|(p, _)| matches!(p, Pace::Faster(_))).count();
    let slower = played.iter().filter(|(p, _)| matches!(p, Pace::Slower(_))).count();
    (faster, slower)
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
    let mut arrivals: Vec<(f64, u32)> =
        (0..frames).filter_map(|seq| delay(seq).map(|d| (f64::from(seq) * 20.0 * clock + d, seq))).collect();
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
        let pace = jb.pace(now(t0, now_ms), NO);
        let playout = jb.pop(now(t0, now_ms), NO);
        now_ms += match (&playout, pace) {
            (Playout::Wait, _) => WAIT_MS,
            (_, Pace::Steady) => 20.0,
            (_, Pace::Faster(_)) => 12.0,
            (_, Pace::Slower(_)) => 28.0,
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
    assert!(jb.target_ms() <= 10.0, "target {} ms", jb.target_ms());
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
    while jb.pop(now + Duration::from_millis(100), NO) != Playout::Frame(vec![1]) {}
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
    assert!(jb.target_ms() >= 25.0, "a frame more than the tick: target {} ms", jb.target_ms());
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
    // 0.2%: ten times what sound cards differ by, to show in a minute of talk.
    for clock in [0.998, 1.002] {
        let (played, jb) = drive(3000, clock, |_| Some(30.0), false);
        let s = jb.stats();
        let (faster, slower) = paces(&played);
        let played: Vec<Playout> = played.into_iter().map(|(_, p)| p).collect();
        // A fast sender's surplus is played faster, a slow sender's shortfall slower: every
        // frame is played, none is late or dropped.
        assert_eq!((s.late, s.dropped), (0, 0), "clock {clock}: {s:?}");
        assert_eq!(frames_played(&played).len(), 3000, "clock {clock}: {s:?}");
        // 120 ms to take out or put in, about 8 ms at a time.
        if clock < 1.0 {
            assert!(faster >= 8 && slower <= 1, "clock {clock}: {faster} faster, {slower} slower");
        } else {
            assert!(slower >= 8 && faster <= 1, "clock {clock}: {faster} faster, {slower} slower");
        }
    }
}

#[test]
fn catches_up_after_a_delay_spike() {
    // Frames 200..215 are held up until 300 ms, then arrive at once.
    let (played, jb) = drive(
        1000,
        1.0,
        |seq| Some(if (200..215).contains(&seq) { 30.0 + 300.0 - f64::from(seq - 200) * 20.0 } else { 30.0 }),
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
    let end = &played[played.len() - 150..played.len() - 110];
    assert!(end.iter().all(|(p, _)| *p == Pace::Steady), "{end:?}");
    assert!(jb.target_ms() <= 10.0, "the spike is forgotten: target {} ms", jb.target_ms());
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
    let (mut now_ms, mut next, mut faster, mut played) = (0.0, 0, 0, 0);
    let mut heard_after = Vec::new();
    while now_ms < 10_500.0 {
        while next < arrivals.len() && arrivals[next].0 <= now_ms {
            let (at, seq, ts, lookback, end) = arrivals[next];
            let sent = if lookback { Sent::LookBack { quiet: false } } else { Sent::Live };
            jb.push(seq, ts, &[0], end, now(t0, at), sent);
            next += 1;
        }
        let pace = jb.pace(now(t0, now_ms), NO);
        faster += usize::from(matches!(pace, Pace::Faster(_)));
        let next_seq = jb.next;
        if let Playout::Frame(_) = jb.pop(now(t0, now_ms), NO) {
            played += 1;
            // How long after it was spoken each live frame was heard: 25 ms of network and
            // 60 ms of look-back sent late; the same in every spurt once caught up.
            let (_, seq, ts, lookback, _) =
                arrivals.iter().find(|a| u64::from(a.1) == next_seq % (1 << 32)).unwrap();
            if !lookback && seq % 43 == 42 {
                heard_after.push(now_ms - f64::from(*ts) / 48.0);
            }
        }
        now_ms += if matches!(pace, Pace::Faster(_)) { 12.0 } else { 20.0 };
    }
    let (lo, hi) = heard_after.iter().fold((f64::MAX, f64::MIN), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
    assert!(hi - lo <= LATER_MS + SOONER_MS, "every spurt ends as late as the others: {heard_after:?}");
    assert_eq!(played, 5 * 43, "every frame played");
    assert!(jb.target_ms() <= 10.0, "the look-back is not jitter: target {} ms", jb.target_ms());
    assert!(faster >= 5, "the backlog was played faster: {faster}");
    assert_eq!(jb.stats().dropped, 0);
}

#[test]
fn quiet_look_back_is_left_out_while_what_follows_is_in_time() {
    // Three frames of look-back (the first two quiet) come with the first live frame, 60 ms
    // after the first of them was spoken.
    let t0 = Instant::now();
    let spurt = || {
        let mut jb = JitterBuffer::new(FRAME);
        for seq in 0..3 {
            jb.push(seq, seq * 960, &[seq as u8], false, t0, Sent::LookBack { quiet: seq < 2 });
        }
        jb.push(3, 3 * 960, &[3], false, t0, Sent::Live);
        jb
    };
    let mut jb = spurt();
    assert_eq!(jb.pop(t0, NO), Playout::Frame(vec![2]), "from the look-back with sound in it");
    assert_eq!(jb.stats().skipped, 2);
    // An output that keeps 30 ms ready: leaving out both would start the spurt sooner than the
    // target, so only the first goes.
    let mut jb = spurt();
    assert_eq!(jb.pop(t0, Ahead { queued_ms: 0.0, ready_ms: 30.0 }), Playout::Frame(vec![1]));
    assert_eq!(jb.stats().skipped, 1);
}

#[test]
fn every_spurt_starts_as_long_after_it_was_spoken() {
    // Frames come 30 ms after they were spoken and up to 20 ms later than that. Spurts whose
    // first frame happens to come on time or 15 ms late still start at the same time after they
    // were spoken: the delay does not depend on when a spurt's first frame came.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(FRAME);
    let jitter = |i: u32| f64::from(i * 7 % 20);
    let mut starts = Vec::new();
    let mut seq = 0u32;
    for (spurt, first_late) in [0.0, 0.0, 15.0, 5.0, 10.0, 0.0, 15.0].into_iter().enumerate() {
        let spoken = spurt as f64 * 20_000.0;
        let frames = if spurt == 0 { 500 } else { 20 };
        let mut arrivals: Vec<(f64, u32, u32)> = (0..frames)
            .map(|i| {
                let late = if i == 0 { first_late } else { jitter(i) };
                (spoken + f64::from(i) * 20.0 + 30.0 + late, seq + i, (spoken * 48.0) as u32 + i * 960)
            })
            .collect();
        seq += frames;
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut ms, mut next, mut started) = (spoken, 0, None);
        while next < arrivals.len() || jb.is_playing() {
            while next < arrivals.len() && arrivals[next].0 <= ms {
                let (at, s, ts) = arrivals[next];
                jb.push(s, ts, &[0], s + 1 == seq, now(t0, at), Sent::Live);
                next += 1;
            }
            if jb.pop(now(t0, ms), NO) != Playout::Silence && started.is_none() {
                started = Some(ms - spoken);
            }
            ms += if started.is_some() { 20.0 } else { 1.0 };
        }
        if spurt > 0 {
            starts.push(started.unwrap());
        }
    }
    let spread =
        starts.iter().fold(f64::MIN, |a, b| a.max(*b)) - starts.iter().fold(f64::MAX, |a, b| a.min(*b));
    assert!(spread <= 1.0, "{starts:?}");
    assert!((50.0..=56.0).contains(&starts[0]), "30 ms of transit, 19 of jitter and a tick: {starts:?}");
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
        if let Playout::Frame(b) = jb.pop(at + Duration::from_millis(10), NO) {
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
        let _ = jb.pop(at(20 * u64::from(i) + 10), NO);
    }
    // The sender restarts: its numbers begin at 0 again.
    let mut heard = 0;
    for i in 0..20u32 {
        jb.push(i, i * 960, &[2], false, at(4000 + 20 * u64::from(i)), Sent::Live);
        if jb.pop(at(4000 + 20 * u64::from(i) + 10), NO) == Playout::Frame(vec![2]) {
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
    assert_eq!(jb.pop(t0 + Duration::from_millis(30), NO), Playout::Frame(vec![0]));
    jb.push(1_000_000, 0, &[9], false, t0 + Duration::from_millis(40), Sent::Live);
    let outs: Vec<Playout> = (0..3).map(|i| jb.pop(t0 + Duration::from_millis(50 + 20 * i), NO)).collect();
    assert!(outs.contains(&Playout::Frame(vec![9])), "{outs:?}");
    assert!(jb.level() <= 2);
}

#[test]
fn end_of_talk_returns_to_silence() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(FRAME);
    jb.push(0, 0, &[1], false, t0, Sent::Live);
    jb.push(1, 960, &[2], true, t0, Sent::Live);
    let outs: Vec<Playout> = (0..4).map(|i| jb.pop(t0 + Duration::from_millis(40 + 20 * i), NO)).collect();
    assert_eq!(
        outs,
        vec![Playout::Frame(vec![1]), Playout::Frame(vec![2]), Playout::Silence, Playout::Silence]
    );
}

#[test]
fn a_talker_with_shorter_frames_is_followed() {
    // We send 20 ms frames; the talker sends 10 ms ones, 25 ms after it spoke them.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(FRAME);
    let mut played = Vec::new();
    let mut ms = 0.0;
    let mut next_frame = 0u32;
    while ms < 3000.0 {
        while next_frame < 200 && f64::from(next_frame) * 10.0 + 25.0 <= ms {
            let at = now(t0, f64::from(next_frame) * 10.0 + 25.0);
            jb.push(
                next_frame,
                next_frame * 480,
                &next_frame.to_be_bytes(),
                next_frame == 199,
                at,
                Sent::Live,
            );
            next_frame += 1;
        }
        if let Playout::Frame(b) = jb.pop(now(t0, ms), NO) {
            played.push(u32::from_be_bytes(b[..4].try_into().unwrap()));
        }
        // The decoder plays what a frame holds: 10 ms.
        ms += if jb.frame_ms() == 10.0 { 10.0 } else { 20.0 };
    }
    assert_eq!(jb.frame_ms(), 10.0);
    assert_eq!(played, (0..200).collect::<Vec<_>>(), "{:?}", jb.stats());
}

#[test]
fn frames_after_bursts_of_losses_are_heard_as_late_as_before() {
    // Every second, the last three frames sent are lost: nothing comes for 80 ms. Played at a
    // steady pace (no stretching), so only the buffer's own choices move the delay.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(FRAME);
    let lost = |seq: u32| seq % 50 >= 40 && seq % 50 < 43;
    let mut heard_after_sent = Vec::new();
    let (mut ms, mut next) = (0.0, 0u32);
    while ms < 10_000.0 {
        while f64::from(next) * 20.0 + 30.0 <= ms {
            if !lost(next) {
                let at = now(t0, f64::from(next) * 20.0 + 30.0);
                jb.push(next, next * 960, &next.to_be_bytes(), false, at, Sent::Live);
            }
            next += 1;
        }
        ms += match jb.pop(now(t0, ms), NO) {
            Playout::Wait => WAIT_MS,
            Playout::Frame(b) => {
                let seq = u32::from_be_bytes(b[..4].try_into().unwrap());
                heard_after_sent.push((seq, ms - f64::from(seq) * 20.0));
                20.0
            }
            _ => 20.0,
        };
    }
    let played: Vec<u32> = heard_after_sent.iter().map(|(seq, _)| *seq).collect();
    let expected: Vec<u32> = (0..next).filter(|s| !lost(*s) && f64::from(*s) * 20.0 < 9_800.0).collect();
    assert_eq!(played[..expected.len()], expected[..], "every frame that came is played: {:?}", jb.stats());
    let delays: Vec<f64> = heard_after_sent.iter().map(|(_, d)| *d).collect();
    let (least, most) = delays.iter().fold((f64::MAX, f64::MIN), |(l, m), d| (l.min(*d), m.max(*d)));
    // Later only by the frame the target adds while frames get lost (for the next frame's copy
    // of a lost one), give or take half a frame.
    assert!(most - least <= 1.5 * f64::from(FRAME), "heard {least}..{most} ms after sent");
}
