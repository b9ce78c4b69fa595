//! One member talking to another between two real processes: speech from a file on the talker's
//! side, a recording on the listener's, optionally through the impairment proxy; and what came out
//! of it (alignment, mouth-to-ear latency, both sides' voice statistics, bytes on the wire).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::audio::{self, Alignment};
use crate::impair::{Impairment, UdpProxy};
use crate::{LOOPBACK, Proc};

/// How a talk is set up.
pub struct Setup<'a> {
    pub speech: &'a Path,
    /// Put the impairment proxy between the two (the talker announces the proxy's address).
    pub impairment: Option<Impairment>,
    /// More arguments for the talker (`--voice-streams 1`, `--bitrate 32000`, ...).
    pub talker_args: Vec<String>,
    /// Hold push-to-talk the whole time (an open microphone) instead of voice activation.
    pub open_mic: bool,
    /// Where the recording goes.
    pub dir: &'a Path,
}

impl<'a> Setup<'a> {
    pub fn new(speech: &'a Path, dir: &'a Path) -> Self {
        Self { speech, impairment: None, talker_args: Vec::new(), open_mic: false, dir }
    }
}

/// What one talk gave.
pub struct Talk {
    pub alignment: Alignment,
    /// From the speech leaving the microphone file to it reaching the speaker file.
    pub mouth_to_ear_ms: f64,
    /// The listener's `voice-stats` near the end of the speech.
    pub listener: Value,
    /// The talker's, at the same time.
    pub talker: Value,
    pub recording: PathBuf,
    /// From talker to listener, through the proxy: while the speech played, and in the silence
    /// after it.
    pub wire: Option<(Rate, Rate)>,
}

/// Traffic over a window, as UDP payload (QUIC packets) and with IPv4 and UDP headers (28 bytes
/// per datagram).
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub kbps: f64,
    pub kbps_with_headers: f64,
    pub datagrams_per_s: f64,
}

impl Rate {
    pub fn between(before: (u64, u64), after: (u64, u64), seconds: f64) -> Self {
        let (bytes, datagrams) = ((after.0 - before.0) as f64, (after.1 - before.1) as f64);
        Self {
            kbps: bytes * 8.0 / 1000.0 / seconds,
            kbps_with_headers: (bytes + 28.0 * datagrams) * 8.0 / 1000.0 / seconds,
            datagrams_per_s: datagrams / seconds,
        }
    }
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn voice_stats(p: &mut Proc) -> Value {
    p.send("/stats");
    p.wait_event(Duration::from_secs(5), "voice-stats")
}

/// `name`'s entry in a `voice-stats` event.
pub fn member<'v>(stats: &'v Value, name: &str) -> &'v Value {
    stats["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {stats}"))
}

/// Until Bob hears Alice talking.
pub fn wait_talking(bob: &Proc) {
    bob.seen_or_wait(Duration::from_secs(10), "alice talking", |e| {
        e["event"] == "speaking" && e["name"] == "alice" && e["on"] == true
    });
}

/// Sleeps until `unix_ms` on the wall clock.
fn sleep_until(unix_ms: f64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1e3;
    if unix_ms > now {
        std::thread::sleep(Duration::from_secs_f64((unix_ms - now) / 1e3));
    }
}

fn audio_started(p: &Proc, source: &str) -> f64 {
    p.seen_or_wait(Duration::from_secs(10), source, |e| {
        e["event"] == "audio-started" && e["source"] == source
    })["at_ms"]
        .as_f64()
        .unwrap()
}

/// Alice (the talker, behind the impairment proxy when there is one) and Bob (the listener),
/// joined, each with extra arguments and environment. With an impairment, each one's voice
/// datagram endpoint is behind a proxy of its own too (announced to the other), so that voice
/// crosses one impaired proxy whichever of the two dialled the datagram path.
pub struct Pair {
    pub alice: Proc,
    pub bob: Proc,
    pub proxy: Option<UdpProxy>,
    /// In front of Alice's and Bob's voice datagram endpoints.
    pub voice_proxies: Option<(UdpProxy, UdpProxy)>,
}

impl Pair {
    /// What crossed the proxies from Alice to Bob so far: (bytes, datagrams).
    pub fn alice_to_bob(&self) -> Option<(u64, u64)> {
        let party = self.proxy.as_ref()?.stats().to_clients.read();
        let (a, b) = self.voice_proxies.as_ref()?;
        let (via_a, via_b) = (a.stats().to_clients.read(), b.stats().to_target.read());
        Some((party.0 + via_a.0 + via_b.0, party.1 + via_a.1 + via_b.1))
    }
}

/// A voice datagram endpoint behind a proxy: the arguments that bind and announce it.
fn voice_behind_proxy(imp: Impairment, seed: u64) -> (UdpProxy, [String; 4]) {
    let port = free_udp_port();
    let proxy =
        UdpProxy::start(format!("127.0.0.1:{port}").parse().unwrap(), Impairment { seed, ..imp }).unwrap();
    let args = [
        "--voice-port".into(),
        port.to_string(),
        "--announce-voice-port".into(),
        proxy.addr.port().to_string(),
    ];
    (proxy, args)
}

