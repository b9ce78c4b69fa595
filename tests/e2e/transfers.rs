//! Games and files between members, with the real binary and its bundled plugins: a generated
//! 1 GiB game shared by one member and fetched by a second (one provider) then a third (two
//! providers at once) through `partyline games …`; a receiver killed with `kill -9` again and
//! again that resumes each time; a lying member whose pieces do not match (dropped, the download
//! completes from the others); hostile manifests (refused, nothing written outside); a full disk
//! (a clear error, the library untouched); a file sent with `partyline send`, accepted and
//! declined.

use std::path::PathBuf;
use std::time::Duration;

use partyline::{Node, NodeEvent};
use partyline_protocol::content::{Entry, EntryKind, MIN_PIECE, Manifest};
use partyline_protocol::{ContentId, InviteTerms};
use partyline_tests::games::{self, content_id};
use partyline_tests::store::{FeedServer, games_cli, library, panel_has, send_file, wait_offered};
use partyline_tests::{Proc, host, join, join_args, run_cli};
use serde_json::Value;

const GIB: u64 = 1 << 30;

#[test]
fn a_game_goes_from_one_member_then_from_two_at_once_and_lands_whole() {
    // Gigabytes through three processes: not beside the timing-sensitive tests.
    let _exclusive = partyline_tests::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let game = games::generate(dir.path(), "Star Frontier", GIB, 1);
    let id = content_id(&game);

    let (alice, link) = host("alice", &[]);
    let bob = join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(20), "joined");

    let (ok, out) = games_cli(&alice, &["share", game.to_str().unwrap()], Duration::from_secs(120));
    assert!(ok, "{out:?}");
    let shared = out.iter().find(|e| e["event"] == "shared").expect("shared");
    assert_eq!(shared["id"], id.to_string());
    wait_offered(&bob, "Star Frontier");

    // Bob: from alice alone, with progress events, complete only once verified.
    let (ok, out) = games_cli(&bob, &["get", "Star Frontier"], Duration::from_secs(600));
    assert!(ok, "{:?}", out.iter().rev().take(5).collect::<Vec<_>>());
    let progress: Vec<&Value> = out.iter().filter(|e| e["event"] == "transfer").collect();
    assert!(progress.len() >= 2, "{out:?}");
    assert!(progress.iter().all(|e| e["total"] == 0 || e["total"] == games::size_of(&game)));
    assert_eq!(progress.iter().filter_map(|e| e["peers"].as_u64()).max(), Some(1));
    assert_eq!(progress.iter().filter_map(|e| e["direct"].as_u64()).max(), Some(1), "over a direct channel");
    let complete = out.iter().position(|e| e["event"] == "transfer-complete").expect("complete");
    assert!(out[..complete].iter().all(|e| e["event"] != "transfer" || e["done"].as_u64() <= Some(GIB * 2)));
    assert_eq!(content_id(&library(&bob, "Star Frontier")), id, "bob's copy is the same game");

    // Carl: alice and bob both have it now, and both serve parts of it.
    let carl = join("carl", &link, &[]);
    carl.wait_event(Duration::from_secs(20), "joined");
    wait_offered(&carl, "Star Frontier");
    let (ok, out) = games_cli(&carl, &["get", "star frontier"], Duration::from_secs(600));
    assert!(ok, "{:?}", out.iter().rev().take(5).collect::<Vec<_>>());
    let most =
        |key: &str| out.iter().filter(|e| e["event"] == "transfer").filter_map(|e| e[key].as_u64()).max();
    assert_eq!(most("peers"), Some(2), "from both");
    assert_eq!(most("direct"), Some(2), "both over direct channels");
    assert_eq!(content_id(&library(&carl, "Star Frontier")), id);
    // Nothing half-written is left beside it.
    let partial = carl.home.join("data/transfers/partial");
    assert_eq!(std::fs::read_dir(&partial).unwrap().count(), 0, "{}", partial.display());
}

