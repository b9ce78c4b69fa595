//! Joins that cannot succeed end with a clear `error` event and exit code 3, never a hang.

use std::time::{Duration, Instant};

use partyline_tests::{Proc, host, join, join_args};

/// Joining with `link` fails with a message containing `expect`, within `within`.
fn refused(link: &str, expect: &str, within: Duration) -> String {
    let started = Instant::now();
    let mut joiner = join("joiner", link, &["--timeout", "4s"]);
    let error = joiner.wait_event(within, "error");
    let message = error["message"].as_str().unwrap().to_owned();
    assert!(message.contains(expect), "expected {expect:?} in: {message}");
    assert_eq!(error["fatal"], true, "{error}");
    assert_eq!(joiner.wait_exit(Duration::from_secs(5)).code(), Some(3), "exit code for {message}");
    assert!(started.elapsed() < within + Duration::from_secs(5));
    message
}

#[test]
fn expired_invite() {
    let (_alice, link) = host("alice", &["--expires", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let message = refused(&link, "invite expired at ", Duration::from_secs(10));
    // The time is printed in RFC 3339 so people can read it.
    assert!(message.contains('T') && message.contains('Z'), "{message}");
}

#[test]
fn tampered_link() {
    let (_alice, link) = host("alice", &[]);
    // One character changed in the owner's signature (payload bytes 60-124; 8 bits per 5 chars).
    let mut chars: Vec<char> = link.chars().collect();
    let at = "partyline://join/".len() + 80 * 8 / 5;
    chars[at] = if chars[at] == 'a' { 'b' } else { 'a' };
    let tampered: String = chars.into_iter().collect();
    refused(&tampered, "cannot use this link: bad signature", Duration::from_secs(5));
    // And a link mangled beyond parsing says so too.
    refused("partyline://join/!!!", "bad encoding", Duration::from_secs(5));
    refused("https://example.com/join/abc", "bad scheme", Duration::from_secs(5));
}

#[test]
fn revoked_invite() {
    let (mut alice, link) = host("alice", &[]);
    alice.send("/revoke");
    let revoked = alice.wait_event(Duration::from_secs(5), "revoked");
    assert_eq!(revoked["invites"].as_array().unwrap().len(), 1);
    refused(&link, "revoked", Duration::from_secs(10));

    // A new link still works.
    alice.send("/invite");
    let fresh = alice.wait_event(Duration::from_secs(5), "link")["link"].as_str().unwrap().to_owned();
    let bob = join("bob", &fresh, &[]);
    bob.wait_event(Duration::from_secs(10), "joined");
}

#[test]
fn over_used_invite() {
    let (alice, link) = host("alice", &["--uses", "1"]);
    let mut bob = join("bob", &link, &[]);
    bob.wait_event(Duration::from_secs(10), "joined");
    refused(&link, "already used by 1 peer", Duration::from_secs(10));

    // The one who used it may come back with it: a re-join does not use it up.
    bob.kill9();
    alice.wait_roster(Duration::from_secs(10), &["alice"]);
    let again = Proc::start_in("bob-again", &bob.home.clone(), &join_args(&link, "bob", &[]), None, &[]);
    again.wait_event(Duration::from_secs(10), "joined");
}

#[test]
fn party_that_no_longer_exists() {
    // The owner ended the party, then hosts a new one at the same addresses: the old link reaches
    // the owner, which no longer hosts that party.
    let (mut alice, link) = host("alice", &[]);
    let listening = alice.seen().into_iter().rev().find(|e| e["event"] == "listening").expect("listening");
    alice.send("/end");
    alice.wait_event(Duration::from_secs(5), "party-ended");
    assert!(alice.wait_exit(Duration::from_secs(5)).success());
    let mut args = vec!["host", "--name", "alice", "--new", "--no-mdns", "--no-voice"];
    for addr in listening["addrs"].as_array().unwrap() {
        args.extend(["--listen", addr.as_str().unwrap()]);
    }
    let renewed = Proc::start_in("alice-renewed", &alice.home.clone(), &args, None, &[]);
    renewed.wait_event(Duration::from_secs(10), "link");
    refused(&link, "this party no longer exists", Duration::from_secs(10));

    // An owner that is gone entirely: the join gives up at its deadline.
    let (mut bea, link) = host("bea", &[]);
    bea.kill9();
    refused(&link, "could not reach the party", Duration::from_secs(12));
}

/// `/kick` and `/ban` have teeth: a kicked member cannot walk back in with the link they used
/// (a new link lets them back), and a ban revokes the links the member joined with, so a fresh
/// identity with that link is refused too, while members who joined with it may still come
/// back. The default link lets a bounded number of people in.
#[test]
fn a_kick_holds_for_the_link_used_and_a_ban_closes_that_link_to_fresh_identities() {
    let (mut alice, link) = host("alice", &[]);
    let first = alice.seen().into_iter().find(|e| e["event"] == "link").unwrap();
    assert_eq!(first["max_uses"], 16, "the default link is bounded: {first}");
    let mut bob = join("bob", &link, &[]);
    let mut carol = join("carol", &link, &[]);
    let mut dave = join("dave", &link, &[]);
    alice.wait_roster(Duration::from_secs(10), &["alice", "bob", "carol", "dave"]);

    alice.send("/kick carol");
    assert_eq!(carol.wait_event(Duration::from_secs(5), "kicked")["banned"], false);
    assert_eq!(carol.wait_exit(Duration::from_secs(5)).code(), Some(4));
    let mut again =
        Proc::start_in("carol-again", &carol.home.clone(), &join_args(&link, "carol", &[]), None, &[]);
    let refused = again.wait_event(Duration::from_secs(10), "error");
    assert!(refused["message"].as_str().unwrap().contains("kicked"), "{refused}");
    assert_eq!(again.wait_exit(Duration::from_secs(5)).code(), Some(3));
    alice.send("/invite");
    let fresh = alice.wait_event(Duration::from_secs(5), "link")["link"].as_str().unwrap().to_owned();
    let back = Proc::start_in("carol-back", &carol.home.clone(), &join_args(&fresh, "carol", &[]), None, &[]);
    back.wait_event(Duration::from_secs(10), "joined");

    alice.send("/ban dave");
    assert_eq!(dave.wait_event(Duration::from_secs(5), "kicked")["banned"], true);
    assert_eq!(dave.wait_exit(Duration::from_secs(5)).code(), Some(4));
    let revoked = alice.wait_event(Duration::from_secs(5), "revoked");
    assert!(revoked["invites"].as_array().unwrap().iter().any(|i| i == &first["invite"]), "{revoked}");
    alice.wait_for(Duration::from_secs(5), "a new link to share", |e| {
        e["event"] == "link" && e["link"] != link.as_str() && e["link"] != fresh.as_str()
    });
    // Dave under a fresh identity, with the link he used: refused.
    let stranger = join("dave2", &link, &["--timeout", "4s"]);
    let refused = stranger.wait_event(Duration::from_secs(10), "error");
    assert!(refused["message"].as_str().unwrap().contains("revoked"), "{refused}");
    // Bob joined with that link too: he comes back after a restart.
    bob.kill9();
    alice.wait_roster(Duration::from_secs(10), &["alice", "carol"]);
    let bob_again = Proc::start_in("bob-again", &bob.home.clone(), &join_args(&link, "bob", &[]), None, &[]);
    bob_again.wait_event(Duration::from_secs(10), "joined");
}
