//! A crowd of strangers: 64 throwaway identities from one address hold every connection, party
//! stream and voice stream they can get on a party's host, and hundreds of raw TCP connections
//! hang on its ports, while a new member joins, members chat, voice flows and a file is sent. The
//! join takes its usual time, the party goes on, one address gets its share of connections,
//! strangers' streams and then their connections are closed after their time, and the host's
//! descriptors stay bounded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use partyline::net::{PARTY_PROTOCOL, VOICE_PROTOCOL};
use partyline_protocol::JoinLink;
use partyline_tests::attacker::Attacker;
use partyline_tests::games::{self, content_id};
use partyline_tests::procfs::{open_fds, tcp_listeners};
use partyline_tests::store::send_file;
use partyline_tests::talk::{member, voice_stats, wait_talking};
use partyline_tests::{Proc, audio, count, host, join};

const STRANGERS: usize = 64;
/// Raw TCP connections per port and source address.
const RAW: usize = 200;
/// How long the host keeps a stream from a peer it is not linked to (`net::links`), and a second.
const STRANGER_TTL: Duration = Duration::from_secs(11);
/// How long it keeps a stranger's connection (`net::strangers`), and a second and a tick.
const STRANGER_LIFETIME: Duration = Duration::from_millis(21_300);
/// Strangers' connections taken in from one address.
const STRANGERS_PER_ADDRESS: usize = 32;

fn joined_in(p: &Proc, started: Instant) -> Duration {
    p.wait_event(Duration::from_secs(30), "joined");
    started.elapsed()
}

/// Frames `listener` received from alice, and lost.
fn heard(listener: &mut Proc) -> (u64, u64) {
    let stats = voice_stats(listener);
    let alice = member(&stats, "alice");
    (alice["received"].as_u64().unwrap(), alice["lost"].as_u64().unwrap())
}

