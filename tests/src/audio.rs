//! Speech for voice tests (espeak-ng, resampled by sox to 48 kHz) and comparing what was heard
//! with what was said: the lag between them and how alike they are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const RATE: u32 = 48_000;

const TEXT: &str = "Hello team, this is Partyline. The enemy is behind the red building, near the bridge. \
Cover me while I reload, then we push together on three. One, two, three, go go go.";

/// A 48 kHz mono speech file of about ten seconds, made once and kept in the temp directory.
pub fn speech_wav() -> &'static Path {
    static SPEECH: OnceLock<PathBuf> = OnceLock::new();
    SPEECH.get_or_init(|| {
        let dir = std::env::temp_dir().join("partyline-test-audio");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("speech-v1.wav");
        if out.exists() {
            return out;
        }
        speak(TEXT, &out)
    })
}

/// `text` spoken by espeak-ng into a 48 kHz mono WAV at `out`; returns `out`.
fn speak(text: &str, out: &Path) -> PathBuf {
    let pid = std::process::id();
    let (raw, tmp) = (out.with_extension(format!("raw-{pid}.wav")), out.with_extension(format!("{pid}.wav")));
    let run = |cmd: &mut Command, what: &str| {
        let status = cmd.status().unwrap_or_else(|e| {
            panic!("cannot run {what} ({e}); scripts/setup.sh installs espeak-ng and sox")
        });
        assert!(status.success(), "{what} failed");
    };
    run(Command::new("espeak-ng").args(["-s", "160", "-w"]).arg(&raw).arg(text), "espeak-ng");
    run(Command::new("sox").arg(&raw).args(["-r", "48000", "-c", "1", "-b", "16"]).arg(&tmp), "sox");
    let _ = std::fs::remove_file(&raw);
    std::fs::rename(&tmp, out).unwrap();
    out.to_path_buf()
}

/// More speech, other words: nothing in it repeats [`TEXT`], so a recording lines up one way only.
const MORE_TEXT: &str = "Two players on the left flank, one sniper on the roof. I am low on health, \
falling back to the medic. Drop me some ammo when you pass the gate, and watch the stairs behind you.";

/// About 20 s: the speech, a second of silence, and more speech with other words (for calls long
/// enough to show how steady the delay is).
pub fn long_speech_wav() -> &'static Path {
    static LONG: OnceLock<PathBuf> = OnceLock::new();
    LONG.get_or_init(|| {
        let out = speech_wav().with_file_name("speech-long-v2.wav");
        if !out.exists() {
            let more = speak(MORE_TEXT, &out.with_extension("more.wav"));
            let mut long = read_mono(speech_wav());
            long.extend(std::iter::repeat_n(0.0, RATE as usize));
            long.extend(read_mono(&more));
            let _ = std::fs::remove_file(&more);
            let tmp = out.with_extension(format!("{}.wav", std::process::id()));
            write_mono(&tmp, &long);
            std::fs::rename(&tmp, &out).unwrap();
        }
        out
    })
}

/// Samples of a WAV file mixed down to mono, in -1..=1.
pub fn read_mono(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, RATE, "{}", path.display());
    let channels = usize::from(spec.channels);
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1u32 << (spec.bits_per_sample - 1)) as f32;
            reader.samples::<i32>().map(|s| s.unwrap() as f32 / scale).collect()
        }
        hound::SampleFormat::Float => reader.samples::<f32>().map(Result::unwrap).collect(),
    };
    samples.chunks(channels).map(|c| c.iter().sum::<f32>() / channels as f32).collect()
}

