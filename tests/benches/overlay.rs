//! What the overlay costs. CPU (fraction of one core) and resident memory of `partyline --overlay`
//! in a party of four under Xvfb (Bevy on Mesa's lavapipe: software rendering), with nobody
//! speaking and with two members speaking, next to the same member run headless (the difference
//! is the overlay's share); and the time from starting `partyline --overlay` to its window and to
//! its first frame; and the interactive overlay's frame rate beside plugins that misbehave.
//!
//! `cargo bench -p partyline-tests --bench overlay` (release build). Prints tables; not a test.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use partyline_tests::report::{spread_header, spread_row};
use partyline_tests::usage::{self, Usage};
use partyline_tests::xvfb::{self, GameWindow, Xvfb};
use partyline_tests::{LOOPBACK, Proc, audio, join, plugins};

/// How long usage is measured for, once the party is steady.
const WINDOW: Duration = Duration::from_secs(30);
/// After the last join, before measuring: the join toasts expire after five seconds.
const SETTLE: Duration = Duration::from_secs(7);
const FIRST_FRAME_RUNS: usize = 5;

#[derive(Clone, Copy, PartialEq)]
enum Front {
    Overlay,
    Headless,
}

/// Speech long enough to talk through the set-up and the whole window: the test speech again and
/// again.
fn long_speech(dir: &Path) -> PathBuf {
    let speech = audio::read_mono(audio::speech_wav());
    let path = dir.join("long-speech.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: audio::RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).expect("speech file");
    let samples = (WINDOW + SETTLE + Duration::from_secs(60)).as_secs() as usize * audio::RATE as usize;
    for s in speech.iter().cycle().take(samples) {
        writer.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).expect("speech sample");
    }
    writer.finalize().expect("speech file");
    path
}

/// Ana, hosting, hearing the party into a file (the voice engine decodes and mixes as it would
/// for speakers), shown as `front`, with whatever `prepare` puts in her home first (plugins).
fn start_ana_with(x: &Xvfb, front: Front, heard: &Path, prepare: impl FnOnce(&Path)) -> Proc {
    let flag = match front {
        Front::Overlay => "--overlay",
        Front::Headless => "--headless",
    };
    let heard = heard.to_str().expect("path");
    let mut args = vec!["host", "--name", "ana", flag, "--mic-device", "none", "--speaker-file", heard];
    args.extend_from_slice(LOOPBACK);
    let home = tempfile::Builder::new().prefix("pl-ana-").tempdir().expect("temp dir");
    prepare(home.path());
    let path = home.path().to_owned();
    Proc::start_full("ana", &path, &args, Some(home), &[], &x.env())
}

fn start_ana(x: &Xvfb, front: Front, heard: &Path) -> Proc {
    start_ana_with(x, front, heard, |_| {})
}

struct Cost {
    ana: Usage,
    ana_cpu: f64,
    xvfb_cpu: f64,
}

/// Ana and three members, `speakers` of whom talk the whole time; usage over [`WINDOW`].
fn cost(x: &Xvfb, front: Front, speakers: usize, speech: &Path) -> Cost {
    let dir = tempfile::tempdir().expect("temp dir");
    let ana = start_ana(x, front, &dir.path().join("heard.wav"));
    let link = ana.wait_event(Duration::from_secs(60), "link")["link"].as_str().expect("link").to_owned();
    let speech = speech.to_str().expect("path");
    let names = ["bob", "carl", "dana"];
    let _members: Vec<Proc> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mic = if i < speakers { ["--mic-file", speech] } else { ["--mic-device", "none"] };
            join(name, &link, &[mic[0], mic[1], "--speaker-device", "none"])
        })
        .collect();
    ana.wait_roster(Duration::from_secs(90), &["ana", "bob", "carl", "dana"]);
    for name in &names[..speakers] {
        ana.wait_for(Duration::from_secs(30), "speaking", |e| {
            e["event"] == "speaking" && e["name"] == *name && e["on"] == true
        });
    }
    std::thread::sleep(SETTLE);
    let (ana_before, x_before) = (usage::of(ana.pid()), usage::of(x.pid()));
    std::thread::sleep(WINDOW);
    let (ana_after, x_after) = (usage::of(ana.pid()), usage::of(x.pid()));
    let seconds = WINDOW.as_secs_f64();
    Cost {
        ana: ana_after,
        ana_cpu: (ana_after.cpu_s - ana_before.cpu_s) / seconds,
        xvfb_cpu: (x_after.cpu_s - x_before.cpu_s) / seconds,
    }
}

fn cost_table(x: &Xvfb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let speech = long_speech(dir.path());
    println!(
        "\nana in a party of four, {} s steady state; CPU as % of one core, memory in MiB",
        WINDOW.as_secs()
    );
    println!("| ana shown as | members speaking | ana CPU | Xvfb CPU | ana RSS | ana peak RSS |");
    println!("|--------------|------------------|---------|----------|---------|--------------|");
    for speakers in [0, 2] {
        for front in [Front::Overlay, Front::Headless] {
            let c = cost(x, front, speakers, &speech);
            let shown = if front == Front::Overlay { "overlay" } else { "headless" };
            println!(
                "| {shown:<12} | {speakers:>16} | {:>6.2}% | {:>7.2}% | {:>7.1} | {:>12.1} |",
                c.ana_cpu * 100.0,
                c.xvfb_cpu * 100.0,
                c.ana.rss_kib as f64 / 1024.0,
                c.ana.peak_rss_kib as f64 / 1024.0,
            );
        }
    }
}

