//! Every event's JSON, compared with `golden.jsonl`: the field names front ends and scripts read
//! (README lists them) stay as they are, and what is written reads back as the same event.

use std::path::PathBuf;

use libp2p::PeerId;
use libp2p::identity::Keypair;
use partyline_protocol::voice::Pose;
use partyline_protocol::wire::{LeaveReason, Presence};
use partyline_protocol::{ContentId, InviteId, PartyId, UnixTime};

use crate::events::*;

fn peer(n: u8) -> PeerId {
    Keypair::ed25519_from_bytes([n; 32]).unwrap().public().to_peer_id()
}

fn member(n: u8, me: bool, path: Path) -> MemberInfo {
    MemberInfo { peer: peer(n), name: format!("m{n}"), presence: Presence::Away, owner: n == 1, me, path }
}

/// One of each event (and of each panel element).
fn samples() -> Vec<NodeEvent> {
    let (p, id) = (peer(1), ContentId([7; 32]));
    let voice = VoiceStats {
        input: Some("mic".into()),
        output: None,
        input_level_db: -30.5,
        input_block_ms: 10.0,
        input_overruns: 1,
        mode: "ptt".into(),
        talking: true,
        sent_kbps: 40.25,
        fec_loss_percent: 5,
        redundancy: true,
        unknown_frames: 2,
        malformed_frames: 3,
        frames_in: 4,
        dropped_stale: 5,
        dropped_queue_full: 6,
        dropped_inbound: 7,
        streams_refused: 8,
        datagrams_in: 9,
        datagrams_out: 10,
        datagram_paths: 1,
        members: vec![MemberVoiceStats {
            peer: p,
            name: "m1".into(),
            loss: 0.5,
            jitter_ms: 1.5,
            buffer_ms: 40.0,
            ring_ms: 20.0,
            wait_ms: 30.0,
            target_ms: 35.0,
            kbps: 32.0,
            received: 11,
            lost: 12,
            fec: 13,
            recovered: 14,
            concealed: 15,
            late: 16,
            dropped: 17,
            faster_ms: 18,
            slower_ms: 19,
            underruns: 20,
            speaking: true,
        }],
    };
    let stats = Stats {
        frames_in: 1,
        dropped_oversize: 2,
        dropped_malformed: 3,
        dropped_rate_limited: 4,
        dropped_unauthorized: 5,
        streams_refused: 6,
        events_lost: 7,
        plugin_messages_lost: 8,
        dropped_outbound: 9,
    };
    let elements = vec![
        PanelElement::Text("t".into()),
        PanelElement::Heading("h".into()),
        PanelElement::Button { id: "b".into(), label: "B".into() },
        PanelElement::Input { id: "i".into(), placeholder: "p".into(), value: "v".into() },
        PanelElement::Items(vec!["a".into(), "b".into()]),
        PanelElement::Progress { label: "l".into(), done: 1, total: 2 },
        PanelElement::Qr("q".into()),
        PanelElement::Image { width: 1, height: 1, rgba: vec![0; 4] },
    ];
    let (name, label, path) = ("game".to_owned(), "Game".to_owned(), PathBuf::from("/lib/game"));
    vec![
        NodeEvent::Listening { addrs: vec!["/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap()] },
        NodeEvent::Link {
            link: "partyline://x".into(),
            invite: InviteId([1; 10]),
            expires: UnixTime(60),
            max_uses: Some(16),
        },
        NodeEvent::LinkOffered { party: PartyId([2; 16]), owner: p },
        NodeEvent::LinkOfferClosed { joining: true },
        NodeEvent::Joined {
            party: PartyId([2; 16]),
            members: vec![member(1, false, Path::Direct), member(2, true, Path::Offline)],
        },
        NodeEvent::MemberJoined { peer: p, name: "m1".into() },
        NodeEvent::MemberLeft { peer: p, name: "m1".into(), reason: LeaveReason::Banned },
        NodeEvent::Presence { peer: p, name: "m1".into(), presence: Presence::Muted },
        NodeEvent::Chat { seq: 3, peer: p, from: "m1".into(), text: "hi".into(), ts_ms: 5, history: true },
        NodeEvent::Members { members: vec![member(1, false, Path::Relayed), member(2, true, Path::Offline)] },
        NodeEvent::Connection { peer: p, name: "m1".into(), path: Path::Direct },
        NodeEvent::HolePunch { peer: p, name: "m1".into(), ok: false, error: Some("no".into()) },
        NodeEvent::Revoked { invites: vec![InviteId([3; 10])] },
        NodeEvent::Speaking { peer: p, name: "m1".into(), on: true },
        NodeEvent::VoiceState { muted: true, deafened: false },
        NodeEvent::VoiceStats(voice),
        NodeEvent::Positions {
            me: Some(Pose { x: 1.0, y: 2.0, z: 3.0, yaw: std::f32::consts::FRAC_PI_2 }),
            members: vec![MemberPose {
                peer: p,
                name: "m1".into(),
                pose: Pose { x: 0.0, y: 0.5, z: -1.0, yaw: 0.0 },
            }],
        },
        NodeEvent::Positions { me: None, members: vec![] },
        NodeEvent::AudioStarted { source: "microphone", at_ms: 9 },
        NodeEvent::Reconnecting { attempt: 2 },
        NodeEvent::Stats(stats),
        NodeEvent::PluginMessage { peer: p, plugin: "game-store".into(), data: vec![1, 2, 3] },
        NodeEvent::PluginPanel {
            plugin: "game-store".into(),
            name: "Games".into(),
            title: "T".into(),
            elements,
        },
        NodeEvent::PluginToast { plugin: "game-store".into(), text: "hello".into(), outcome: None },
        NodeEvent::PluginToast {
            plugin: "game-store".into(),
            text: "Star Fox installed".into(),
            outcome: Some(Outcome::Done),
        },
        NodeEvent::PluginAsks { plugin: "x".into(), name: "X".into(), permissions: vec!["ui".into()] },
        NodeEvent::PathAsked { plugin: "x".into(), name: "X".into(), path: "/home/a".into() },
        NodeEvent::PathAskClosed { plugin: "x".into(), shared: false },
        NodeEvent::PluginStopped { plugin: "x".into(), reason: "crashed".into() },
        NodeEvent::Shared { id, name: name.clone(), total: 10, files: 2, path: path.clone() },
        NodeEvent::Transfer {
            id,
            name: name.clone(),
            label: label.clone(),
            done: 1,
            total: 10,
            peers: 2,
            direct: 1,
            plugin: None,
        },
        NodeEvent::TransferComplete {
            id,
            name: name.clone(),
            label: label.clone(),
            total: 10,
            files: 2,
            path,
            plugin: None,
        },
        NodeEvent::TransferFailed { id, name, label, message: "no space".into(), plugin: None },
        NodeEvent::TransferPeerDropped { id, peer: p, reason: "bad piece".into() },
        NodeEvent::CompanionPairing { url: "https://192.168.1.20:47800/#token.fingerprint".into() },
        NodeEvent::DeviceWaiting { name: "Pixel".into(), code: "123456".into() },
        NodeEvent::DevicePaired { name: "Pixel".into() },
        NodeEvent::DeviceRevoked { name: "Pixel".into() },
        NodeEvent::DeviceConnected { name: "Pixel".into() },
        NodeEvent::Headset { device: Some("Pixel".into()) },
        NodeEvent::Headset { device: None },
        NodeEvent::DeviceLeft { name: "Pixel".into() },
        NodeEvent::Devices { devices: vec![("Pixel".into(), 5)] },
        NodeEvent::Error { message: "oops".into() },
        NodeEvent::JoinFailed { message: "refused".into() },
        NodeEvent::Kicked { banned: true },
        NodeEvent::PartyEnded,
        NodeEvent::Left,
    ]
}

#[test]
fn every_event_writes_the_documented_json() {
    let written: Vec<String> = samples().iter().map(|e| super::to_json(e).to_string()).collect();
    let golden = include_str!("golden.jsonl");
    if std::env::var_os("PARTYLINE_WRITE_GOLDEN").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/event_json/golden.jsonl"),
            written.join("\n") + "\n",
        )
        .unwrap();
    }
    let golden: Vec<&str> = golden.lines().collect();
    assert_eq!(written.len(), golden.len());
    for (w, g) in written.iter().zip(golden) {
        let (w, g): (serde_json::Value, serde_json::Value) =
            (serde_json::from_str(w).unwrap(), serde_json::from_str(g).unwrap());
        assert_eq!(w, g);
    }
}

#[test]
fn what_is_written_reads_back_as_the_same_event() {
    for event in samples() {
        let json = super::Event::from(&event);
        assert_eq!(super::Event::from_line(&json.to_line()), Some(json.clone()), "{json:?}");
    }
    assert_eq!(super::Event::from_line(r#"{"event":"from-the-future","x":1}"#), Some(super::Event::Unknown));
    assert_eq!(super::Event::from_line("not json"), None);
}