#[test]
fn a_receiver_killed_again_and_again_resumes_to_the_same_tree() {
    let _exclusive = partyline_tests::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let game = games::generate(dir.path(), "Long Road", GIB, 2);
    let id = content_id(&game);
    // Alice uploads at 40 MB/s: the download takes ~25 s, long enough to be cut often. Bob takes
    // the party connection only (the other tests go over direct channels).
    let (alice, link) = host("alice", &["--upload-limit", "40"]);
    let bob_home = tempfile::tempdir().unwrap();
    let bob_args = join_args(&link, "bob", &["--no-direct-transfers"]);
    let start_bob = || {
        let bob = Proc::start_in("bob", bob_home.path(), &bob_args, None, &[]);
        bob.wait_event(Duration::from_secs(30), "joined");
        bob
    };
    let mut bob = start_bob();
    let (ok, out) = games_cli(&alice, &["share", game.to_str().unwrap()], Duration::from_secs(120));
    assert!(ok, "{out:?}");
    wait_offered(&bob, "Long Road");
    bob.send("/get Long Road");

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("kill points seeded with {seed}");
    let mut rng = seed | 1;
    let mut last_done = 0u64;
    for round in 0..6 {
        // Somewhere in the next 8% to 20% of the game.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = last_done + GIB * (8 + rng % 13) / 100;
        let e = bob.wait_for(Duration::from_secs(120), &format!("round {round}: progress past {at}"), |e| {
            e["event"] == "transfer" && e["done"].as_u64().is_some_and(|d| d >= at)
        });
        let before = e["done"].as_u64().unwrap();
        bob.kill9();
        bob = start_bob();
        // It goes on from what was written and synced (at most a second's worth behind).
        let resumed = bob.wait_for(Duration::from_secs(60), "resumed progress", |e| {
            e["event"] == "transfer" && e["total"].as_u64().is_some_and(|t| t > 0)
        });
        let now = resumed["done"].as_u64().unwrap();
        assert!(
            now + 64 * (1 << 20) >= before && now > 0,
            "round {round}: killed at {before}, resumed at {now}"
        );
        last_done = now;
    }
    bob.wait_for(Duration::from_secs(300), "complete", |e| e["event"] == "transfer-complete");
    assert!(bob.seen().iter().all(|e| e["event"] != "transfer" || e["direct"] == 0), "over libp2p only");
    bob.wait_for(Duration::from_secs(30), "installed", |e| {
        e["event"] == "plugin-toast" && e["text"].as_str().is_some_and(|t| t.contains("installed"))
    });
    assert_eq!(content_id(&library(&bob, "Long Road")), id);
}

#[test]
fn a_lying_member_is_dropped_and_the_download_completes_from_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let game = games::generate(dir.path(), "Truth", 128 << 20, 3);
    let (manifest, pieces) = partyline::transfer::describe(&game).unwrap();
    let id = manifest.id();

    let (alice, link) = host("alice", &[]);
    // Bob has it too, slowly, so that the liar gets asked for plenty.
    let bob = join("bob", &link, &["--upload-limit", "15"]);
    bob.wait_event(Duration::from_secs(20), "joined");
    let liar = partyline_tests::attacker::Attacker::connect(owner_addr(&link));
    let link_parsed: partyline_protocol::JoinLink = link.parse().unwrap();
    let garbage = liar.serve_lies(vec![(id, manifest.encode(), pieces.concat())]);
    liar.join(&link_parsed, "mallory");

    let (ok, out) = games_cli(&bob, &["share", game.to_str().unwrap()], Duration::from_secs(60));
    assert!(ok, "{out:?}");
    wait_offered(&alice, "Truth");
    let (ok, out) = games_cli(&alice, &["get", "Truth"], Duration::from_secs(300));
    assert!(ok, "{:?}", out.iter().rev().take(5).collect::<Vec<_>>());
    let dropped = alice
        .seen_or_wait(Duration::from_secs(5), "the liar dropped", |e| e["event"] == "transfer-peer-dropped");
    assert!(dropped["reason"].as_str().unwrap().contains("did not match"), "{dropped}");
    assert!(garbage.load(std::sync::atomic::Ordering::Relaxed) > 0, "the liar was asked for pieces");
    assert_eq!(content_id(&library(&alice, "Truth")), id);
    let drops = alice.seen().iter().filter(|e| e["event"] == "transfer-peer-dropped").count();
    assert_eq!(drops, 1, "only the liar");
}

/// The owner's address from a link (the attacker dials it).
fn owner_addr(link: &str) -> libp2p::Multiaddr {
    let link: partyline_protocol::JoinLink = link.parse().unwrap();
    let addr = link.addrs().iter().find(|a| a.to_string().contains("/tcp/")).cloned().expect("a tcp address");
    addr.with(libp2p::multiaddr::Protocol::P2p(link.owner()))
}

