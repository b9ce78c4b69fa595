//! The one timing test that must run with nothing beside it: the delay of speech through real
//! audio devices holds steady. It is its own test binary because cargo runs test binaries one
//! after another, never two at once; within the `e2e` binary, tests run two at a time.

use partyline_tests::audio;
use partyline_tests::device_talk::{Devices, device_talk};
use partyline_tests::talk::member;

/// A clean call through devices, with the default settings (voice activation): the speech is
/// heard, and the delay holds: every talk spurt is heard as long after it was spoken as the one
/// before, and the delay moves only in pitch periods. Before play-out followed the talker's clock
/// it wandered over ~170 ms within such a call (95th minus 5th percentile of 0.4 s windows), then
/// 16 ms with steps of 16-22 ms where spurts started; since, 3 to 13 ms in debug builds on this
/// 2-core machine (the steps left are a spurt's look-back being caught up on). With both cores
/// busy it rose to 20-100 ms: a timing test, so it is a test binary of its own (cargo runs test
/// binaries one after another, so nothing else runs beside it).
#[test]
fn speech_from_a_microphone_reaches_the_other_speakers_at_a_steady_delay() {
    let _exclusive = partyline_tests::exclusive();
    let devices = Devices::start();
    let dir = tempfile::tempdir().unwrap();
    let t = device_talk(&devices, audio::long_speech_wav(), None, false, dir.path());
    let alice = member(&t.listener, "alice");
    let (spread, step) = t.heard.steadiness(0.4);
    println!(
        "devices, clean: {:?}; delay spread {spread:.1} ms, largest step {step:.1} ms; delays {:?}; talker {}; listener {alice}",
        t.heard,
        t.delays_over(0.4).iter().map(|d| d.round()).collect::<Vec<_>>(),
        t.talker,
    );
    println!("{}", t.stream_latencies.join("\n"));
    assert!(t.talker["input"].as_str().is_some(), "alice captured from the virtual microphone: {}", t.talker);
    assert!(t.heard.median_correlation > 0.8 && t.heard.windows_found > 0.8, "{:?}", t.heard);
    assert!(spread <= 20.0, "the delay spread over {spread:.1} ms within a clean call (step {step:.1} ms)");
}
