//! Voice through real audio devices: a private PulseAudio with a virtual microphone (a null sink
//! that speech is played into, captured from its monitor) and virtual speakers (null sinks,
//! recorded from their monitors), reached through ALSA's default device like any desktop's sound.

use std::time::Duration;

use partyline_tests::pulse::Pulse;
use partyline_tests::{LOOPBACK, Proc, audio};

/// Alice (microphone `mic`) and Bob (speakers `spk`), each with these extra arguments.
fn party(pulse: &Pulse, alice_extra: &[&str], bob_extra: &[&str]) -> (Proc, Proc) {
    let mic = pulse.microphone("mic");
    pulse.speaker("spk");
    pulse.speaker("nowhere");
    let mut alice_args = vec!["host", "--name", "alice"];
    alice_args.extend_from_slice(LOOPBACK);
    alice_args.extend_from_slice(alice_extra);
    let alice = Proc::start_env(
        "alice",
        &alice_args,
        &pulse.env_with(&[("PULSE_SOURCE", mic.as_str()), ("PULSE_SINK", "nowhere")]),
    );
    let link = alice.wait_event(Duration::from_secs(20), "link")["link"].as_str().unwrap().to_owned();
    let mut bob_args = vec!["join", link.as_str(), "--name", "bob", "--mic-device", "none"];
    bob_args.extend_from_slice(LOOPBACK);
    bob_args.extend_from_slice(bob_extra);
    let bob = Proc::start_env("bob", &bob_args, &pulse.env_with(&[("PULSE_SINK", "spk")]));
    bob.wait_event(Duration::from_secs(20), "joined");
    (alice, bob)
}

/// Speech played into Alice's microphone, recorded from Bob's speakers; both checked to be
/// alike.
fn speech_from_alice_reaches_bob(pulse: &Pulse, alice: &mut Proc, bob: &mut Proc) {
    let dir = tempfile::tempdir().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let recording = dir.path().join("spk.wav");
    let recorder = pulse.record("spk.monitor", &recording);
    let speech = audio::read_mono(audio::speech_wav());
    let seconds = speech.len() as f64 / f64::from(audio::RATE);
    let mut player = pulse.play("mic_in", audio::speech_wav());
    player.wait().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    recorder.stop();
    let talker = stats(alice);
    let listener = stats(bob);

    if let Ok(keep) = std::env::var("PARTYLINE_KEEP_AUDIO") {
        let _ = std::fs::copy(&recording, std::path::Path::new(&keep).join("devices-heard.wav"));
    }
    let heard = audio::read_mono(&recording);
    let a = audio::align(&speech, &heard);
    println!("devices: {a:?} over {seconds:.1} s; talker {talker}; listener {listener}");
    let errors: Vec<String> =
        alice.seen().iter().filter(|e| e["event"] == "error").map(|e| e.to_string()).collect();
    assert!(
        talker["input"].as_str().is_some(),
        "alice captured from the virtual microphone: {talker}\n{errors:?}\n{}",
        alice.stderr_tail()
    );
    assert!(a.median_correlation > 0.8, "{a:?}\n{}\n{}", alice.stderr_tail(), bob.stderr_tail());
    assert!(a.windows_found > 0.8, "{a:?}");
}

#[test]
fn microphone_and_speakers_are_switched_while_the_party_runs() {
    let _exclusive = partyline_tests::exclusive();
    let pulse = Pulse::start();
    // Both start with no devices: Alice cannot be heard, Bob hears nothing.
    let none = ["--mic-device", "none", "--speaker-device", "none"];
    let (mut alice, mut bob) = party(&pulse, &none, &none[2..]);
    assert_eq!(input(&mut alice), None);
    assert_eq!(stats(&mut bob)["output"], "none");
    // A device that is not there: said so, and nothing else changes.
    bob.send("/speakers no such speakers");
    let error = bob.wait_for(Duration::from_secs(10), "the speakers error", |e| e["event"] == "error");
    assert!(error["message"].as_str().unwrap().contains("the speakers stay as they were"), "{error}");
    assert_eq!(stats(&mut bob)["output"], "none");

    alice.send("/mic default");
    bob.send("/speakers default");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while input(&mut alice).is_none() || stats(&mut bob)["output"] != "default" {
        assert!(std::time::Instant::now() < deadline, "{}\n{}", alice.stderr_tail(), bob.stderr_tail());
        std::thread::sleep(Duration::from_millis(200));
    }
    speech_from_alice_reaches_bob(&pulse, &mut alice, &mut bob);
}

fn stats(p: &mut Proc) -> serde_json::Value {
    p.send("/stats");
    p.wait_event(Duration::from_secs(5), "voice-stats")
}

fn input(p: &mut Proc) -> Option<String> {
    stats(p)["input"].as_str().map(str::to_owned)
}

#[test]
fn a_vanishing_microphone_leaves_the_node_running_and_comes_back() {
    let _exclusive = partyline_tests::exclusive();
    let mut pulse = Pulse::start();
    let mic = pulse.microphone("mic");
    let env = pulse.env_with(&[("PULSE_SOURCE", mic.as_str())]);
    let mut alice_args = vec!["host", "--name", "alice", "--speaker-device", "none"];
    alice_args.extend_from_slice(LOOPBACK);
    let mut alice = Proc::start_env("alice", &alice_args, &env);
    let link = alice.wait_event(Duration::from_secs(20), "link")["link"].as_str().unwrap().to_owned();
    let mut bob = partyline_tests::join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(20), "joined");
    assert!(input(&mut alice).is_some(), "the microphone is open");

    // The sound server goes away, as when a USB headset is pulled.
    pulse.kill();
    let error = alice.wait_for(Duration::from_secs(10), "the microphone error", |e| {
        e["event"] == "error" && e["message"].as_str().is_some_and(|m| m.contains("listen-only"))
    });
    println!("device gone: {error}");
    assert_eq!(input(&mut alice), None, "listen-only");
    bob.send("still there?");
    alice.wait_for(Duration::from_secs(5), "bob's chat", |e| {
        e["event"] == "chat" && e["text"] == "still there?"
    });

    // It comes back: the node reopens it by itself.
    pulse.restart();
    pulse.microphone("mic");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while input(&mut alice).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the microphone was not reopened:\n{}",
            alice.stderr_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