/// The TCP ports of libp2p's listeners, from the `listening` event.
fn libp2p_tcp_ports(p: &Proc) -> Vec<u16> {
    let listening = p.seen().into_iter().rev().find(|e| e["event"] == "listening").unwrap();
    listening["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str()?.split("/tcp/").nth(1)?.split('/').next()?.parse().ok())
        .collect()
}

fn chat_reaches(from: &mut Proc, to: &Proc, text: &str) {
    from.send(text);
    to.wait_for(Duration::from_secs(10), text, |e| e["event"] == "chat" && e["text"] == text);
}

#[test]
fn a_crowd_of_strangers_cannot_exhaust_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("replay.mkv");
    games::write_file(&file, 8 << 20, 3);
    let speech = audio::long_speech_wav().to_str().unwrap();
    let (mut alice, link) = host("alice", &["--mic-file", speech, "--speaker-device", "none"]);
    let started = Instant::now();
    let mut bob = join("bob", &link, &["--mic-device", "none", "--speaker-device", "none"]);
    let bob_join = joined_in(&bob, started);
    wait_talking(&bob);
    let calm_fds = open_fds(alice.pid());

    // The crowd, from an address no member uses: each stranger that gets a connection opens four
    // party streams and four voice streams and keeps them.
    let (stranger_ip, member_ip) = (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let owner = link.parse::<JoinLink>().unwrap().owner();
    // One after the other, so that the cap on handshakes under way per address (8) is not what
    // stops them.
    let arrived = Instant::now();
    let crowd: Vec<Attacker> = (0..STRANGERS)
        .map(|_| Attacker::at_from(&alice, &link, Some(stranger_ip)))
        .inspect(|a| {
            a.connected(Duration::from_secs(10));
        })
        .collect();
    let connected: Vec<&Attacker> = crowd.iter().filter(|a| a.connected(Duration::ZERO)).collect();
    println!(
        "the crowd got {} of {STRANGERS} connections from one address in {:?}",
        connected.len(),
        arrived.elapsed()
    );
    assert_eq!(
        connected.len(),
        STRANGERS_PER_ADDRESS,
        "one address gets its share of strangers' connections"
    );
    let party: Vec<_> = connected.iter().flat_map(|a| a.hold(owner, PARTY_PROTOCOL, 4)).collect();
    let held = Instant::now();
    let voice: Vec<_> = connected.iter().flat_map(|a| a.hold(owner, VOICE_PROTOCOL, 4)).collect();
    // Raw TCP on every port the host listens on, from an address no member uses; and on the
    // direct port from the members' own (loopback) too.
    let libp2p_ports = libp2p_tcp_ports(&alice);
    let ports = tcp_listeners(alice.pid());
    let direct: Vec<SocketAddr> =
        ports.iter().copied().filter(|p| !libp2p_ports.contains(&p.port())).collect();
    assert!(!direct.is_empty() && ports.len() > direct.len(), "libp2p's and the direct port: {ports:?}");
    let mut raw = Vec::new();
    for port in &ports {
        let sources = if direct.contains(port) { &[stranger_ip, member_ip][..] } else { &[stranger_ip] };
        for &from in sources {
            let conns = crowd[0].tcp_connect_many(*port, from, RAW);
            assert_eq!(conns.len(), RAW, "connects to {port} from {from}");
            raw.push((*port, from, conns));
        }
    }
    let party = crowd[0].kept(party);
    let voice = crowd[0].kept(voice);
    let fds_under_attack = open_fds(alice.pid());
    let mut raw_kept = Vec::new();
    for (port, from, conns) in &mut raw {
        let kept = crowd[0].tcp_kept(conns);
        let door = if direct.contains(port) { "direct port" } else { "libp2p TCP port" };
        println!("{door} {port}: {kept} of {RAW} raw connections from {from} kept open");
        raw_kept.push((direct.contains(port), *from, kept));
    }
    println!(
        "the crowd holds {} of {} party streams and {} of {} voice streams",
        party.len(),
        STRANGERS * 4,
        voice.len(),
        STRANGERS * 4
    );
    assert!(party.len() <= 2 * connected.len(), "two party streams per stranger at most: {}", party.len());
    assert!(voice.is_empty(), "voice streams only from members: {} kept", voice.len());
    for (is_direct, from, kept) in raw_kept {
        match (is_direct, from == member_ip) {
            (true, false) => assert_eq!(kept, 0, "the direct port answers members' addresses only"),
            (true, true) => assert!(kept <= 32, "the direct port caps handshakes: {kept} kept"),
            (false, _) => assert!(kept <= 8, "libp2p's handshakes are capped per address: {kept} kept"),
        }
    }

    // Under it, a new member joins, members chat, voice flows and a file goes across.
    let before = heard(&mut bob);
    let started = Instant::now();
    let mut carol = join("carol", &link, &[]);
    let carol_join = joined_in(&carol, started);
    chat_reaches(&mut bob, &carol, "still here?");
    chat_reaches(&mut carol, &alice, "here too");
    let (ok, out) = send_file(&alice, &mut bob, "bob", &file, "accept:");
    assert!(ok, "{out:?}");
    assert_eq!(content_id(&bob.home.join("data/downloads/replay.mkv")), content_id(&file));
    let after = heard(&mut bob);
    let peak_fds = open_fds(alice.pid());

    println!(
        "join: bob {} ms without the crowd, carol {} ms under it; host descriptors {calm_fds} calm, \
         {fds_under_attack} under attack, {peak_fds} after the transfer",
        bob_join.as_millis(),
        carol_join.as_millis()
    );
    let (received, lost) = (after.0 - before.0, after.1 - before.1);
    println!("bob heard {received} frames from alice under the crowd (chat and transfer), {lost} lost");
    assert!(carol_join < bob_join * 3 + Duration::from_secs(5), "carol's join took {carol_join:?}");
    assert!(received > 50 && lost * 20 <= received, "alice stays heard: {received} received, {lost} lost");
    // QUIC connections share one socket; what TCP may hold is capped above.
    assert!(
        fds_under_attack <= calm_fds + 8 + 32 + 64,
        "descriptors went from {calm_fds} to {fds_under_attack} under attack"
    );
    assert!(peak_fds <= calm_fds + 8 + 32 + 64, "descriptors went from {calm_fds} to {peak_fds}");

    // Strangers' streams end after their time; the ones the crowd still holds are closed.
    std::thread::sleep(STRANGER_TTL.saturating_sub(held.elapsed()));
    let party = crowd[0].kept(party);
    assert!(party.is_empty(), "{} strangers' party streams outlived their time", party.len());
    // And their connections after theirs.
    std::thread::sleep(STRANGER_LIFETIME.saturating_sub(arrived.elapsed()));
    let still = connected.iter().filter(|a| a.connected(Duration::ZERO)).count();
    println!("{still} of the crowd's {} connections left after {:?}", connected.len(), arrived.elapsed());
    assert_eq!(still, 0, "strangers' connections are closed after their time");
    let stats = alice.stats();
    println!("host's counters: {stats}");
    assert!(count(&stats, "streams_refused") >= 2 * connected.len() as u64, "{stats}");
    assert_eq!(
        partyline_tests::roster(&alice.seen()),
        ["alice", "bob", "carol"],
        "no stranger became a member"
    );
}
