//! A community relay is not free for all: throwaway identities from one address get that
//! address's budget of reservations and relayed connections, not more; with an allow-list only the
//! listed peers get a slot; and the relay reports what it refused.

use std::time::{Duration, Instant};

use futures::future::join_all;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use partyline_tests::Proc;
use partyline_tests::relay_client::{circuit, hold, reserve};

/// The defaults: reservations per address at once (then one each 30 s), circuits (one each 10 s).
const RESERVATIONS_PER_IP: u64 = 8;
const CIRCUITS_PER_IP: u64 = 32;

/// Starts `partyline relay` on 127.0.0.1 with `extra` arguments; returns it and its QUIC address.
fn start_relay(extra: &[&str]) -> (Proc, Multiaddr) {
    let mut args = vec!["relay", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"];
    args.extend_from_slice(extra);
    let relay = Proc::start("relay", &args);
    let ready = relay.wait_event(Duration::from_secs(15), "relay");
    let addr = ready["addrs"][0].as_str().expect("an address").parse().expect("a multiaddr");
    (relay, addr)
}

/// Refusals of reservations (`circuits` false) or circuits the relay reported, one by one or in
/// its sums, once they reach `expected` (or after 5 s).
fn reported_refusals(relay: &Proc, circuits: bool, expected: u64) -> u64 {
    let count = || -> u64 {
        relay
            .seen()
            .iter()
            .map(|e| match e["event"].as_str() {
                Some("relay-refused") if e["dst"].is_null() != circuits => 1,
                Some("relay-refusals") => {
                    e[if circuits { "circuits" } else { "reservations" }].as_u64().unwrap_or(0)
                }
                _ => 0,
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    count()
}

/// Asserts that `passed` is an address's budget, plus at most what a bucket refilled at one per
/// `every` seconds may have gained while the requests went on (`elapsed`).
fn assert_budget(passed: u64, budget: u64, every: u64, elapsed: Duration) {
    let refill = elapsed.as_secs().div_ceil(every);
    assert!(
        (budget..=budget + refill).contains(&passed),
        "{passed} passed; one address gets its budget of {budget} (+ {refill} refilled), however many identities it has"
    );
}

#[test]
fn a_relay_gives_one_address_its_budget_and_strangers_no_slot() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (relay, addr) = start_relay(&[]);

    // 24 throwaway identities from one address ask for a slot at once.
    let started = Instant::now();
    let asked = 24;
    let slots = runtime
        .block_on(join_all((0..asked).map(|_| reserve(Keypair::generate_ed25519(), &addr, "127.0.0.2"))));
    let granted = slots.iter().filter(|s| s.is_some()).count() as u64;
    println!("reservations from one address: {granted} of {asked} granted in {:?}", started.elapsed());
    assert_budget(granted, RESERVATIONS_PER_IP, 30, started.elapsed());
    assert_eq!(reported_refusals(&relay, false, asked - granted), asked - granted, "refusals are reported");

    // Another address still gets a slot; its holder is reachable through the relay.
    let member = Keypair::generate_ed25519();
    let member_id = PeerId::from(member.public());
    let slot =
        runtime.block_on(reserve(member, &addr, "127.0.0.3")).expect("another address has its own budget");
    let _held = runtime.spawn(hold(slot));

    // 48 throwaway identities from one address ask for a relayed connection to the member, 8 at a
    // time (libp2p negotiates at most 10 streams at once on the relay's connection to the member).
    // The relay decides on its budget before it contacts the member; what the member's own libp2p
    // then makes of a crowd of circuits is counted, not asserted.
    let started = Instant::now();
    let asked = 48;
    let mut opened = 0;
    for _ in 0..asked / 8 {
        let wave = (0..8).map(|_| circuit(Keypair::generate_ed25519(), &addr, member_id, "127.0.0.4"));
        opened += runtime.block_on(join_all(wave)).iter().filter(|&&o| o).count() as u64;
    }
    let refused = reported_refusals(&relay, true, asked - CIRCUITS_PER_IP);
    println!(
        "circuits from one address: {} of {asked} passed the relay, {refused} refused, {opened} opened, in {:?}",
        asked - refused,
        started.elapsed()
    );
    assert_budget(asked - refused, CIRCUITS_PER_IP, 10, started.elapsed());
    assert!(
        opened > 0 && opened <= asked - refused,
        "relayed connections to the member work, within the budget"
    );

    // Another address is not refused.
    let other = Keypair::generate_ed25519();
    let other_id = PeerId::from(other.public()).to_string();
    runtime.block_on(circuit(other, &addr, member_id, "127.0.0.5"));
    assert_eq!(reported_refusals(&relay, true, refused + 1), refused);
    assert!(relay.seen().iter().all(|e| e["peer"] != other_id.as_str() || e["event"] != "relay-refused"));
}

#[test]
fn a_relay_with_an_allow_list_gives_slots_to_the_listed_peers_only() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let member = Keypair::generate_ed25519();
    let member_id = PeerId::from(member.public()).to_string();
    let (relay, addr) = start_relay(&["--allow", &member_id]);

    let strangers = 12;
    let slots = runtime
        .block_on(join_all((0..strangers).map(|_| reserve(Keypair::generate_ed25519(), &addr, "127.0.0.6"))));
    let granted = slots.iter().filter(|s| s.is_some()).count();
    println!("strangers: {granted} of {strangers} got a slot");
    assert_eq!(granted, 0, "a peer not on the allow-list gets no slot");
    let refused = relay.wait_for(Duration::from_secs(5), "a refusal", |e| e["event"] == "relay-refused");
    assert_eq!(refused["reason"], "not on the allow-list", "{refused}");
    assert_eq!(reported_refusals(&relay, false, strangers), strangers);

    // The strangers spent nothing of their address's budget: the member, from there, gets a slot.
    let slot = runtime.block_on(reserve(member, &addr, "127.0.0.6"));
    assert!(slot.is_some(), "the listed peer gets its slot");
    relay.wait_for(Duration::from_secs(5), "the member's reservation", |e| {
        e["event"] == "reservation" && e["peer"] == member_id.as_str()
    });
}
