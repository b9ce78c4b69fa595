//! Property tests: every link and message round-trips, and no input makes a decoder panic.

use std::num::NonZeroU32;
use std::time::Duration;

use libp2p_identity::{PeerId, ed25519};
use multiaddr::Multiaddr;
use proptest::prelude::*;

use crate::invite::InviteTerms;
use crate::link::JoinLink;
use crate::party::{PartyId, PartySalt};
use crate::time::UnixTime;
use crate::wire::{self, *};

fn keypair() -> impl Strategy<Value = ed25519::Keypair> {
    any::<[u8; 32]>().prop_map(|b| ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(b).unwrap()))
}

fn peer() -> impl Strategy<Value = PeerId> {
    keypair().prop_map(|k| libp2p_identity::PublicKey::from(k.public()).to_peer_id())
}

fn addr() -> impl Strategy<Value = Multiaddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| {
            format!("/ip4/{}.{}.{}.{}/udp/{port}/quic-v1", ip[0], ip[1], ip[2], ip[3]).parse().unwrap()
        }),
        (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, port)| {
            let ip = std::net::Ipv6Addr::from(ip);
            format!("/ip6/{ip}/tcp/{port}").parse().unwrap()
        }),
        (peer(), any::<u16>()).prop_map(|(relay, port)| {
            format!("/ip4/10.0.0.1/udp/{port}/quic-v1/p2p/{relay}/p2p-circuit").parse().unwrap()
        }),
        "[a-z]{1,20}\\.[a-z]{2,5}".prop_map(|host| format!("/dns4/{host}/tcp/443").parse().unwrap()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_äöü☺]([a-zA-Z0-9 _äöü☺]{0,6}[a-zA-Z0-9_äöü☺])?"
}

fn terms() -> impl Strategy<Value = InviteTerms> {
    (1u64..10_000_000, any::<Option<NonZeroU32>>())
        .prop_map(|(secs, max_uses)| InviteTerms { lifetime: Duration::from_secs(secs), max_uses })
}

fn link() -> impl Strategy<Value = JoinLink> {
    (
        keypair(),
        any::<[u8; 8]>(),
        terms(),
        0u64..=u64::from(u32::MAX) * 4,
        prop::collection::vec(addr(), 0..=8),
    )
        .prop_map(|(k, salt, terms, now, addrs)| {
            JoinLink::mint(&k, PartySalt(salt), terms, UnixTime(now), addrs)
        })
}

fn presence() -> impl Strategy<Value = Presence> {
    prop_oneof![Just(Presence::Online), Just(Presence::Away), Just(Presence::Muted)]
}

fn reason() -> impl Strategy<Value = LeaveReason> {
    prop_oneof![
        Just(LeaveReason::Left),
        Just(LeaveReason::Timeout),
        Just(LeaveReason::Kicked),
        Just(LeaveReason::Banned)
    ]
}

fn chat() -> impl Strategy<Value = ChatMessage> {
    (any::<u64>(), peer(), name(), "[^\\x00]{1,200}", any::<u64>(), any::<u64>())
        .prop_map(|(seq, from, name, text, ts_ms, nonce)| ChatMessage { seq, from, name, text, ts_ms, nonce })
}

fn roster() -> impl Strategy<Value = Roster> {
    let member = (peer(), name(), presence(), prop::collection::vec(addr(), 0..=MAX_MEMBER_ADDRS))
        .prop_map(|(peer, name, presence, addrs)| Member { peer, name, presence, addrs });
    let departure =
        (peer(), name(), reason()).prop_map(|(peer, name, reason)| Departure { peer, name, reason });
    (
        any::<[u8; 16]>(),
        any::<u64>(),
        prop::collection::vec(member, 1..8),
        prop::collection::vec(departure, 0..=MAX_DEPARTED),
    )
        .prop_map(|(party, version, members, departed)| Roster {
            party: PartyId(party),
            version,
            members,
            departed,
        })
}

