//! Time-scale changes inside decoded speech, as WebRTC's NetEq makes them: to shorten the delay,
//! one pitch period is taken out of a stretch of voice (accelerate); to lengthen it, one is put
//! in (expand). The pitch period comes from the signal's own autocorrelation, and the cut is
//! cross-faded between two neighbouring periods that look alike, so it is not heard; a stretch
//! that is not periodic enough (a consonant, a note changing) is left alone, unless it is so
//! quiet that nothing can be heard either way.
//!
//! A jitter buffer that drops or repeats whole frames moves the delay in 20 ms steps that are
//! heard as clicks and stutters; these steps are one pitch period (2.5 to 15 ms) and fall where
//! they cannot be heard.

/// Samples per millisecond (48 kHz).
const PER_MS: usize = 48;
/// Pitch periods looked for: 2.5 ms (400 Hz) to 15 ms (67 Hz).
const MIN_PERIOD: usize = 5 * PER_MS / 2;
const MAX_PERIOD: usize = 15 * PER_MS;
/// The coarse search runs on every fourth sample (12 kHz), then refines around the best lag.
const DECIMATE: usize = 4;
/// How alike two neighbouring periods must be for one of them to go (normalised correlation).
const ALIKE: f32 = 0.85;
/// Below this mean power (about -50 dBFS) a stretch counts as quiet: any cut is inaudible.
const QUIET: f32 = 1e-5;

/// Where and how much to cut or insert.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Period {
    len: usize,
    alike: f32,
}