pub fn write_mono(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// How a recording lines up with the speech that was sent.
#[derive(Debug, Clone)]
pub struct Alignment {
    /// Where the speech starts in the recording (its first window found), in ms.
    pub lag_ms: f64,
    /// Median, over 200 ms windows of speech, of the best normalised correlation within ±60 ms
    /// of where the window before it was found (±400 ms if not there): 1 is identical, robust
    /// to the timing shifts a jitter buffer makes.
    pub median_correlation: f64,
    /// Share of speech windows found with a correlation above 0.6.
    pub windows_found: f64,
    /// How far from `lag_ms` speech was found at most: what the listener's jitter buffer added
    /// after a delay spike before it caught up again.
    pub drift_ms: f64,
    /// Where each speech window found was: (its start in the reference in s, its lag in ms).
    pub windows: Vec<(f64, f64)>,
}

impl Alignment {
    /// The lag over windows of `seconds` of speech (the mean of the windows found in each).
    pub fn lags_over(&self, seconds: f64) -> Vec<f64> {
        let mut groups: Vec<(i64, f64, u32)> = Vec::new();
        for &(at, lag) in &self.windows {
            let group = (at / seconds).floor() as i64;
            match groups.last_mut() {
                Some((g, sum, n)) if *g == group => (*sum, *n) = (*sum + lag, *n + 1),
                _ => groups.push((group, lag, 1)),
            }
        }
        groups.into_iter().map(|(_, sum, n)| sum / f64::from(n)).collect()
    }

    /// How steady the lag was: the 95th minus the 5th percentile of it over `seconds` windows,
    /// and the largest step between neighbouring windows (ms).
    pub fn steadiness(&self, seconds: f64) -> (f64, f64) {
        let lags = self.lags_over(seconds);
        let step = lags.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f64::max);
        let mut sorted = lags.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted.get(((sorted.len().max(1) - 1) as f64 * q).round() as usize).copied();
        (at(0.95).zip(at(0.05)).map_or(0.0, |(hi, lo)| hi - lo), step)
    }
}

/// The correlation above which a window of speech counts as found.
const FOUND: f64 = 0.6;

fn decimate3(x: &[f32]) -> Vec<f32> {
    x.chunks(3).map(|c| c.iter().sum::<f32>() / c.len() as f32).collect()
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        ab += f64::from(x * y);
        aa += f64::from(x * x);
        bb += f64::from(y * y);
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { ab / (aa * bb).sqrt() }
}