#[test]
fn manifests_that_would_write_outside_are_refused_and_nothing_is_written() {
    partyline_tests::init_logs();
    let home = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = partyline_tests::loopback_config(home.path(), "alice");
    let (node, mut events) = rt.block_on(Node::start(config)).unwrap();
    rt.block_on(node.host(false)).unwrap();
    let link = rt.block_on(node.invite(InviteTerms::default())).unwrap();

    let outside = home.path().join("escaped");
    let entry = |path: &str, kind: EntryKind| Entry { path: path.into(), kind };
    let file = |size| EntryKind::File { size, mode: 0o644 };
    let dir = EntryKind::Dir { mode: 0o755 };
    let link_to = |target: &str| EntryKind::Symlink { target: target.into() };
    let evil: Vec<Vec<Entry>> = vec![
        vec![entry("game", dir.clone()), entry("game/../../../escaped", file(10))],
        vec![entry("game", dir.clone()), entry(outside.to_str().unwrap(), file(10))],
        vec![entry("game", dir.clone()), entry("game/out", link_to("../../../../escaped"))],
        vec![entry("game", dir.clone()), entry("game/l", link_to(".")), entry("game/l/x", file(10))],
        vec![entry("/escaped", dir)],
    ];
    let served: Vec<(ContentId, Vec<u8>, Vec<u8>)> = evil
        .into_iter()
        .map(|entries| {
            let m = Manifest { piece_size: MIN_PIECE, pieces_root: [0; 32], entries };
            (m.id(), m.encode(), vec![0; 32])
        })
        .collect();
    let addr = link.addrs().first().cloned().unwrap().with(libp2p::multiaddr::Protocol::P2p(link.owner()));
    let liar = partyline_tests::attacker::Attacker::connect(addr);
    liar.serve_lies(served.clone());
    liar.join(&link, "mallory");

    for (id, _, _) in &served {
        rt.block_on(node.transfers().get(*id, "evil".into(), None)).unwrap();
        let reason = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    match events.recv().await.expect("node running") {
                        NodeEvent::TransferPeerDropped { id: dropped, reason, .. } if dropped == *id => {
                            break reason;
                        }
                        _ => {}
                    }
                }
            })
            .await
            .expect("the liar is dropped within 30 s")
        });
        assert!(reason.contains("manifest"), "{reason}");
        rt.block_on(node.transfers().cancel(*id)).unwrap();
    }
    assert!(!outside.exists(), "nothing written outside");
    let partial = home.path().join("data/transfers/partial");
    assert_eq!(std::fs::read_dir(&partial).unwrap().count(), 0, "nothing unpacked");
    rt.block_on(node.shutdown()).unwrap();
}

#[test]
fn the_library_is_untouched_when_the_disk_is_too_small() {
    let small = Tmpfs::mount("24m");
    let dir = tempfile::tempdir().unwrap();
    let game = games::generate(dir.path(), "Too Big", 64 << 20, 4);
    let (alice, link) = host("alice", &[]);
    let mut bob = Proc::start_in("bob", &small.path, &join_args(&link, "bob", &[]), None, &[]);
    bob.wait_event(Duration::from_secs(20), "joined");
    let (ok, out) = games_cli(&alice, &["share", game.to_str().unwrap()], Duration::from_secs(60));
    assert!(ok, "{out:?}");
    wait_offered(&bob, "Too Big");
    let (ok, out) = games_cli(&bob, &["get", "Too Big"], Duration::from_secs(60));
    assert!(!ok, "{out:?}");
    let failed = out.iter().find(|e| e["event"] == "transfer-failed").expect("failed");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("not enough space") && message.contains("Too Big"), "{message}");
    assert!(!library(&bob, "Too Big").exists());
    // Bob's Partyline goes on.
    bob.send("/transfers");
    bob.wait_for(Duration::from_secs(10), "transfers", |e| e["event"] == "transfers");
}

