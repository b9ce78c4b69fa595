//! The companion page as the player's headset, in headless Chromium with a fake microphone
//! playing the test speech: Bob records what Ana's page says (found by correlation with the
//! speech), and Bob's speech, decoded in the page, is loud there; switching back is one tap.
//! Without a codec the page says why and stays a remote.

use std::time::Duration;

use partyline_tests::audio::{align, read_mono, speech_wav};
use partyline_tests::companion::{Remote, looped_speech};

fn fake_microphone() -> Vec<String> {
    vec![
        "--use-fake-ui-for-media-stream".into(),
        "--use-fake-device-for-media-stream".into(),
        format!("--use-file-for-fake-audio-capture={}", speech_wav().display()),
        "--autoplay-policy=no-user-gesture-required".into(),
    ]
}

#[test]
fn the_page_is_the_player_s_microphone_and_speakers_until_switched_back() {
    let _turn = partyline_tests::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("bob.wav");
    let speech = looped_speech();
    let bob_voice = ["--mic-file", speech.to_str().unwrap(), "--speaker-file", recording.to_str().unwrap()];
    let mut r = Remote::with(&bob_voice, &fake_microphone());

    r.browser.click("headset");
    let on = r.ana.wait_event(Duration::from_secs(10), "headset");
    assert!(on["device"].is_string(), "{on}");
    r.browser.wait_script(
        "return document.getElementById('headset').getAttribute('aria-pressed')",
        Duration::from_secs(10),
        |v| v == "true",
    );
    // Push-to-talk held (latched) from the page while its microphone talks.
    r.browser.click("latch");
    r.bob_sees_ana(true, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(8));

    // Bob heard the page's microphone.
    let heard = align(&read_mono(speech_wav()), &read_mono(&recording));
    println!(
        "page microphone at bob: correlation {:.2}, {:.0}% of speech found",
        heard.median_correlation,
        heard.windows_found * 100.0
    );
    assert!(heard.median_correlation > 0.4, "{heard:?}");
    // And the page played Bob.
    let stats = r.browser.script("return window.headsetStats");
    println!("page speakers: {stats}");
    assert!(stats["decoded"].as_u64().unwrap() > 200, "{stats}");
    assert!(stats["loud"].as_u64().unwrap() > 50 && stats["peak"].as_f64().unwrap() > 0.05, "{stats}");

    // One tap: the voice is this machine's again.
    r.browser.click("headset");
    let off = r.ana.wait_for(Duration::from_secs(10), "headset off", |e| e["event"] == "headset");
    assert!(off["device"].is_null(), "{off}");
    let sent = r.browser.script("return window.headsetStats.sent").as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        r.browser.script("return window.headsetStats.sent").as_u64().unwrap(),
        sent,
        "nothing sent after"
    );
}

#[test]
fn without_a_codec_the_page_says_why_and_stays_a_remote() {
    let _turn = partyline_tests::exclusive();
    let r = Remote::start();
    r.browser.script("window.AudioEncoder = undefined; return true");
    r.browser.click("headset");
    let why = r.browser.wait_text("headset-why", Duration::from_secs(5), |t| !t.is_empty());
    assert!(why.contains("cannot encode voice") && why.contains("stays a remote"), "{why}");
    assert!(r.ana.try_wait_for(Duration::from_secs(1), |e| e["event"] == "headset").is_none());
    // Still a remote.
    r.browser.press("ptt");
    let mut r = r;
    r.bob_sees_ana(true, Duration::from_secs(10));
    r.browser.release();
}
