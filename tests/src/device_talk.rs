//! One member talking to another through real audio devices, as players use Partyline: speech
//! played into a virtual microphone (a PulseAudio null sink whose monitor Alice captures from),
//! heard on Bob's virtual speakers (a null sink), both recorded from their monitors; optionally
//! through the impairment proxy. What came out: mouth-to-ear latency, how steady it was over the
//! call, the recording (for PESQ-WB) and both sides' statistics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::audio::{self, Alignment};
use crate::impair::Impairment;
use crate::pulse::Pulse;
use crate::talk::{Pair, Rate, Sides, voice_stats};

/// A private PulseAudio with Alice's microphone (`mic`), Bob's speakers (`spk`) and speakers
/// nobody listens to (`nowhere`).
pub struct Devices {
    pub pulse: Pulse,
    pub mic: String,
    /// How much later the second of two recorders started sees the same sound (ms, median of 3;
    /// 0 until measured).
    pub recorder_skew_ms: f64,
}

impl Devices {
    pub fn start() -> Self {
        let pulse = Pulse::start();
        let mic = pulse.microphone("mic");
        pulse.speaker("spk");
        pulse.speaker("nowhere");
        Self { pulse, mic, recorder_skew_ms: 0.0 }
    }

    /// Measures [`Self::recorder_skew_ms`], for latencies from two recordings.
    pub fn measure_skew(&mut self) {
        let pulse = &self.pulse;
        // The first three seconds of the speech, recorded twice at once.
        let dir = tempfile::tempdir().unwrap();
        let clip: Vec<f32> = audio::read_mono(audio::speech_wav()).into_iter().take(3 * 48_000).collect();
        let clip_path = dir.path().join("clip.wav");
        audio::write_mono(&clip_path, &clip);
        let mut skews: Vec<f64> = (0..3)
            .map(|_| {
                let (a, b) = record_pair(pulse, "mic_in.monitor", "mic_in.monitor", &clip_path);
                audio::align(&clip, &b).lag_ms - audio::align(&clip, &a).lag_ms
            })
            .collect();
        skews.sort_by(f64::total_cmp);
        self.recorder_skew_ms = skews[1];
    }

    /// Alice's environment: captures from the virtual microphone, plays nowhere.
    pub fn talker_env(&self) -> Vec<(String, String)> {
        self.pulse.env_with(&[("PULSE_SOURCE", self.mic.as_str()), ("PULSE_SINK", "nowhere")])
    }

    /// Bob's environment: plays on the speakers that are recorded.
    pub fn listener_env(&self) -> Vec<(String, String)> {
        self.pulse.env_with(&[("PULSE_SINK", "spk")])
    }
}

/// Records `first` and `second` while `wav` is played into the microphone; returns both
/// recordings.
fn record_pair(pulse: &Pulse, first: &str, second: &str, wav: &Path) -> (Vec<f32>, Vec<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let (ra, rb) = (pulse.record(first, &a), pulse.record(second, &b));
    std::thread::sleep(Duration::from_millis(500));
    pulse.play("mic_in", wav).wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    ra.stop();
    rb.stop();
    (audio::read_mono(&a), audio::read_mono(&b))
}

/// What one talk through devices gave.
pub struct DeviceTalk {
    /// Where the speech is in Bob's speakers' recording, window by window.
    pub heard: Alignment,
    /// From the speech entering Alice's microphone to it leaving Bob's speakers, at its start.
    pub mouth_to_ear_ms: f64,
    /// Bob's speakers' recording.
    pub recording: PathBuf,
    pub listener: Value,
    pub talker: Value,
    /// Talker to listener through the proxy, while the speech played.
    pub wire: Option<Rate>,
    /// What PulseAudio said of its streams' latencies during the call.
    pub stream_latencies: Vec<String>,
}

impl DeviceTalk {
    /// The delay over each `seconds` of the call, mouth to ear (ms).
    pub fn delays_over(&self, seconds: f64) -> Vec<f64> {
        let offset = self.mouth_to_ear_ms - self.heard.lag_ms;
        self.heard.lags_over(seconds).into_iter().map(|lag| lag + offset).collect()
    }
}

/// Alice talks (`speech` played into her microphone), Bob listens on his speakers.
pub fn device_talk(
    devices: &Devices,
    speech: &Path,
    impairment: Option<Impairment>,
    open_mic: bool,
    dir: &Path,
) -> DeviceTalk {
    let mut pair = Pair::start(Sides {
        impairment,
        open_mic,
        alice_args: Vec::new(),
        alice_env: devices.talker_env(),
        bob_args: vec!["--mic-device", "none"],
        bob_env: devices.listener_env(),
    });
    // Streams open and the first loss reports settle.
    std::thread::sleep(Duration::from_secs(1));
    let reference = audio::read_mono(speech);
    let speech_ms = reference.len() as f64 * 1e3 / f64::from(audio::RATE);
    let recording = dir.join("heard.wav");
    let said_path = dir.join("said.wav");
    let (said_rec, heard_rec) =
        (devices.pulse.record("mic_in.monitor", &said_path), devices.pulse.record("spk.monitor", &recording));
    std::thread::sleep(Duration::from_millis(500));
    let start = pair.alice_to_bob();
    let mut player = devices.pulse.play("mic_in", speech);
    std::thread::sleep(Duration::from_secs_f64((speech_ms - 300.0).max(0.0) / 1e3));
    let talker = voice_stats(&mut pair.alice);
    let listener = voice_stats(&mut pair.bob);
    let stream_latencies = devices.pulse.stream_latencies();
    player.wait().unwrap();
    let end = pair.alice_to_bob();
    std::thread::sleep(Duration::from_millis(1500));
    said_rec.stop();
    heard_rec.stop();
    if let Ok(keep) = std::env::var("PARTYLINE_KEEP_AUDIO") {
        let _ = std::fs::copy(
            &recording,
            Path::new(&keep).join(format!("device-heard-{}.wav", std::process::id())),
        );
    }
    let said = audio::align(&reference, &audio::read_mono(&said_path));
    let heard = audio::align(&reference, &audio::read_mono(&recording));
    DeviceTalk {
        mouth_to_ear_ms: heard.lag_ms - said.lag_ms - devices.recorder_skew_ms,
        heard,
        recording,
        listener,
        talker,
        wire: start.zip(end).map(|(s, e)| Rate::between(s, e, speech_ms / 1e3)),
        stream_latencies,
    }
}
