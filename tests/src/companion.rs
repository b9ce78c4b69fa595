//! The companion page as the player's remote, set up for tests and benchmarks: Ana hosts with
//! the companion plugin on (push-to-talk, talking from a file), Bob is in her party, and a
//! headless Chromium paired with Ana's desktop shows the remote.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Proc;
use crate::browser::Browser;
use partyline::companion::cert;
use serde_json::Value;

/// Speech that does not run out while a test holds push-to-talk: the test speech, over and over.
pub fn looped_speech() -> PathBuf {
    let out = crate::audio::speech_wav().with_file_name("speech-looped-v1.wav");
    if !out.exists() {
        let once = crate::audio::read_mono(crate::audio::speech_wav());
        let looped: Vec<f32> = std::iter::repeat_n(once, 30).flatten().collect();
        let tmp = out.with_extension(format!("{}.wav", std::process::id()));
        crate::audio::write_mono(&tmp, &looped);
        std::fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// Ana (companion plugin on, push-to-talk, talking from a file) with Bob in her party, and a
/// browser paired with Ana's desktop showing the remote.
pub struct Remote {
    pub ana: Proc,
    pub bob: Proc,
    pub browser: Browser,
    /// Ana's home, kept while she runs.
    pub home: tempfile::TempDir,
}

impl Remote {
    pub fn start() -> Self {
        Self::with_bob(&[])
    }

    /// The same, Bob started with `extra` arguments too.
    pub fn with_bob(extra: &[&str]) -> Self {
        let mut bob = vec!["--mic-device", "none", "--speaker-device", "none"];
        bob.extend_from_slice(extra);
        Self::with(&bob, &[])
    }

    /// Bob's voice arguments (`--mic-…`, `--speaker-…`) as given, and the browser started with
    /// `browser` switches too.
    pub fn with(bob_voice: &[&str], browser: &[String]) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("config")).unwrap();
        std::fs::write(home.path().join("config/settings.toml"), "[companion]\nport = 0\n").unwrap();
        assert!(crate::plugins::plugins(home.path(), &["enable", "companion"]).0);
        let speech = looped_speech();
        let mut args = vec!["host", "--name", "ana"];
        args.extend_from_slice(crate::LOOPBACK);
        let voice =
            ["--mic-file", speech.to_str().unwrap(), "--speaker-device", "none", "--voice-mode", "ptt"];
        args.extend_from_slice(&voice);
        let mut ana = Proc::start_in("ana", home.path(), &args, None, &[]);
        let link = ana.wait_event(Duration::from_secs(20), "link")["link"].as_str().unwrap().to_owned();
        let bob = crate::join("bob", &link, bob_voice);
        bob.wait_event(Duration::from_secs(20), "joined");
        ana.wait_for(Duration::from_secs(10), "bob", |e| e["event"] == "member-joined");

        let browser = pair(&mut ana, home.path(), browser);
        let members = "return document.querySelectorAll('#members li').length";
        browser.wait_script(members, Duration::from_secs(10), |n| n == 2);
        Self { ana, bob, browser, home }
    }

    /// Bob's next `speaking` event for Ana.
    pub fn bob_sees_ana(&mut self, on: bool, timeout: Duration) -> Value {
        self.bob.wait_for(timeout, "ana speaking", |e| {
            e["event"] == "speaking" && e["name"] == "ana" && e["on"] == on
        })
    }
}

/// Pairs a browser with the desktop in `home` through its commands; the page shows the remote.
fn pair(ana: &mut Proc, home: &Path, switches: &[String]) -> Browser {
    ana.send("/pair-device");
    let url =
        ana.wait_event(Duration::from_secs(10), "companion-pairing")["url"].as_str().unwrap().to_owned();
    let cert = cert::load_or_make(&home.join("data/companion"), &cert::lan_ips()).unwrap();
    let browser = Browser::start_with(&cert.spki_pin().unwrap(), switches);
    browser.open(&url);
    let code = browser.wait_text("code", Duration::from_secs(20), |t| t.len() == 6);
    ana.send(&format!("/confirm-device {code}"));
    ana.wait_event(Duration::from_secs(10), "device-paired");
    browser.wait_text("link", Duration::from_secs(10), |t| t.contains("Connected"));
    ana.wait_event(Duration::from_secs(10), "device-connected");
    browser
}

/// Whether the button with this id shows as pressed (`aria-pressed`).
pub fn pressed(browser: &Browser, id: &str) -> String {
    let script = format!("return document.getElementById('{id}').getAttribute('aria-pressed')");
    browser.script(&script).as_str().unwrap_or_default().to_owned()
}