fn rejection() -> impl Strategy<Value = Rejection> {
    prop_oneof![
        Just(Rejection::Banned),
        Just(Rejection::UnknownParty),
        Just(Rejection::NotHosted),
        any::<u32>().prop_map(|max| Rejection::PartyFull { max }),
        Just(Rejection::Invite(crate::InviteError::BadSignature)),
        Just(Rejection::Invite(crate::InviteError::Revoked)),
        Just(Rejection::Kicked),
        Just(Rejection::CannotCheck),
        any::<u64>().prop_map(|t| Rejection::Invite(crate::InviteError::Expired { at: UnixTime(t) })),
        any::<u32>().prop_map(|max| Rejection::Invite(crate::InviteError::UsedUp { max })),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (link(), name(), prop::collection::vec(addr(), 0..=MAX_MEMBER_ADDRS)).prop_map(|(l, name, addrs)| {
            Message::Join(Box::new(Join { invite: l.invite().clone(), name, addrs }))
        }),
        (roster(), any::<u64>())
            .prop_map(|(roster, chat_head)| Message::Welcome(Welcome { roster, chat_head })),
        rejection().prop_map(Message::Rejected),
        any::<[u8; 16]>().prop_map(|p| Message::Hello { party: PartyId(p) }),
        roster().prop_map(Message::Roster),
        (any::<u64>(), "[^\\x00]{1,300}").prop_map(|(nonce, text)| Message::ChatSubmit { nonce, text }),
        chat().prop_map(Message::Chat),
        any::<u64>().prop_map(|after| Message::ChatSync { after }),
        (prop::collection::vec(chat(), 0..10), any::<u64>())
            .prop_map(|(messages, head)| Message::ChatPage { messages, head }),
        presence().prop_map(Message::Presence),
        Just(Message::Leave),
        any::<bool>().prop_map(|banned| Message::Kicked { banned }),
        Just(Message::PartyEnded),
        (0u16..=1000, any::<u16>())
            .prop_map(|(loss_permille, jitter_ms)| Message::VoiceReport { loss_permille, jitter_ms }),
        ("[a-z][a-z0-9-]{0,63}", prop::collection::vec(any::<u8>(), 0..2000))
            .prop_map(|(plugin, data)| Message::Plugin { plugin, data }),
        (1u16..).prop_map(|port| Message::VoiceEndpoint { port }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn links_round_trip(link in link()) {
        let text = link.to_string();
        let parsed: JoinLink = text.parse().unwrap();
        prop_assert_eq!(&parsed, &link);
        prop_assert_eq!(parsed.invite().verify(), Ok(()));
    }

    #[test]
    fn messages_round_trip(msg in message()) {
        let bytes = wire::encode(&msg);
        prop_assert_eq!(wire::decode(&bytes).unwrap(), msg.clone());
        let framed = wire::frame(&msg);
        prop_assert_eq!(wire::frame_len(framed[..4].try_into().unwrap()).unwrap(), bytes.len());
    }

    #[test]
    fn link_decoder_never_panics(payload in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = JoinLink::from_payload(&payload);
    }

    #[test]
    fn link_text_decoder_never_panics(text in "\\PC{0,300}") {
        let _ = text.parse::<JoinLink>();
        let _ = format!("partyline://join/{text}").parse::<JoinLink>();
    }

    #[test]
    fn message_decoder_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Some(first) = bytes.first_mut() { *first = WIRE_VERSION; }
        let _ = wire::decode(&bytes);
    }

    #[test]
    fn voice_frames_round_trip_and_garbage_never_panics(
        seq in any::<u32>(), ts in any::<u32>(), talking in any::<bool>(), end in any::<bool>(),
        lookback in any::<bool>(), level in prop::option::of(0u8..=127),
        pose in prop::option::of((-1e6f32..1e6, -1e6f32..1e6, -1e6f32..1e6, -7f32..7f32)),
        opus in prop::collection::vec(any::<u8>(), 1..=crate::voice::MAX_OPUS_PACKET),
        redundant in prop::option::of(prop::collection::vec(any::<u8>(), 1..=crate::voice::MAX_OPUS_PACKET)),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        use crate::voice::{Pose, VoiceFrame};
        let pose = pose.map(|(x, y, z, yaw)| Pose { x, y, z, yaw });
        let redundant = redundant.as_deref();
        let frame = VoiceFrame { seq, ts, talking, end, lookback, level, pose, opus: &opus, redundant };
        let framed = frame.to_framed();
        prop_assert_eq!(VoiceFrame::decode(&framed[2..]).unwrap(), frame);
        let _ = VoiceFrame::decode(&garbage);
    }

    #[test]
    fn mutated_messages_never_panic(msg in message(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = wire::encode(&msg);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = wire::decode(&bytes);
    }
}

mod content {
    use proptest::prelude::*;

    use crate::blobs::{BlobAnswer, BlobRequest};
    use crate::content::{Entry, EntryKind, Layout, MIN_PIECE, Manifest};

    proptest! {
        #[test]
        fn manifest_and_blob_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Manifest::decode(&bytes, &Manifest::id_of(&bytes));
            let _ = BlobRequest::decode(&bytes);
            let _ = BlobAnswer::decode(&bytes);
        }

        #[test]
        fn pieces_cover_every_byte_once(sizes in prop::collection::vec(0u64..3_000_000, 1..12)) {
            let mut entries = vec![Entry { path: "g".into(), kind: EntryKind::Dir { mode: 0o755 } }];
            for (i, size) in sizes.iter().enumerate() {
                entries.push(Entry { path: format!("g/f{i:02}"), kind: EntryKind::File { size: *size, mode: 0o644 } });
            }
            let m = Manifest { piece_size: MIN_PIECE, pieces_root: [0; 32], entries };
            prop_assert!(m.check().is_ok());
            let layout = Layout::new(&m);
            let mut per_file = vec![0u64; m.entries.len()];
            for piece in 0..layout.pieces() {
                let segments = layout.segments(piece);
                prop_assert_eq!(segments.iter().map(|s| s.len).sum::<u64>(), layout.piece_len(piece));
                for s in segments {
                    prop_assert_eq!(s.offset, per_file[s.entry]);
                    per_file[s.entry] += s.len;
                }
            }
            for (i, size) in sizes.iter().enumerate() {
                prop_assert_eq!(per_file[i + 1], *size);
            }
        }
    }
}
