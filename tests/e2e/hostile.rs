//! A hostile peer connects to a party's host and sends garbage, oversize frames, messages it may not
//! send, floods, and too many streams. The host drops and counts all of it, stays up, keeps its
//! memory bounded, and the party goes on.

use std::time::Duration;

use partyline_protocol::wire::{self, Message};
use partyline_protocol::{JoinLink, PartyId};
use partyline_tests::attacker::{Attacker, framed};
use partyline_tests::{count, host, join};

struct DumpOnPanic(std::path::PathBuf);
impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("HOST STDERR:\n{}", std::fs::read_to_string(&self.0).unwrap_or_default());
        }
    }
}

/// A hostile client sends names as it likes (an honest one normalises them first): invisible and
/// reordering characters are refused, and a name that looks like a member's is admitted only with
/// a suffix that tells them apart.
#[test]
fn names_cannot_pass_for_a_members() {
    let (alice, link) = host("alice", &[]);
    let invite = link.parse::<JoinLink>().unwrap();
    for name in ["alice\u{200B}", "\u{202E}ecila", "ａlice"] {
        assert!(!Attacker::at(&alice, &link).try_join(&invite, name), "{name:?} got in");
    }
    // Cyrillic а and upper case: both look like alice. (Members stay while their peers live.)
    let mut members = Vec::new();
    for (name, shown) in [("\u{430}lice", "\u{430}lice (2)"), ("ALICE", "ALICE (3)")] {
        let attacker = Attacker::at(&alice, &link);
        assert!(attacker.try_join(&invite, name), "{name:?} was refused");
        alice.wait_for(Duration::from_secs(10), shown, |e| {
            e["event"] == "member-joined" && e["name"] == shown
        });
        members.push(attacker);
    }
}

#[test]
fn hostile_peer_is_dropped_and_counted_and_the_party_goes_on() {
    let (mut alice, link) = host("alice", &[]);
    let mut bob = join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(10), "joined");
    let owner = link.parse::<JoinLink>().unwrap().owner();
    let attacker = Attacker::at(&alice, &link);
    let _guard = DumpOnPanic(alice.home.join("alice.stderr"));
    let rss_before = alice.rss_kib();

    // Garbage with valid framing: random bytes, a wrong version, trailing junk, an empty frame.
    let mut garbage: Vec<Vec<u8>> = (0..20u8).map(|i| framed(&[1, 200 + i % 50, i, 0xff, 0x13, i])).collect();
    garbage.push(framed(&[9, 0, 0]));
    let mut junk = wire::encode(&Message::Leave);
    junk.extend_from_slice(b"junk");
    garbage.push(framed(&junk));
    garbage.push(0u32.to_be_bytes().to_vec());
    attacker.send_party(owner, garbage);

    // Well-formed messages a stranger may not send: host-only ones, and a member's without joining.
    let not_allowed = [
        Message::PartyEnded,
        Message::Kicked { banned: false },
        Message::ChatSubmit { nonce: 1, text: "let me in".into() },
        Message::Hello { party: PartyId([7; 16]) },
    ];
    attacker.send_party(owner, not_allowed.iter().map(wire::frame));

    // Oversize: a frame announcing 16 MiB is refused before anything is read.
    attacker.send_party(owner, [(16u32 << 20).to_be_bytes().to_vec(), vec![0; 1024]]);

    // Big garbage frames, 64 KiB each, 16 MiB in all: memory must not follow.
    let big = framed(&vec![0xAB; wire::MAX_MESSAGE_LEN]);
    for _ in 0..8 {
        attacker.send_party(owner, std::iter::repeat_n(big.clone(), 32));
    }

    // A flood of small messages: beyond the per-stream rate, they are dropped.
    attacker.send_party(owner, std::iter::repeat_n(wire::frame(&Message::Leave), 3000));

    // Too many streams at once: the host keeps a few per peer and refuses the rest.
    let alive = attacker.open_many(owner, 12);
    assert!(alive <= 2, "the host kept {alive} streams from one stranger open");

    let after = alice.stats();
    println!("hostile peer, host's counters: {after}");
    assert!(count(&after, "dropped_malformed") >= 20, "{after}");
    assert!(count(&after, "dropped_oversize") >= 1, "{after}");
    assert!(count(&after, "dropped_unauthorized") >= 4, "{after}");
    assert!(count(&after, "dropped_rate_limited") >= 1000, "{after}");
    assert!(count(&after, "streams_refused") >= 1, "{after}");

    let rss_after = alice.rss_kib();
    println!("host resident memory: {rss_before} KiB before, {rss_after} KiB after 16 MiB of hostile input");
    assert!(
        rss_after < rss_before + 24 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB under hostile input"
    );

    // The party is unharmed: chat still flows both ways.
    bob.send("still here?");
    alice.wait_for(Duration::from_secs(5), "bob's chat", |e| {
        e["event"] == "chat" && e["text"] == "still here?"
    });
    alice.send("yes");
    bob.wait_for(Duration::from_secs(5), "alice's chat", |e| e["event"] == "chat" && e["text"] == "yes");
    assert_eq!(
        partyline_tests::roster(&alice.seen()),
        ["alice", "bob"],
        "the attacker never became a member"
    );
}

