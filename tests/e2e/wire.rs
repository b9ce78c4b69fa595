//! Nothing readable on the wire: a party of three in a network namespace of its own chats a
//! marker, talks and moves a file full of another marker, while every packet in the namespace is
//! captured. No marker, display name or file name appears in any packet.

use std::time::Duration;

use partyline_tests::capture::Capture;
use partyline_tests::netns::Netns;
use partyline_tests::store::send_file;
use partyline_tests::talk::{member, voice_stats};
use partyline_tests::{LOOPBACK, Proc, audio, join_args};
use rand::Rng;

fn start(ns: &Netns, name: &str, args: &[&str]) -> Proc {
    let home = tempfile::Builder::new().prefix(&format!("pl-{name}-")).tempdir().unwrap();
    let path = home.path().to_path_buf();
    Proc::start_in(name, &path, args, Some(home), &ns.prefix())
}

#[test]
fn a_party_of_three_sends_nothing_readable() {
    let random =
        || -> String { (0..10).map(|_| char::from(b'a' + rand::rng().random_range(0..26))).collect() };
    let (tag, control) = (random(), format!("capture control {}", random()));
    let (ann, ben, cat) = (format!("ann{tag}"), format!("ben{tag}"), format!("cat{tag}"));
    let (chat, file_marker) = (format!("chat marker {tag}"), format!("file marker {tag}"));
    let file_name = format!("notes-{tag}.txt");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(&file_name);
    std::fs::write(&file, format!("{file_marker}\n").repeat((1 << 20) / (file_marker.len() + 1))).unwrap();

    let ns = Netns::new("wire");
    let capture = Capture::start(&ns, control.as_bytes());
    let speech = audio::long_speech_wav().to_str().unwrap();
    let mut args = vec!["host", "--name", &ann, "--mic-file", speech, "--speaker-device", "none"];
    args.extend_from_slice(LOOPBACK);
    let host = start(&ns, &ann, &args);
    let link = host.wait_event(Duration::from_secs(20), "link")["link"].as_str().unwrap().to_owned();
    let listen = ["--mic-device", "none", "--speaker-device", "none"];
    let mut b = start(&ns, &ben, &join_args(&link, &ben, &listen));
    let c = start(&ns, &cat, &join_args(&link, &cat, &listen));
    for p in [&b, &c] {
        p.wait_event(Duration::from_secs(30), "joined");
    }

    b.send(&chat);
    for p in [&host, &c] {
        p.wait_for(Duration::from_secs(10), "the chat marker", |e| e["event"] == "chat" && e["text"] == chat);
    }
    b.seen_or_wait(Duration::from_secs(10), "ann talking", |e| {
        e["event"] == "speaking" && e["name"] == ann.as_str() && e["on"] == true
    });
    let (ok, out) = send_file(&host, &mut b, &ben, &file, "accept:");
    assert!(ok, "{out:?}");
    assert_eq!(
        std::fs::read(b.home.join("data/downloads").join(&file_name)).unwrap(),
        std::fs::read(&file).unwrap()
    );
    // Two seconds of ann's voice reach ben (frames of 20 ms).
    let mut heard = 0;
    for _ in 0..40 {
        heard = member(&voice_stats(&mut b), &ann)["received"].as_u64().unwrap();
        if heard >= 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop((host, b, c));
    let captured = capture.stop();

    println!(
        "captured {} packets, {} bytes ({} cut short); ben heard {heard} voice frames from ann",
        captured.packets.len(),
        captured.bytes(),
        captured.truncated
    );
    assert_eq!(captured.truncated, 0, "every packet captured whole");
    assert!(captured.holding(control.as_bytes()) > 0, "the capture sees loopback traffic");
    assert!(heard >= 100, "voice flowed: {heard} frames");
    assert!(captured.bytes() > 2 << 20, "the file crossed the capture (twice, leaving and arriving)");
    for marker in [&chat, &file_marker, &file_name, &ann, &ben, &cat, &tag] {
        let found = captured.holding(marker.as_bytes());
        println!("{marker:?}: in {found} packets");
        assert_eq!(found, 0, "{marker:?} travels in clear");
    }
}