/// A small file system of its own (tmpfs; needs root, as CI has), unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_file_is_sent_accepted_and_received_and_another_declined() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mkv");
    games::write_file(&file, 20 << 20, 5);
    let folder = games::generate(dir.path(), "Saves", 4 << 20, 6);
    let (alice, link) = host("alice", &[]);
    let mut bob = join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(20), "joined");

    // `partyline send` waits until bob has it; bob accepts from his panel.
    let (ok, out) = send_file(&alice, &mut bob, "bob", &file, "accept:");
    assert!(ok, "{out:?}");
    assert!(out.iter().any(|e| e["text"].as_str().is_some_and(|t| t.contains("bob received clip.mkv"))));
    let received = bob.home.join("data/downloads/clip.mkv");
    assert_eq!(content_id(&received), content_id(&dir.path().join("clip.mkv")));

    // A folder, declined: the sender hears so and gives up.
    let (ok, out) = send_file(&alice, &mut bob, "bob", &folder, "decline:");
    assert!(!ok && out.iter().any(|e| e["text"].as_str().is_some_and(|t| t.contains("declined"))), "{out:?}");
    assert!(!bob.home.join("data/downloads/Saves").exists());

    // To someone not in the party: refused at once, saying so (it used to wait forever).
    let (ok, out) =
        run_cli(&alice.home, &["send", file.to_str().unwrap(), "--to", "carl"], Duration::from_secs(20));
    let said = |e: &Value| e["outcome"] == "failed" && e["text"] == "no member named \"carl\"";
    assert!(!ok && out.iter().any(said), "{out:?}");
}

#[test]
fn the_store_catalog_comes_from_its_feed_only_when_granted_and_its_games_from_members() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let game = games::generate(&store, "Moon Miner", 24 << 20, 7);
    std::fs::write(
        store.join("store.toml"),
        "[games.\"Moon Miner\"]\nversion = \"2.1\"\ndescription = \"Dig\"\n",
    )
    .unwrap();
    let feed = FeedServer::start(&store);

    // Alice points her game store at the feed, then takes its permission back.
    let alice_home = tempfile::tempdir().unwrap();
    let (ok, out) = run_cli(
        alice_home.path(),
        &["plugins", "set", "game-store", "feed", &feed.url],
        Duration::from_secs(60),
    );
    assert!(ok, "{out:?}");
    assert!(out[0]["granted"].as_array().unwrap().iter().any(|g| g == "http:127.0.0.1"), "{out:?}");
    assert!(
        run_cli(
            alice_home.path(),
            &["plugins", "revoke", "game-store", "http:127.0.0.1"],
            Duration::from_secs(60)
        )
        .0
    );
    let mut args = vec!["host", "--name", "alice"];
    args.extend_from_slice(partyline_tests::LOOPBACK);
    args.extend_from_slice(partyline_tests::NO_VOICE);
    let mut alice = Proc::start_in("alice", alice_home.path(), &args, None, &[]);
    let link = alice.wait_event(Duration::from_secs(20), "link")["link"].as_str().unwrap().to_owned();
    // (The panel may come before the link.)
    alice.seen_or_wait(Duration::from_secs(20), "the store refused", |e| {
        panel_has(e, "game-store", "cannot read the store") && panel_has(e, "game-store", "was not granted")
    });
    alice.send("/grant-plugin game-store");
    alice.wait_for(Duration::from_secs(20), "the catalog", |e| {
        panel_has(e, "game-store", "Club store") && panel_has(e, "game-store", "Moon Miner 2.1")
    });

    // Nobody has it yet: the download waits. Once bob shares his copy, alice gets it from him,
    // checked against the store's id.
    let home = alice.home.clone();
    let getting =
        std::thread::spawn(move || run_cli(&home, &["games", "get", "Moon Miner"], Duration::from_secs(120)));
    alice.wait_for(Duration::from_secs(20), "waiting", |e| {
        e["event"] == "transfer" && e["label"] == "Moon Miner" && e["peers"] == 0
    });
    let bob = join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(20), "joined");
    let (ok, out) = games_cli(&bob, &["share", game.to_str().unwrap()], Duration::from_secs(60));
    assert!(ok, "{out:?}");
    let (ok, out) = getting.join().unwrap();
    assert!(ok, "{out:?}");
    assert!(out.iter().any(|e| e["event"] == "transfer" && e["peers"] == 0), "it waited: {out:?}");
    assert_eq!(content_id(&library(&alice, "Moon Miner")), content_id(&game));
    let (ok, out) = games_cli(&alice, &["list"], Duration::from_secs(30));
    assert!(ok && panel_has(&out[0], "game-store", "Moon Miner"), "{out:?}");
}
