//! Parties through a `partyline relay`, with peers in their own network namespaces:
//! - *relay only*: two peers that can reach the relay but not each other still form a party, and
//!   hole punching (DCUtR) cannot upgrade them;
//! - *behind NATs*: two peers behind separate masquerading routers meet through a relay on the
//!   "internet", and DCUtR upgrades their connection to a direct one.
//!
//! Both print whether DCUtR upgraded the connection.

use std::time::Duration;

use partyline_protocol::{JoinLink, Multiaddr};
use partyline_tests::Proc;
use partyline_tests::netns::{Netns, link};
use serde_json::Value;

const ANY: &[&str] =
    &["--listen", "/ip4/0.0.0.0/udp/0/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/0", "--no-mdns"];

/// Starts `partyline relay` in `ns` on port 4001 and returns it with the addresses it printed.
fn start_relay(ns: &Netns) -> (Proc, Vec<String>) {
    let home = tempfile::tempdir().unwrap();
    let args = ["relay", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4001"];
    let path = home.path().to_path_buf();
    let relay = Proc::start_in("relay", &path, &args, Some(home), &ns.prefix());
    let ready = relay.wait_event(Duration::from_secs(15), "relay");
    let addrs = ready["addrs"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    (relay, addrs)
}

/// The relay's QUIC address on `ip`.
fn relay_addr(addrs: &[String], ip: &str) -> String {
    addrs
        .iter()
        .find(|a| a.starts_with(&format!("/ip4/{ip}/udp/")))
        .unwrap_or_else(|| panic!("relay has no QUIC address on {ip}: {addrs:?}"))
        .clone()
}

fn start_in(ns: &Netns, name: &str, args: &[&str]) -> Proc {
    let home = tempfile::Builder::new().prefix(&format!("pl-{name}-")).tempdir().unwrap();
    let path = home.path().to_path_buf();
    let mut full: Vec<&str> = args.to_vec();
    full.extend_from_slice(&["--name", name]);
    full.extend_from_slice(ANY);
    Proc::start_in(name, &path, &full, Some(home), &ns.prefix())
}

/// Hosts in `ns` with `relay`, waiting for a link that carries a relayed address. Alice talks
/// (speech from a file, then silence, with her microphone open all along).
fn host_with_relay(ns: &Netns, relay: &str) -> (Proc, String) {
    let speech = partyline_tests::audio::long_speech_wav().to_str().unwrap();
    let args =
        ["host", "--relay", relay, "--mic-file", speech, "--speaker-device", "none", "--voice-mode", "ptt"];
    let mut alice = start_in(ns, "alice", &args);
    alice.send("/ptt down");
    let mut link = alice.wait_event(Duration::from_secs(20), "link")["link"].as_str().unwrap().to_owned();
    if !relayed(&link) {
        // The first link may predate the reservation; ask again once it is there.
        alice.wait_for(Duration::from_secs(20), "a relayed listen address", |e| {
            e["event"] == "listening"
                && e["addrs"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().contains("p2p-circuit"))
        });
        alice.send("/invite");
        link = alice.wait_event(Duration::from_secs(5), "link")["link"].as_str().unwrap().to_owned();
    }
    assert!(relayed(&link), "the link carries a relayed address: {link}");
    (alice, link)
}

fn relayed(link: &str) -> bool {
    let link: JoinLink = link.parse().unwrap();
    link.addrs().iter().any(|a: &Multiaddr| a.to_string().contains("p2p-circuit"))
}

/// How Alice's voice reaches Bob, once the party formed and DCUtR had its chance.
struct Reached {
    /// `direct` or `relayed`.
    path: String,
    punch: Option<Value>,
    /// Bob's voice statistics a few seconds after that.
    voice: Value,
}

/// Joins, chats both ways, and returns the path (`direct` or `relayed`) bob sees to alice once
/// DCUtR had its chance, with the hole-punch outcome if one was reported.
fn form_party(alice: &mut Proc, bob: &mut Proc) -> (String, Option<Value>) {
    bob.wait_event(Duration::from_secs(30), "joined");
    alice.wait_for(Duration::from_secs(10), "bob", |e| e["event"] == "member-joined" && e["name"] == "bob");

    bob.send("hello through the relay");
    let heard = alice.wait_for(Duration::from_secs(10), "bob's chat", |e| e["event"] == "chat");
    assert_eq!(heard["text"], "hello through the relay");
    alice.send("loud and clear");
    bob.wait_for(Duration::from_secs(10), "alice's chat", |e| e["event"] == "chat" && e["from"] == "alice");

    // DCUtR starts right after the relayed connection; give it time to finish either way.
    let punch = alice
        .seen()
        .into_iter()
        .chain(bob.seen())
        .find(|e| e["event"] == "hole-punch")
        .or_else(|| bob.try_wait_for(Duration::from_secs(20), |e| e["event"] == "hole-punch"));
    bob.send("/members");
    let members = bob.wait_event(Duration::from_secs(5), "members");
    let path = members["members"].as_array().unwrap().iter().find(|m| m["name"] == "alice").unwrap()["path"]
        .as_str()
        .unwrap()
        .to_owned();
    (path, punch)
}

/// Runs a relay in `relay_ns`; alice hosts in `a` with the relay's address `a_sees`, bob joins
/// from `b` with its address `b_sees`; they form a party through the relay (see [`form_party`]).
fn meet_through_relay(relay_ns: &Netns, (a, a_sees): (&Netns, &str), (b, b_sees): (&Netns, &str)) -> Reached {
    let (relay, addrs) = start_relay(relay_ns);
    let (mut alice, invite) = host_with_relay(a, &relay_addr(&addrs, a_sees));
    let relay_arg = relay_addr(&addrs, b_sees);
    let bob_args =
        ["join", &invite, "--relay", &relay_arg, "--mic-device", "none", "--speaker-device", "none"];
    let mut bob = start_in(b, "bob", &bob_args);
    let (path, punch) = form_party(&mut alice, &mut bob);
    relay.wait_event(Duration::from_secs(5), "circuit");
    // Voice has a few seconds to find its way (datagrams where the two reach each other).
    std::thread::sleep(Duration::from_secs(4));
    let voice = partyline_tests::talk::voice_stats(&mut bob);
    Reached { path, punch, voice }
}

/// Frames Bob received from Alice.
fn heard(voice: &Value) -> u64 {
    partyline_tests::talk::member(voice, "alice")["received"].as_u64().unwrap_or(0)
}

#[test]
fn relay_only_party_forms_through_the_relay() {
    // relay namespace R bridges A and B but does not forward between them.
    let (r, a, b) = (Netns::new("r"), Netns::new("a"), Netns::new("b"));
    link(&r, "r-a", "10.99.1.1/24", &a, "a-r", "10.99.1.2/24");
    link(&r, "r-b", "10.99.2.1/24", &b, "b-r", "10.99.2.2/24");
    r.set_forwarding(false);
    // Each peer may reach the relay's other address (it is the relay's own), and nothing beyond.
    a.route("10.99.2.0/24", "10.99.1.1");
    b.route("10.99.1.0/24", "10.99.2.1");

    let Reached { path, punch, voice } = meet_through_relay(&r, (&a, "10.99.1.1"), (&b, "10.99.2.1"));
    println!("relay only: party formed over the relay; path {path}; hole punch: {punch:?}; voice {voice}");
    assert_eq!(path, "relayed", "A and B cannot reach each other directly here");
    if let Some(punch) = punch {
        assert_eq!(punch["ok"], false, "no direct path exists, so DCUtR cannot have succeeded: {punch}");
    }
    // Voice falls back to streams through the relay.
    assert_eq!(voice["datagram_paths"], 0, "{voice}");
    assert_eq!(voice["datagrams_in"], 0, "{voice}");
    assert!(heard(&voice) > 50, "alice is heard through the relay: {voice}");
}

#[test]
fn peers_behind_nats_meet_through_a_relay_and_hole_punch() {
    // "internet" I with the relay; home routers NA and NB masquerade their LANs A and B.
    let (i, na, nb, a, b) =
        (Netns::new("i"), Netns::new("na"), Netns::new("nb"), Netns::new("a"), Netns::new("b"));
    link(&i, "i-na", "203.0.113.1/24", &na, "wan", "203.0.113.2/24");
    link(&i, "i-nb", "198.51.100.1/24", &nb, "wan", "198.51.100.2/24");
    link(&na, "lan", "192.168.1.1/24", &a, "eth0", "192.168.1.2/24");
    link(&nb, "lan", "192.168.2.1/24", &b, "eth0", "192.168.2.2/24");
    i.set_forwarding(true);
    for (router, upstream) in [(&na, "203.0.113.1"), (&nb, "198.51.100.1")] {
        router.set_forwarding(true);
        router.default_route(upstream);
        router.masquerade("wan");
    }
    a.default_route("192.168.1.1");
    b.default_route("192.168.2.1");

    let Reached { path, punch, voice } = meet_through_relay(&i, (&a, "203.0.113.1"), (&b, "198.51.100.1"));
    println!("behind NATs: party formed; path {path}; hole punch: {punch:?}; voice {voice}");
    let punch = punch.expect("DCUtR reports a hole punch attempt");
    assert_eq!(punch["ok"], true, "DCUtR upgraded the relayed connection: {punch}");
    assert_eq!(path, "direct");
    // Voice then goes over datagrams through both NATs (both sides dial each other at once).
    assert_eq!(voice["datagram_paths"], 1, "{voice}");
    assert!(voice["datagrams_in"].as_u64().unwrap() > 20, "{voice}");
    assert!(heard(&voice) > 50, "{voice}");
}