/// Finds the pitch period at the start of `x`: the lag (2.5-15 ms, at most half of `x`) at
/// which the signal best matches itself. `None` if `x` is too short.
fn period(x: &[f32]) -> Option<Period> {
    let max = MAX_PERIOD.min(x.len() / 2);
    if max < MIN_PERIOD {
        return None;
    }
    let alike = |lag: usize, step: usize| -> f32 {
        let (a, b) = (&x[..lag], &x[lag..2 * lag]);
        let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
        for i in (0..lag).step_by(step) {
            ab += a[i] * b[i];
            aa += a[i] * a[i];
            bb += b[i] * b[i];
        }
        if aa <= f32::EPSILON || bb <= f32::EPSILON { 0.0 } else { ab / (aa * bb).sqrt() }
    };
    let coarse = (MIN_PERIOD..=max)
        .step_by(DECIMATE)
        .max_by(|a, b| alike(*a, DECIMATE).total_cmp(&alike(*b, DECIMATE)))?;
    let fine = (coarse.saturating_sub(DECIMATE).max(MIN_PERIOD)..=(coarse + DECIMATE).min(max))
        .map(|lag| (lag, alike(lag, 1)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(Period { len: fine.0, alike: fine.1 })
}

fn quiet(x: &[f32]) -> bool {
    x.iter().map(|s| s * s).sum::<f32>() / x.len().max(1) as f32 <= QUIET
}

/// A rising cross-fade weight over `n` samples (raised cosine).
fn fade_in(i: usize, n: usize) -> f32 {
    0.5 - 0.5 * (std::f32::consts::PI * (i as f32 + 0.5) / n as f32).cos()
}

/// Whether the start of `x` may be cut or stretched, and by how much.
fn usable(x: &[f32]) -> Option<usize> {
    let p = period(x)?;
    (p.alike >= ALIKE || quiet(&x[..2 * p.len])).then_some(p.len)
}

/// Takes one pitch period (of at most `most` samples) out of `x` (in place), or half of `x` (at
/// most `most`) if all of it is quiet; returns how many samples went (0 if the signal did not
/// allow it).
pub(crate) fn accelerate(x: &mut Vec<f32>, most: usize) -> usize {
    let p = if quiet(x) && x.len() >= 2 * MIN_PERIOD && most >= MIN_PERIOD {
        (x.len() / 2).min(most)
    } else {
        match usable(x) {
            Some(p) if p <= most => p,
            _ => return 0,
        }
    };
    // The two periods A = x[..p] and B = x[p..2p] become one that starts as A and ends as B.
    for i in 0..p {
        let w = fade_in(i, p);
        x[i] = x[i] * (1.0 - w) + x[p + i] * w;
    }
    x.drain(p..2 * p);
    p
}

/// Puts one pitch period (of at most `most` samples) into `x` (in place); returns how many
/// samples were added (0 if the signal did not allow it).
pub(crate) fn expand(x: &mut Vec<f32>, most: usize) -> usize {
    let Some(p) = usable(x).filter(|p| *p <= most) else { return 0 };
    // After A = x[..p] comes a period that starts as B (what follows A) and ends as A (what B
    // follows), then B and the rest as they were.
    let inserted: Vec<f32> = (0..p)
        .map(|i| {
            let w = fade_in(i, p);
            x[p + i] * (1.0 - w) + x[i] * w
        })
        .collect();
    x.splice(p..p, inserted);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::codec::tests::voiced;

    /// The largest sample-to-sample jump: a click shows as one far above the signal's own.
    fn largest_jump(x: &[f32]) -> f32 {
        x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn finds_the_pitch_period_of_a_voice() {
        // 150 Hz (a 6.67 ms period, 320 samples) with its harmonics.
        let tone: Vec<f32> = (0..1920)
            .map(|i| {
                (1..6)
                    .map(|h| {
                        (std::f32::consts::TAU * 150.0 * h as f32 * i as f32 / 48_000.0).sin() / h as f32
                    })
                    .sum()
            })
            .collect();
        let p = period(&tone).unwrap();
        assert_eq!(p.len, 320, "{p:?}");
        assert!(p.alike > 0.99, "{p:?}");
        assert_eq!(period(&tone[..200]), None, "shorter than two of the shortest periods");
    }

    #[test]
    fn accelerate_and_expand_move_one_period_without_a_click() {
        let speech = voiced(0.5);
        let jump = largest_jump(&speech);
        for start in [4_800, 9_600, 14_400] {
            let original = speech[start..start + 1920].to_vec();
            let mut shorter = original.clone();
            let cut = accelerate(&mut shorter, MAX_PERIOD);
            assert!((MIN_PERIOD..=MAX_PERIOD).contains(&cut), "cut {cut}");
            assert_eq!(shorter.len(), original.len() - cut);
            assert!(largest_jump(&shorter) <= jump * 1.2, "no click where the period went");
            // What follows the cut is the original, unchanged.
            assert_eq!(shorter[cut..], original[2 * cut..]);

            assert_eq!(accelerate(&mut original.clone(), cut - 1), 0, "not more than asked");
            assert_eq!(expand(&mut original.clone(), cut - 1), 0, "not more than asked");

            let mut longer = original.clone();
            let added = expand(&mut longer, MAX_PERIOD);
            assert!((MIN_PERIOD..=MAX_PERIOD).contains(&added), "added {added}");
            assert_eq!(longer.len(), original.len() + added);
            assert!(largest_jump(&longer) <= jump * 1.2, "no click where the period came in");
            assert_eq!(longer[..added], original[..added]);
            assert_eq!(longer[2 * added..], original[added..]);
        }
    }

    #[test]
    fn noise_is_left_alone_unless_it_is_quiet() {
        let mut seed = 1u32;
        let mut noise = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let loud: Vec<f32> = (0..1920).map(|_| noise() * 0.5).collect();
        let mut x = loud.clone();
        assert_eq!(accelerate(&mut x, MAX_PERIOD), 0);
        assert_eq!(expand(&mut x, MAX_PERIOD), 0);
        assert_eq!(x, loud, "untouched");
        let mut hush: Vec<f32> = (0..1920).map(|_| noise() * 0.001).collect();
        assert_eq!(accelerate(&mut hush.clone(), 300), 300, "a near-silence: as much as asked");
        assert_eq!(accelerate(&mut hush, 5000), 960, "a near-silence is cut by half at most");
        assert_eq!(hush.len(), 960);
    }
}
