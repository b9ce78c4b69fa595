//! The real binary: a host and two joiners form a party by link; a killed member is noticed.

use std::time::Duration;

use partyline_tests::{Proc, host, join, join_args};

const ALL: [&str; 3] = ["alice", "bob", "carol"];

#[test]
fn joiners_see_three_members_and_notice_a_kill_dash_nine() {
    let (mut alice, link) = host("alice", &[]);
    let bob = join("bob", &link, &[]);
    let mut carol = join("carol", &link, &[]);

    for p in [&alice, &bob, &carol] {
        p.wait_roster(Duration::from_secs(10), &ALL);
    }

    // Members connect to each other too, not only to the host: a full mesh (within seconds of
    // the roster, on a busy machine).
    let mut bob = bob;
    let started = std::time::Instant::now();
    loop {
        bob.send("/members");
        let members = bob.wait_event(Duration::from_secs(5), "members");
        let carol_entry =
            members["members"].as_array().unwrap().iter().find(|m| m["name"] == "carol").unwrap().clone();
        if carol_entry["path"] == "direct" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "bob reaches carol directly: {members}");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Presence is part of the roster everyone sees.
    bob.send("/away");
    for p in [&alice, &carol] {
        let away = p.wait_event(Duration::from_secs(5), "presence");
        assert_eq!((away["name"].as_str(), away["presence"].as_str()), (Some("bob"), Some("away")));
    }

    carol.kill9();
    for p in [&alice, &bob] {
        let left = p.wait_for(Duration::from_secs(10), "carol's member-left", |e| {
            e["event"] == "member-left" && e["name"] == "carol"
        });
        assert_eq!(left["reason"], "timeout");
    }

    // The host's /leave is a clean exit.
    alice.send("/leave");
    alice.wait_event(Duration::from_secs(5), "left");
    assert!(alice.wait_exit(Duration::from_secs(5)).success());
    let gone = bob.wait_for(Duration::from_secs(10), "alice's member-left", |e| e["event"] == "member-left");
    assert_eq!((gone["name"].as_str(), gone["reason"].as_str()), (Some("alice"), Some("left")));
}

#[test]
fn owner_can_kick_ban_and_members_leave_cleanly() {
    let (mut alice, link) = host("alice", &[]);
    let mut bob = join("bob", &link, &[]);
    let mut carol = join("carol", &link, &[]);
    for p in [&alice, &bob, &carol] {
        p.wait_roster(Duration::from_secs(10), &ALL);
    }

    bob.send("/kick carol");
    let refused = bob.wait_event(Duration::from_secs(5), "error");
    assert!(refused["message"].as_str().unwrap().contains("owner"), "{refused}");

    alice.send("/ban carol");
    let kicked = carol.wait_event(Duration::from_secs(5), "kicked");
    assert_eq!(kicked["banned"], true);
    assert_eq!(carol.wait_exit(Duration::from_secs(5)).code(), Some(4));
    let left = bob.wait_for(Duration::from_secs(5), "carol leaves", |e| e["event"] == "member-left");
    assert_eq!((left["name"].as_str(), left["reason"].as_str()), (Some("carol"), Some("kicked")));

    // A banned peer cannot come back, even with a fresh link.
    alice.send("/invite");
    let fresh = alice.wait_event(Duration::from_secs(5), "link")["link"].as_str().unwrap().to_owned();
    let mut again =
        Proc::start_in("carol-again", &carol.home.clone(), &join_args(&fresh, "carol", &[]), None, &[]);
    let refused = again.wait_event(Duration::from_secs(10), "error");
    assert!(refused["message"].as_str().unwrap().contains("banned"), "{refused}");
    assert_eq!(again.wait_exit(Duration::from_secs(5)).code(), Some(3));

    bob.send("/leave");
    bob.wait_event(Duration::from_secs(5), "left");
    assert!(bob.wait_exit(Duration::from_secs(5)).success());
    let left = alice.wait_for(Duration::from_secs(5), "bob leaves", |e| {
        e["event"] == "member-left" && e["name"] == "bob"
    });
    assert_eq!(left["reason"], "left");
}