/// How each side of a [`Pair`] starts.
pub struct Sides<'a> {
    pub impairment: Option<Impairment>,
    pub open_mic: bool,
    pub alice_args: Vec<&'a str>,
    pub alice_env: Vec<(String, String)>,
    pub bob_args: Vec<&'a str>,
    pub bob_env: Vec<(String, String)>,
}

impl Pair {
    pub fn start(sides: Sides<'_>) -> Self {
        let voice = sides
            .impairment
            .map(|imp| (voice_behind_proxy(imp, imp.seed ^ 0xa), voice_behind_proxy(imp, imp.seed ^ 0xb)));
        let alice_port = free_udp_port();
        let proxy = sides
            .impairment
            .map(|imp| UdpProxy::start(format!("127.0.0.1:{alice_port}").parse().unwrap(), imp).unwrap());
        let listen = format!("/ip4/127.0.0.1/udp/{alice_port}/quic-v1");
        let announce = proxy.as_ref().map(|p| format!("/ip4/127.0.0.1/udp/{}/quic-v1", p.addr.port()));
        let mut alice_args = vec!["host", "--name", "alice", "--no-mdns", "--listen", &listen];
        match &announce {
            Some(announce) => alice_args.extend(["--announce", announce.as_str()]),
            None => alice_args.extend(["--listen", "/ip4/127.0.0.1/tcp/0"]),
        }
        if sides.open_mic {
            alice_args.extend(["--voice-mode", "ptt"]);
        }
        if let Some(((_, args), _)) = &voice {
            alice_args.extend(args.iter().map(String::as_str));
        }
        alice_args.extend(sides.alice_args);
        let mut alice = Proc::start_env("alice", &alice_args, &sides.alice_env);
        let link = alice.wait_event(Duration::from_secs(20), "link")["link"].as_str().unwrap().to_owned();
        if sides.open_mic {
            alice.send("/ptt down");
        }
        let mut bob_args = vec!["join", link.as_str(), "--name", "bob"];
        bob_args.extend_from_slice(LOOPBACK);
        if let Some((_, (_, args))) = &voice {
            bob_args.extend(args.iter().map(String::as_str));
        }
        bob_args.extend(sides.bob_args);
        let bob = Proc::start_env("bob", &bob_args, &sides.bob_env);
        bob.wait_event(Duration::from_secs(20), "joined");
        let voice_proxies = voice.map(|((a, _), (b, _))| (a, b));
        Self { alice, bob, proxy, voice_proxies }
    }
}

/// Alice plays the speech into the party; Bob records what he hears.
pub fn talk(setup: &Setup<'_>) -> Talk {
    let _exclusive = crate::exclusive();
    let recording = setup.dir.join("heard.wav");
    let speech_arg = setup.speech.to_str().unwrap();
    let mut alice_args = vec!["--mic-file", speech_arg, "--speaker-device", "none"];
    alice_args.extend(setup.talker_args.iter().map(String::as_str));
    let mut pair = Pair::start(Sides {
        impairment: setup.impairment,
        open_mic: setup.open_mic,
        alice_args,
        alice_env: Vec::new(),
        bob_args: vec!["--mic-device", "none", "--speaker-file", recording.to_str().unwrap()],
        bob_env: Vec::new(),
    });
    let heard_from = audio_started(&pair.bob, "speaker-file");
    let said_from = audio_started(&pair.alice, "mic-file");
    wait_talking(&pair.bob);

    let speech = audio::read_mono(setup.speech);
    let speech_ms = speech.len() as f64 * 1e3 / f64::from(audio::RATE);
    // Both sides' statistics while the talker still talks (buffer, jitter and the loss report
    // are about the last seconds).
    sleep_until(said_from);
    let start = pair.alice_to_bob();
    sleep_until(said_from + speech_ms - 200.0);
    let talker = voice_stats(&mut pair.alice);
    let listener = voice_stats(&mut pair.bob);
    sleep_until(said_from + speech_ms);
    let end = pair.alice_to_bob();
    // Then three seconds of silence from half a second after the speech.
    sleep_until(said_from + speech_ms + 500.0);
    let quiet = pair.alice_to_bob();
    sleep_until(said_from + speech_ms + 3500.0);
    let quiet_end = pair.alice_to_bob();
    let wire = start.zip(end).zip(quiet.zip(quiet_end)).map(|((start, end), (quiet, quiet_end))| {
        (Rate::between(start, end, speech_ms / 1e3), Rate::between(quiet, quiet_end, 3.0))
    });
    pair.bob.send("/leave");
    pair.bob.wait_exit(Duration::from_secs(10));
    let alignment = audio::align(&speech, &audio::read_mono(&recording));
    if let Ok(keep) = std::env::var("PARTYLINE_KEEP_AUDIO") {
        let _ = std::fs::copy(&recording, Path::new(&keep).join(format!("heard-{}.wav", std::process::id())));
    }
    Talk {
        mouth_to_ear_ms: alignment.lag_ms - (said_from - heard_from),
        alignment,
        listener,
        talker,
        recording,
        wire,
    }
}
