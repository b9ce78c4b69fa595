//! A member cannot poison the game store by a name: mallory shares a "trojan" under the name of
//! the game alice shares. Getting that name is refused with both ids named (carl), getting it by
//! the honest id brings the honest bytes, and a member whose store feed lists the game (bob) gets
//! the store's build by name, never the trojan.

use std::time::Duration;

use partyline_tests::games::{self, content_id};
use partyline_tests::store::{FeedServer, games_cli, get_buttons, library};
use partyline_tests::{Proc, host, join, join_args, run_cli};

const NAME: &str = "Star Frontier";

#[test]
fn a_trojan_announced_under_an_honest_games_name_is_never_installed_silently() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["store", "trojan"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let honest = games::generate(&dir.path().join("store"), NAME, 6 << 20, 21);
    let trojan = games::generate(&dir.path().join("trojan"), NAME, 6 << 20, 22);
    let (honest_id, trojan_id) = (content_id(&honest), content_id(&trojan));
    let feed = FeedServer::start(&dir.path().join("store"));

    let (alice, link) = host("alice", &[]);
    let mallory = join("mallory", &link, &[]);
    mallory.wait_event(Duration::from_secs(20), "joined");
    let (ok, out) = games_cli(&alice, &["share", honest.to_str().unwrap()], Duration::from_secs(60));
    assert!(ok, "{out:?}");
    let (ok, out) = games_cli(&mallory, &["share", trojan.to_str().unwrap()], Duration::from_secs(60));
    assert!(ok, "{out:?}");

    // Carl has no store: he is shown both, and getting the name is refused with both ids.
    let carl = join("carl", &link, &[]);
    carl.wait_event(Duration::from_secs(20), "joined");
    carl.wait_for(Duration::from_secs(30), "both offered", |e| get_buttons(e, NAME) == 2);
    let (ok, out) = games_cli(&carl, &["get", NAME], Duration::from_secs(60));
    assert!(!ok, "an ambiguous name was fetched: {out:?}");
    let refusal = out.iter().find(|e| e["event"] == "plugin-toast").expect("a refusal");
    let text = refusal["text"].as_str().unwrap();
    assert!(text.contains("2 different games"), "{text}");
    assert!(
        text.contains(&honest_id.to_string()[..12]) && text.contains(&trojan_id.to_string()[..12]),
        "{text}"
    );
    assert!(text.contains("alice") && text.contains("mallory"), "{text}");
    assert!(!library(&carl, NAME).exists(), "nothing installed");
    // By the honest id (its first 12 digits, as shown): the honest bytes.
    let (ok, out) = games_cli(&carl, &["get", &honest_id.to_string()[..12]], Duration::from_secs(120));
    assert!(ok, "{out:?}");
    assert_eq!(content_id(&library(&carl, NAME)), honest_id);

    // Bob's store lists the game: its name means the store's id, whoever else claims it.
    let bob_home = tempfile::tempdir().unwrap();
    let set = ["plugins", "set", "game-store", "feed", &feed.url];
    let (ok, out) = run_cli(bob_home.path(), &set, Duration::from_secs(60));
    assert!(ok, "{out:?}");
    let bob = Proc::start_in("bob", bob_home.path(), &join_args(&link, "bob", &[]), None, &[]);
    bob.wait_event(Duration::from_secs(20), "joined");
    bob.wait_for(Duration::from_secs(30), "both offered", |e| get_buttons(e, NAME) == 2);
    let (ok, out) = games_cli(&bob, &["get", NAME], Duration::from_secs(120));
    assert!(ok, "{out:?}");
    assert_eq!(content_id(&library(&bob, NAME)), honest_id);
    let fetched_from_mallory =
        bob.seen().iter().any(|e| e["event"] == "transfer" && e["id"] == trojan_id.to_string());
    assert!(!fetched_from_mallory, "the trojan was never asked for");
}