/// A member floods the host's file-transfer plugin with offers: the node passes on what one
/// member's plugins may send (a burst of 100, then 50 a second) and drops the rest, and the
/// plugin shows at most 8 unanswered offers from one member, declining the others unseen.
#[test]
fn a_member_flooding_plugin_messages_is_held_to_its_budget_and_its_offers_capped() {
    let (mut alice, link) = host("alice", &[]);
    let mut bob = join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(10), "joined");
    let mallory = Attacker::at(&alice, &link);
    mallory.join(&link.parse().unwrap(), "mallory");
    alice.seen_or_wait(Duration::from_secs(10), "mallory joins", |e| {
        e["event"] == "member-joined" && e["name"] == "mallory"
    });
    let before = count(&alice.stats(), "dropped_rate_limited");

    // 190 offers on one stream: within the stream's own limit (a burst of 200), over the member's.
    let offers = (0..190u32).map(|i| {
        let data = format!("offer\t{i:064x}\t1000\t1\tphoto-{i}.jpg").into_bytes();
        wire::frame(&Message::Plugin { plugin: "file-transfer".into(), data })
    });
    mallory.send_party(link.parse::<JoinLink>().unwrap().owner(), offers);

    let noticed = |e: &serde_json::Value| {
        e["event"] == "plugin-panel" && e.to_string().contains("offered too many files at once")
    };
    alice.wait_for(Duration::from_secs(10), "the flood noticed", noticed);
    // The node has long handled the 190 messages by now; the plugin may still be at them.
    std::thread::sleep(Duration::from_secs(1));
    let dropped = count(&alice.stats(), "dropped_rate_limited") - before;
    let declined = |e: &serde_json::Value| -> u64 {
        let said = e.to_string();
        said.split("at once: ").nth(1).and_then(|r| r.split(' ').next()).map_or(0, |n| n.parse().unwrap())
    };
    // Every offer is shown, declined or dropped, and the panel ends up saying so.
    let panel = alice.seen_or_wait(Duration::from_secs(10), "the panel accounts for every offer", |e| {
        noticed(e) && 8 + declined(e) + dropped == 190
    });
    let accepts = panel["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"].as_str().is_some_and(|id| id.starts_with("accept:")))
        .count();
    let declined = declined(&panel);
    println!(
        "offers shown: {accepts} of 190, {declined} declined unseen; plugin messages over mallory's budget: {dropped}"
    );
    assert_eq!(accepts, 8, "unanswered offers from one member are capped");
    assert!((50..=100).contains(&dropped), "the member's plugin budget cut the flood: {dropped} dropped");

    bob.send("still here?");
    alice.wait_for(Duration::from_secs(5), "bob's chat", |e| {
        e["event"] == "chat" && e["text"] == "still here?"
    });
}
