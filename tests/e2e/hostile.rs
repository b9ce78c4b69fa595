//! A hostile peer connects to a party's host and sends garbage, oversize frames, messages it may not
//! send, floods, and too many streams. The host drops and counts all of it, stays up, keeps its
//! memory bounded, and the party goes on.

use std::time::Duration;

use partyline_protocol::content::{Entry, EntryKind, MIN_PIECE, Manifest};
use partyline_protocol::wire::Presence::{Away, Online};
use partyline_protocol::wire::{self, Message};
use partyline_protocol::{ContentId, JoinLink, PartyId};
use partyline_tests::attacker::{Attacker, framed};
use partyline_tests::store::panel_has;
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
    joins_as_mallory(&alice, &mallory, &link);
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
    // Each offer shown has its Decline button (mallory serves no manifests, so none can be accepted).
    let accepts = panel["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"].as_str().is_some_and(|id| id.starts_with("decline:")))
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

/// A member's requests that cost the host more to answer than to send are budgeted per member: a
/// chat page (tens of KiB) for a `ChatSync` of a few bytes, the roster to everyone for each
/// presence change. Mallory asks for the same page 100 times and flips her presence 90 times.
#[test]
fn a_member_asking_for_pages_and_flipping_presence_is_held_to_its_budget() {
    let (mut alice, link) = host("alice", &[]);
    // A history whose first page is about 60 KB.
    let line = "x".repeat(1500);
    for i in 0..40 {
        alice.send(&format!("{i:02} {line}"));
    }
    alice.wait_for(Duration::from_secs(10), "the history", |e| {
        e["event"] == "chat" && e["text"].as_str().is_some_and(|t| t.starts_with("39 "))
    });
    let mut bob = join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(10), "joined");
    let mallory = Attacker::at(&alice, &link);
    joins_as_mallory(&alice, &mallory, &link);
    std::thread::sleep(Duration::from_secs(1));
    let (before, heard_before) = (count(&alice.stats(), "dropped_rate_limited"), mallory.heard());

    // 190 frames on one stream: within the stream's own limit (a burst of 200).
    let syncs = (0..100).map(|_| wire::frame(&Message::ChatSync { after: 0 }));
    let flips = (0..90).map(|i| wire::frame(&Message::Presence(if i % 2 == 0 { Away } else { Online })));
    mallory.send_party(link.parse::<JoinLink>().unwrap().owner(), syncs.chain(flips));
    std::thread::sleep(Duration::from_secs(3));

    let dropped = count(&alice.stats(), "dropped_rate_limited") - before;
    let heard = mallory.heard() - heard_before;
    let flips_seen = bob.seen().iter().filter(|e| e["event"] == "presence" && e["name"] == "mallory").count();
    println!(
        "100 page requests and 90 presence flips: host sent mallory {heard} bytes, bob saw {flips_seen} flips, \
         {dropped} requests dropped over mallory's budget"
    );
    // Budgets: 8 pages then one a second, 20 flips then two a second (3 s here, with slack).
    assert!((5 * 60_000..16 * 60_000).contains(&heard), "pages answered within the budget: {heard} bytes");
    assert!((15..=30).contains(&flips_seen), "presence changes passed on within the budget: {flips_seen}");
    assert!((140..=170).contains(&dropped), "the rest dropped and counted: {dropped}");

    // Bob, within his budget, is answered as always; the party goes on.
    bob.send("/away");
    alice.wait_for(Duration::from_secs(5), "bob away", |e| e["event"] == "presence" && e["name"] == "bob");
}

/// A file offer is shown by what the content is: its manifest, asked of the sender and checked
/// against the id, gives the name and size; what the offer message says of it is not shown. An
/// offer whose manifest cannot be had can only be declined.
#[test]
fn a_file_offer_shows_what_the_content_is_not_what_the_offer_says() {
    let (alice, link) = host("alice", &[]);
    let owner = link.parse::<JoinLink>().unwrap().owner();
    let mallory = Attacker::at(&alice, &link);
    // What mallory really offers: a 10 MiB program.
    let entry = Entry { path: "payload.exe".into(), kind: EntryKind::File { size: 10 << 20, mode: 0o755 } };
    let manifest = Manifest { piece_size: MIN_PIECE, pieces_root: [0; 32], entries: vec![entry] };
    let (real, ghost) = (manifest.id(), ContentId([7; 32]));
    mallory.serve_lies(vec![(real, manifest.encode(), vec![0; 32])]);
    joins_as_mallory(&alice, &mallory, &link);

    let offer = |id: ContentId, words: &str| {
        let data = format!("offer\t{id}\t1200\t1\t{words}").into_bytes();
        wire::frame(&Message::Plugin { plugin: "file-transfer".into(), data })
    };
    mallory.send_party(owner, [offer(real, "holiday.jpg"), offer(ghost, "birthday.jpg")]);
    let checked = |e: &serde_json::Value| {
        panel_has(e, "file-transfer", "payload.exe") && panel_has(e, "file-transfer", "cannot be checked")
    };
    let panel = alice.wait_for(Duration::from_secs(20), "both offers checked", checked);
    let said = panel.to_string();
    println!("alice's panel: {said}");
    assert!(said.contains("payload.exe (10.0 MiB) from mallory"), "the manifest's name and size: {said}");
    assert!(
        !said.contains("holiday") && !said.contains("birthday"),
        "the offer's words are not shown: {said}"
    );
    let buttons: Vec<&str> =
        panel["elements"].as_array().unwrap().iter().filter_map(|e| e["id"].as_str()).collect();
    assert!(buttons.contains(&format!("accept:{real}").as_str()), "{buttons:?}");
    assert!(!buttons.contains(&format!("accept:{ghost}").as_str()), "an unchecked offer cannot be accepted");
    assert!(buttons.contains(&format!("decline:{ghost}").as_str()), "{buttons:?}");
}

/// `mallory` joins the party of `link`, which `host` owns, and the host has seen her in.
fn joins_as_mallory(host: &partyline_tests::Proc, mallory: &Attacker, link: &str) {
    mallory.join(&link.parse().unwrap(), "mallory");
    host.seen_or_wait(Duration::from_secs(10), "mallory joins", |e| {
        e["event"] == "member-joined" && e["name"] == "mallory"
    });
}