/// Milliseconds from starting `partyline --overlay` to its window being mapped, and to its first
/// frame: a screenshot asked for over IPC is written only once frames render (it waits three
/// frames for the layout to settle, so this slightly overstates it). The window's pixels as the X
/// server shows them cannot be used: under Xvfb, lavapipe's presentation leaves them black.
fn first_frame(x: &Xvfb) -> (f64, f64) {
    let conn = x.connect();
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let ana = start_ana(x, Front::Overlay, &dir.path().join("heard.wav"));
    let (socket, shot) = (ana.home.join("data/partyline.sock"), ana.home.join("data/first.png"));
    let mut mapped = None;
    let mut asked = false;
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "no frame in 60 s:\n{}", ana.stderr_tail());
        if mapped.is_none() && xvfb::window_titled(&conn, "Partyline").is_some() {
            mapped = Some(started.elapsed());
        }
        if !asked && let Ok(mut stream) = UnixStream::connect(&socket) {
            let request = serde_json::json!({"request": "screenshot", "path": shot});
            asked = writeln!(stream, "{request}").is_ok();
        }
        if let (Some(mapped), true) = (mapped, shot.exists()) {
            return (mapped.as_secs_f64() * 1e3, started.elapsed().as_secs_f64() * 1e3);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn first_frame_table(x: &Xvfb) {
    let (mut mapped, mut drawn) = (Vec::new(), Vec::new());
    for _ in 0..FIRST_FRAME_RUNS {
        let (m, d) = first_frame(x);
        mapped.push(m);
        drawn.push(d);
        // The window goes with the process; let the server settle before the next start.
        std::thread::sleep(Duration::from_millis(500));
    }
    spread_header("start of `partyline host --overlay` under Xvfb (lavapipe), ms");
    spread_row("window mapped", mapped);
    spread_row("first frame (screenshot written)", drawn);
}

/// Asks the overlay for a screenshot over IPC: the time until it is written, and the number of
/// frames drawn until then (from its layout file).
fn screenshot(ana: &Proc, name: &str) -> (Duration, u64) {
    let path = ana.home.join(format!("data/{name}.png"));
    let asked = Instant::now();
    let mut stream = UnixStream::connect(ana.home.join("data/partyline.sock")).expect("ipc");
    writeln!(stream, "{}", serde_json::json!({"request": "screenshot", "path": path})).expect("ipc");
    while !path.exists() {
        assert!(asked.elapsed() < Duration::from_secs(60), "no screenshot:\n{}", ana.stderr_tail());
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = asked.elapsed();
    let layout: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}.json", path.display())).expect("layout"))
            .expect("layout json");
    (took, layout["frame"].as_u64().expect("frame count"))
}

/// The interactive overlay (drawn every 100 ms and on every change) in a party of two, alone or
/// beside plugins that misbehave: one floods toasts, log lines and messages on every event, one
/// never returns from its calls. Frames per second over [`WINDOW`], screenshot round trips, CPU.
fn frame_rate_table(x: &Xvfb) {
    println!("\ninteractive overlay, party of two, {} s; screenshots asked over IPC", WINDOW.as_secs());
    println!("| plugins | frames/s | screenshot ms (median, max) | ana CPU |");
    println!("|---------|----------|-----------------------------|---------|");
    for hostile in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let ana = start_ana_with(x, Front::Overlay, &dir.path().join("heard.wav"), |home| {
            if hostile {
                plugins::install_hostile(home, "flood", &["party.message", "notify", "log"], "all");
                plugins::install_hostile(home, "loop", &[], "");
            }
        });
        let link = ana.wait_event(Duration::from_secs(60), "link")["link"].as_str().expect("link").to_owned();
        let _bob = join("bob", &link, &["--mic-device", "none", "--speaker-device", "none"]);
        ana.wait_roster(Duration::from_secs(60), &["ana", "bob"]);
        std::thread::sleep(SETTLE);
        let mut stream = UnixStream::connect(ana.home.join("data/partyline.sock")).expect("ipc");
        writeln!(stream, "{}", serde_json::json!({"request": "interactive", "on": true})).expect("ipc");
        let (_, first) = screenshot(&ana, "first");
        let cpu_before = usage::of(ana.pid()).cpu_s;
        let started = Instant::now();
        let mut shots = Vec::new();
        let mut last = first;
        while started.elapsed() < WINDOW {
            std::thread::sleep(Duration::from_secs(2));
            let (took, frame) = screenshot(&ana, &format!("shot-{}", shots.len()));
            shots.push(took.as_secs_f64() * 1e3);
            last = frame;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = (usage::of(ana.pid()).cpu_s - cpu_before) / seconds;
        shots.sort_by(f64::total_cmp);
        println!(
            "| {:<7} | {:>8.1} | {:>13.0}, {:>13.0} | {:>6.1}% |",
            if hostile { "flood + loop" } else { "none" },
            (last - first) as f64 / seconds,
            shots[shots.len() / 2],
            shots[shots.len() - 1],
            cpu * 100.0
        );
    }
}

fn main() {
    let x = Xvfb::start();
    // Something under the overlay, as a game would be.
    let _game = GameWindow::open(&x);
    first_frame_table(&x);
    frame_rate_table(&x);
    cost_table(&x);
}