/// Finds `reference` in `recording` (both 48 kHz mono).
pub fn align(reference: &[f32], recording: &[f32]) -> Alignment {
    let (r, d) = (decimate3(reference), decimate3(recording));
    const RATE16: usize = 16_000;
    // Coarse: energy envelopes in 10 ms steps; then fine, sample by sample, around the best step.
    let envelope = |x: &[f32]| -> Vec<f32> {
        x.chunks(160).map(|c| c.iter().map(|s| s * s).sum::<f32>().sqrt()).collect()
    };
    let (re, de) = (envelope(&r), envelope(&d));
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len().max(1) as f32;
    let centred = |x: &[f32]| {
        let m = mean(x);
        x.iter().map(|v| v - m).collect::<Vec<f32>>()
    };
    let (re, de) = (centred(&re), centred(&de));
    let coarse = (0..de.len().saturating_sub(re.len() / 2))
        .max_by(|a, b| {
            let score = |lag: usize| {
                let n = re.len().min(de.len() - lag);
                correlation(&re[..n], &de[lag..lag + n])
            };
            score(*a).total_cmp(&score(*b))
        })
        .unwrap_or(0);
    let window = RATE16 / 5;
    let fine = |centre: isize, span: isize, seg: &[f32], at: usize| -> (isize, f64) {
        (-span..=span)
            .filter_map(|off| {
                let start = at as isize + centre + off;
                (start >= 0 && start as usize + seg.len() <= d.len())
                    .then(|| (centre + off, correlation(seg, &d[start as usize..start as usize + seg.len()])))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((centre, 0.0))
    };
    // A first guess from the loudest window; the windows below then find where speech starts.
    let loudest = (0..r.len() / window).max_by(|a, b| {
        let e = |w: usize| r[w * window..(w + 1) * window].iter().map(|s| s * s).sum::<f32>();
        e(*a).total_cmp(&e(*b))
    });
    let lag = match loudest {
        Some(w) => fine(coarse as isize * 160, 320, &r[w * window..(w + 1) * window], w * window).0,
        None => coarse as isize * 160,
    };
    // Each speech window is looked for near where the previous one was found: a jitter buffer
    // that grows after a delay spike and then catches up shifts the speech by more than a
    // window's tolerance, which delays it but does not lose it. Where it went is `drift_ms`.
    let (near, far) = ((RATE16 * 60 / 1000) as isize, (RATE16 * 400 / 1000) as isize);
    let mut track = lag;
    let (mut first, mut drift) = (None, 0isize);
    let mut scores = Vec::new();
    let mut windows = Vec::new();
    for w in 0..r.len() / window {
        let seg = &r[w * window..(w + 1) * window];
        if (seg.iter().map(|s| s * s).sum::<f32>() / window as f32).sqrt() <= 0.02 {
            continue;
        }
        let mut best = fine(track, near, seg, w * window);
        if best.1 <= FOUND {
            best = fine(track, far, seg, w * window);
        }
        if best.1 > FOUND {
            track = best.0;
            windows.push(((w * window) as f64 / RATE16 as f64, track as f64 * 1000.0 / RATE16 as f64));
            let first = *first.get_or_insert(track);
            drift = drift.max((track - first).abs());
        }
        scores.push(best.1);
    }
    scores.sort_by(f64::total_cmp);
    let median = scores.get(scores.len() / 2).copied().unwrap_or(0.0);
    let found = scores.iter().filter(|s| **s > FOUND).count() as f64 / scores.len().max(1) as f64;
    Alignment {
        lag_ms: first.unwrap_or(lag) as f64 * 1000.0 / RATE16 as f64,
        median_correlation: median,
        windows_found: found,
        drift_ms: drift as f64 * 1000.0 / RATE16 as f64,
        windows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_delayed_copy() {
        let speech: Vec<f32> = (0..RATE * 2)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                0.3 * (t * 2.0 * std::f32::consts::PI * (180.0 + 60.0 * t)).sin() * (t * 9.0).sin().abs()
            })
            .collect();
        let mut recording = vec![0.0; (RATE / 4) as usize];
        recording.extend(speech.iter().map(|s| s * 0.5));
        recording.extend(vec![0.0; RATE as usize]);
        let a = align(&speech, &recording);
        assert!((a.lag_ms - 250.0).abs() < 1.0, "{a:?}");
        assert!(a.median_correlation > 0.99, "{a:?}");
        assert!(a.drift_ms < 1.0, "{a:?}");

        let noise: Vec<f32> =
            (0..RATE * 3).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2).collect();
        assert!(align(&speech, &noise).median_correlation < 0.5);
    }

    #[test]
    fn follows_speech_that_a_stall_delays() {
        // A jitter buffer that stalls 150 ms halfway through: the rest comes later, not lost.
        let speech = read_mono(speech_wav());
        let half = speech.len() / 2;
        let mut stalled = vec![0.0; (RATE / 4) as usize];
        stalled.extend(&speech[..half]);
        stalled.extend(vec![0.0; (RATE as usize) * 150 / 1000]);
        stalled.extend(&speech[half..]);
        stalled.extend(vec![0.0; RATE as usize]);
        let a = align(&speech, &stalled);
        assert!((a.lag_ms - 250.0).abs() < 1.0, "{a:?}");
        assert!(a.windows_found > 0.9, "{a:?}");
        assert!((a.drift_ms - 150.0).abs() < 1.0, "{a:?}");
        let (spread, step) = a.steadiness(0.4);
        assert!((step - 150.0).abs() < 1.0 && spread > 149.0, "{spread} {step}");
        let steady = align(&speech, &stalled[..(RATE / 4) as usize + half]);
        assert_eq!(steady.steadiness(0.4), (0.0, 0.0), "no stall, no spread");
    }
}
