//! The voice benchmark: mouth-to-ear latency (files and devices), PESQ-WB under loss and jitter,
//! the CPU of receiving and mixing many speakers, and bytes on the wire.
//!
//! `scripts/bench.sh --bench voice` (release build; installs the Python `pesq` package it scores
//! with). Prints tables; not a test. Real processes on loopback, impaired by the seeded UDP proxy.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use partyline_tests::audio;
use partyline_tests::device_talk::{Devices, device_talk};
use partyline_tests::impair::Impairment;
use partyline_tests::talk::{Rate, Setup, Talk, member, talk};

const DELAY: Duration = Duration::from_millis(20);

fn impairment(loss: f64, jitter_ms: u64, seed: u64) -> Impairment {
    Impairment { loss, delay: DELAY, jitter: Duration::from_millis(jitter_ms), seed, burst: 1.0 }
}

/// PESQ-WB (P.862.2, MOS-LQO) of a recording against the speech, by `scripts/pesq_score.py`.
fn pesq(recording: &Path, lag_ms: f64, reference: &Path) -> Option<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pesq_score.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(reference)
        .arg(recording)
        .arg(format!("{lag_ms:.2}"))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("pesq_score.py failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Condition {
    label: &'static str,
    open_mic: bool,
    impairment: Impairment,
    streams: Option<u32>,
}

fn run(c: &Condition) -> (Talk, Option<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(audio::speech_wav(), dir.path());
    setup.impairment = Some(c.impairment);
    setup.open_mic = c.open_mic;
    if let Some(k) = c.streams {
        setup.talker_args = vec!["--no-voice-datagrams".into(), "--voice-streams".into(), k.to_string()];
    }
    let t = talk(&setup);
    let score = pesq(&t.recording, t.alignment.lag_ms, audio::speech_wav());
    (t, score)
}

fn quality_table() -> Vec<(&'static str, &'static str, Rate, Rate)> {
    let mut conditions = Vec::new();
    for open_mic in [true, false] {
        conditions.extend([
            Condition { label: "0% loss", open_mic, impairment: impairment(0.0, 0, 1), streams: None },
            Condition { label: "5% loss", open_mic, impairment: impairment(0.05, 0, 2), streams: None },
            Condition { label: "10% loss", open_mic, impairment: impairment(0.10, 0, 3), streams: None },
            Condition { label: "20 ms jitter", open_mic, impairment: impairment(0.0, 20, 4), streams: None },
        ]);
    }
    for (label, loss, seed) in [("5% loss, streams", 0.05, 2), ("10% loss, streams", 0.10, 3)] {
        conditions.push(Condition {
            label,
            open_mic: true,
            impairment: impairment(loss, 0, seed),
            streams: Some(8),
        });
    }

    println!(
        "\nPESQ-WB (16 kHz, P.862.2) of ~10 s of speech, talker file -> listener file, 20 ms one-way delay"
    );
    println!(
        "Opus 20 ms frames, 24 kbit/s; FEC and copies of the previous frame while members report loss; datagrams unless said (streams: 8 libp2p streams per member)"
    );
    println!(
        "| mode             | network            | PESQ-WB | corr | mouth-to-ear ms | jitter ms | buffer ms | lost | rebuilt | FEC | concealed | late | dropped |"
    );
    println!(
        "|------------------|--------------------|---------|------|-----------------|-----------|-----------|------|---------|-----|-----------|------|---------|"
    );
    let mut wire = Vec::new();
    for c in &conditions {
        let (t, score) = run(c);
        let alice = member(&t.listener, "alice");
        let mode = if c.open_mic { "open mic" } else { "voice activation" };
        println!(
            "| {mode:<16} | {:<18} | {:>7} | {:.2} | {:>15.0} | {:>9.0} | {:>9.0} | {:>4} | {:>7} | {:>3} | {:>9} | {:>4} | {:>7} |",
            c.label,
            score.map_or("n/a".into(), |s| format!("{s:.2}")),
            t.alignment.median_correlation,
            t.mouth_to_ear_ms,
            alice["jitter_ms"].as_f64().unwrap_or(f64::NAN),
            alice["buffer_ms"].as_f64().unwrap_or(f64::NAN),
            alice["lost"].as_u64().unwrap_or(0),
            alice["recovered"].as_u64().unwrap_or(0),
            alice["fec"].as_u64().unwrap_or(0),
            alice["concealed"].as_u64().unwrap_or(0),
            alice["late"].as_u64().unwrap_or(0),
            alice["dropped"].as_u64().unwrap_or(0),
        );
        if let Some((talking, silent)) = t.wire
            && matches!(c.label, "0% loss" | "5% loss")
        {
            wire.push((mode, c.label, talking, silent));
        }
    }
    wire
}

