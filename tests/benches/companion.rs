//! What the companion page costs and how quick it is: loading the page from the gateway over
//! HTTPS on loopback in headless Chromium (navigation start to the load event, the browser's own
//! timing); a pairing from opening the link to the code on screen; push-to-talk held in the page
//! until another member's Partyline reports this player speaking (two real Partylines, voice from
//! a file, loopback); and what the desktop's memory grows by for a connected page.
//!
//! `cargo bench -p partyline-tests --bench companion`. Prints a table; not a test. Loopback, not
//! Wi-Fi: a phone on a LAN adds its network's round trips.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use partyline::companion::{cert, gateway::Gateway};
use partyline_tests::browser::Browser;
use partyline_tests::report::{spread_header, spread_row};

const RUNS: usize = 20;
const PAIRINGS: usize = 8;
const PRESSES: usize = 20;
const HEADSET_RUNS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let cert = cert::load_or_make(&dir.path().join("companion"), &[lo]).unwrap();
    let page = partyline_tests::browser::companion_page();
    let gateway = runtime
        .block_on(Gateway::start((lo, 0).into(), lo, &cert, &dir.path().join("c.sqlite3"), &page))
        .unwrap();
    let browser = Browser::start(&cert.spki_pin().unwrap());
    let base = format!("https://127.0.0.1:{}/", gateway.port());

    let mut load = Vec::new();
    for _ in 0..RUNS {
        browser.open("about:blank");
        browser.open(&base);
        let ms = browser.script("return performance.getEntriesByType('navigation')[0].loadEventEnd;");
        load.push(ms.as_f64().unwrap());
        // A load is seven requests; the gateway lets an address make 5 a second after a burst.
        std::thread::sleep(Duration::from_millis(1500));
    }
    // Claims are rate-limited to one every 5 s past a burst: fewer runs, waiting between them.
    let mut pairing = Vec::new();
    for _ in 0..PAIRINGS {
        browser.open("about:blank");
        let link = gateway.pair();
        let started = Instant::now();
        browser.open(&link);
        browser.wait_text("code", Duration::from_secs(10), |t| t.len() == 6);
        pairing.push(started.elapsed().as_secs_f64() * 1e3);
        // Past the claims' burst the gateway would say "too fast": as it should.
        std::thread::sleep(Duration::from_secs(5));
    }
    spread_header(&format!(
        "companion page, ms ({RUNS} loads, {PAIRINGS} pairings; loopback, headless Chromium)"
    ));
    spread_row("page load (navigation to load event)", load);
    spread_row("pairing (open link to code shown)", pairing);
    println!("refused by the gateway: {:?}", gateway.refused());
    drop(browser);
    remote();
    headset();
}

/// Mouth to ear through the page as headset: Chromium's fake microphone plays the test speech
/// once each time the page opens it; Bob records his speakers. The speech's start in Bob's
/// recording (found by correlation), against when the page's microphone started, is what a
/// listener meets: the page's capture and encoder, the socket, Ana's voice engine, the network
/// and Bob's jitter buffer.
fn headset() {
    use partyline_tests::audio::{align, read_mono, speech_wav};
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("bob.wav");
    let switches = vec![
        "--use-fake-ui-for-media-stream".to_owned(),
        "--use-fake-device-for-media-stream".to_owned(),
        format!("--use-file-for-fake-audio-capture={}%noloop", speech_wav().display()),
        "--autoplay-policy=no-user-gesture-required".to_owned(),
    ];
    let bob = ["--mic-device", "none", "--speaker-file", recording.to_str().unwrap()];
    let r = partyline_tests::companion::Remote::with(&bob, &switches);
    let recorded_from = r.bob.seen_or_wait(Duration::from_secs(20), "speaker file", |e| {
        e["event"] == "audio-started" && e["source"] == "speaker-file"
    })["at_ms"]
        .as_f64()
        .unwrap();
    r.browser.click("latch");
    let reference = read_mono(speech_wav());
    let mut latency = Vec::new();
    let mut correlation = Vec::new();
    for _ in 0..HEADSET_RUNS {
        r.browser.click("headset");
        r.ana.wait_for(Duration::from_secs(10), "headset", |e| {
            e["event"] == "headset" && e["device"].is_string()
        });
        let started =
            r.browser.wait_script("return window.headsetStats.micStartedAt", Duration::from_secs(5), |v| {
                v.is_number()
            });
        let started = started.as_f64().unwrap();
        std::thread::sleep(Duration::from_millis(reference.len() as u64 / 48 + 2000));
        let all = read_mono(&recording);
        let from = (((started - recorded_from) * 48.0).max(0.0) as usize).min(all.len());
        let heard = align(&reference, &all[from..]);
        latency.push(recorded_from + from as f64 / 48.0 + heard.lag_ms - started);
        correlation.push(heard.median_correlation);
        r.browser.click("headset");
        r.ana.wait_for(Duration::from_secs(10), "headset off", |e| {
            e["event"] == "headset" && e["device"].is_null()
        });
        std::thread::sleep(Duration::from_secs(1));
    }
    let each: Vec<String> = latency.iter().map(|l| format!("{l:.0}")).collect();
    spread_header("companion headset (fake microphone in headless Chromium, loopback)");
    spread_row("page microphone → other member's speaker file, ms", latency);
    println!("mouth to ear, each run (ms): {}", each.join(", "));
    let shown: Vec<String> = correlation.iter().map(|c| format!("{c:.2}")).collect();
    println!("correlation with the speech, each run (1 = identical): {}", shown.join(", "));
}

/// Push-to-talk from the page to `speaking` at another member, and memory per connected page.
fn remote() {
    let mut r = partyline_tests::companion::Remote::start();
    let mut latency = Vec::new();
    for _ in 0..PRESSES {
        let pressed = Instant::now();
        r.browser.press("ptt");
        r.bob_sees_ana(true, Duration::from_secs(10));
        latency.push(pressed.elapsed().as_secs_f64() * 1e3);
        r.browser.release();
        r.bob_sees_ana(false, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(300));
    }
    // The desktop's memory with one page connected, then with a second one (another tab).
    std::thread::sleep(Duration::from_secs(2));
    let one = rss_settled(&r.ana);
    r.browser.script("window.open(location.href); return true");
    std::thread::sleep(Duration::from_secs(5));
    let two = rss_settled(&r.ana);
    spread_header("companion remote, ms (loopback, debug or release as built)");
    spread_row("push-to-talk → speaking at another member", latency);
    println!(
        "desktop memory: {one} KiB with one page connected, {two} KiB with two: {} KiB for the second",
        two as i64 - one as i64
    );
}

/// Resident memory, the median of five readings a fifth of a second apart.
fn rss_settled(p: &partyline_tests::Proc) -> u64 {
    let mut readings: Vec<u64> = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(200));
            p.rss_kib()
        })
        .collect();
    readings.sort_unstable();
    readings[2]
}