fn latency_table() {
    println!("\nmouth-to-ear latency, file to file, 0% loss, 20 ms one-way delay, open mic (5 runs)");
    let runs: Vec<f64> = (0..5)
        .map(|i| {
            let c = Condition {
                label: "latency",
                open_mic: true,
                impairment: impairment(0.0, 0, 10 + i),
                streams: None,
            };
            run(&c).0.mouth_to_ear_ms
        })
        .collect();
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    println!("| runs | min ms | median ms | max ms |");
    println!("|------|--------|-----------|--------|");
    println!(
        "| {:>4} | {:>6.1} | {:>9.1} | {:>6.1} |",
        runs.len(),
        sorted[0],
        median(runs),
        sorted[sorted.len() - 1]
    );
}

/// Through PulseAudio devices, as a player hears it: speech (about 21 s) into Alice's virtual
/// microphone, Bob's virtual speakers recorded; PESQ-WB of what they played, mouth-to-ear
/// latency, how steady it stayed. `PARTYLINE_BENCH_RUNS` runs per condition (3).
fn device_table() {
    let _exclusive = partyline_tests::exclusive();
    let runs: usize = std::env::var("PARTYLINE_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut devices = Devices::start();
    devices.measure_skew();
    let speech = audio::long_speech_wav();
    // The last row has a core busy beside the call, as a game keeps one.
    let conditions: [(&str, bool, Impairment); 8] = [
        ("open mic", true, impairment(0.0, 0, 1)),
        ("voice activation", false, impairment(0.0, 0, 1)),
        ("voice activation", false, impairment(0.05, 0, 2)),
        ("voice activation", false, impairment(0.10, 0, 3)),
        ("voice activation", false, impairment(0.20, 0, 4)),
        ("voice activation", false, Impairment { burst: 3.0, ..impairment(0.10, 0, 5) }),
        ("voice activation", false, impairment(0.0, 30, 6)),
        (BUSY, false, impairment(0.0, 0, 7)),
    ];
    println!(
        "\nthrough PulseAudio devices (null sinks via the default device), ~21 s of speech, 20 ms one-way delay, {runs} runs each; recorder skew {:.1} ms",
        devices.recorder_skew_ms
    );
    println!(
        "| mode             | network                 | PESQ-WB median (min-max) | mouth-to-ear ms median (runs) | spread p95-p5 ms | largest step ms | underruns | dropped | concealed | kbit/s with IP+UDP |"
    );
    println!(
        "|------------------|-------------------------|--------------------------|-------------------------------|------------------|-----------------|-----------|---------|-----------|--------------------|"
    );
    let mut budget = Vec::new();
    // PARTYLINE_BENCH_ONLY=TEXT runs only the conditions whose mode or network contain TEXT.
    let only = std::env::var("PARTYLINE_BENCH_ONLY").unwrap_or_default();
    for (mode, open_mic, imp) in conditions {
        let network = describe(&imp);
        if !format!("{mode} {network}").contains(&only) {
            continue;
        }
        let mut scores = Vec::new();
        let mut delays = Vec::new();
        let (mut spread, mut step) = (Vec::new(), Vec::new());
        let (mut underruns, mut dropped, mut concealed, mut kbps) = (0, 0, 0, Vec::new());
        for run in 0..runs {
            let _busy = (mode == BUSY).then(BusyCore::start);
            let dir = tempfile::tempdir().unwrap();
            let imp = Impairment { seed: imp.seed * 100 + run as u64, ..imp };
            let t = device_talk(&devices, speech, Some(imp), open_mic, dir.path());
            if run == 0 && imp.loss == 0.0 && imp.jitter.is_zero() {
                budget.push(latency_pieces(mode, &t));
            }
            if let Some(score) = pesq(&t.recording, t.heard.lag_ms, speech) {
                scores.push(score);
            }
            delays.push(t.mouth_to_ear_ms);
            let (s, st) = t.heard.steadiness(0.4);
            spread.push(s);
            step.push(st);
            let alice = member(&t.listener, "alice");
            underruns += alice["underruns"].as_u64().unwrap_or(0);
            dropped += alice["dropped"].as_u64().unwrap_or(0);
            concealed += alice["concealed"].as_u64().unwrap_or(0);
            kbps.extend(t.wire.map(|w| w.kbps_with_headers));
        }
        let range = |v: &[f64]| {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (min, max)
        };
        let (lo, hi) = range(&scores);
        println!(
            "| {mode:<16} | {network:<23} | {:>24} | {:>29} | {:>16.0} | {:>15.0} | {:>9} | {:>7} | {:>9} | {:>18.1} |",
            if scores.is_empty() {
                "n/a".into()
            } else {
                format!("{:.2} ({lo:.2}-{hi:.2})", median(scores.clone()))
            },
            format!(
                "{:.0} ({})",
                median(delays.clone()),
                delays.iter().map(|d| format!("{d:.0}")).collect::<Vec<_>>().join(", ")
            ),
            median(spread),
            median(step),
            underruns,
            dropped,
            concealed,
            if kbps.is_empty() { f64::NAN } else { median(kbps) },
        );
    }
    println!("\nwhere the delay is, clean calls (first run):");
    for line in budget {
        println!("- {line}");
    }
}

const BUSY: &str = "VA, a core busy";

/// A process spinning on one core while it lives: a game beside the call.
struct BusyCore(std::process::Child);

impl BusyCore {
    fn start() -> Self {
        Self(Command::new("sh").args(["-c", "while :; do :; done"]).spawn().expect("sh"))
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one clean call through devices says of where the delay is.
fn latency_pieces(mode: &str, t: &partyline_tests::device_talk::DeviceTalk) -> String {
    let alice = member(&t.listener, "alice");
    format!(
        "{mode}: mouth-to-ear {:.0} ms (over the call, 0.4 s windows: {:?}); talker's microphone blocks up to {:.1} ms; listener: from due to leaving the ring {:.0} ms (target {:.0} ms: jitter estimate {:.0} ms, a 5 ms tick, the ring's ready audio), in the ring {:.0} ms; listener {alice}; talker's microphone overran {} times; PulseAudio: {}",
        t.mouth_to_ear_ms,
        t.delays_over(0.4).iter().map(|d| d.round()).collect::<Vec<_>>(),
        t.talker["input_block_ms"].as_f64().unwrap_or(f64::NAN),
        alice["wait_ms"].as_f64().unwrap_or(f64::NAN),
        alice["target_ms"].as_f64().unwrap_or(f64::NAN),
        alice["jitter_ms"].as_f64().unwrap_or(f64::NAN),
        alice["ring_ms"].as_f64().unwrap_or(f64::NAN),
        t.talker["input_overruns"],
        t.stream_latencies.join("; ")
    )
}

fn describe(imp: &Impairment) -> String {
    let mut parts = Vec::new();
    if imp.loss > 0.0 {
        let bursts = if imp.burst > 1.0 { format!(" in bursts of {:.0}", imp.burst) } else { String::new() };
        parts.push(format!("{:.0}% loss{bursts}", imp.loss * 100.0));
    }
    if !imp.jitter.is_zero() {
        parts.push(format!("±{} ms jitter", imp.jitter.as_millis() / 2));
    }
    if parts.is_empty() { "clean".into() } else { parts.join(", ") }
}

fn wire_table(wire: &[(&str, &str, Rate, Rate)]) {
    println!("\nbytes on the wire, talker -> listener (one member's stream), from the proxy's counts");
    println!(
        "| mode             | network  | while   | kbit/s (UDP payload) | kbit/s (with IP+UDP) | datagrams/s |"
    );
    println!(
        "|------------------|----------|---------|----------------------|----------------------|-------------|"
    );
    for (mode, network, talking, silent) in wire {
        for (what, r) in [("talking", talking), ("silent", silent)] {
            println!(
                "| {mode:<16} | {network:<8} | {what:<7} | {:>20.1} | {:>20.1} | {:>11.1} |",
                r.kbps, r.kbps_with_headers, r.datagrams_per_s
            );
        }
    }
}

/// The codec alone, no network: what Opus FEC and concealment can do for random frame loss.
fn codec_table() {
    use partyline::voice::bench::{Recovery, codec_under_loss};
    let speech = audio::read_mono(audio::speech_wav());
    let dir = tempfile::tempdir().unwrap();
    println!("\ncodec alone (no network): Opus 20 ms, 24 kbit/s, random frame loss, PESQ-WB");
    println!("| frame loss | concealment only | in-band FEC | copy of previous frame + FEC |");
    println!("|------------|------------------|-------------|------------------------------|");
    for loss in [0.0, 0.05, 0.10] {
        let score = |recovery| {
            let out = codec_under_loss(&speech, loss, recovery, 42).unwrap();
            let path = dir.path().join("codec.wav");
            audio::write_mono(&path, &out);
            let lag = audio::align(&speech, &out).lag_ms;
            pesq(&path, lag, audio::speech_wav()).map_or("n/a".into(), |s| format!("{s:.2}"))
        };
        println!(
            "| {:>9.0}% | {:>16} | {:>11} | {:>28} |",
            loss * 100.0,
            score(Recovery::Conceal),
            score(Recovery::Fec),
            score(Recovery::Redundancy)
        );
    }
}

fn mix_table() {
    let speech = audio::read_mono(audio::speech_wav());
    println!("\nreceiving: jitter buffer + Opus decode + kira spatial mix, 20 s, in one thread");
    println!(
        "| members | talking | mixed at most (loudest) | share of one core | of which decoding | of which mixing | ms per 20 ms |"
    );
    println!(
        "|---------|---------|-------------------------|-------------------|-------------------|-----------------|--------------|"
    );
    for (members, speakers, loudest) in
        [(1, 1, 8), (8, 8, 8), (32, 32, 8), (64, 64, 8), (64, 64, 64), (64, 2, 8), (64, 0, 8)]
    {
        let cost = partyline::voice::bench::mix_cost(&speech, members, speakers, loudest, 20.0).unwrap();
        assert!(speakers == 0 || cost.output_rms > 0.001, "nothing was mixed: {cost:?}");
        let share = |seconds: f64| seconds / cost.audio_seconds * 100.0;
        println!(
            "| {members:>7} | {speakers:>7} | {loudest:>23} | {:>16.1}% | {:>16.1}% | {:>14.1}% | {:>12.2} |",
            cost.core_fraction() * 100.0,
            share(cost.decode_seconds),
            share(cost.busy_seconds - cost.decode_seconds),
            cost.core_fraction() * 20.0
        );
    }
}

/// `scripts/bench.sh --bench voice -- mix latency` runs only the parts named (mix, latency,
/// devices, quality, codec); no names runs all.
fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let run = |part: &str| wanted.is_empty() || wanted.iter().any(|w| w == part);
    if run("codec") {
        codec_table();
    }
    if run("mix") {
        mix_table();
    }
    if run("latency") {
        latency_table();
    }
    if run("devices") {
        device_table();
    }
    if run("quality") {
        let wire = quality_table();
        wire_table(&wire);
    }
}
