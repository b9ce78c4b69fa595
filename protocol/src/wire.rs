//! Messages between party members, their encoding and their limits.
//!
//! A message on the wire is `[WIRE_VERSION][postcard(Message)]`, at most [`MAX_MESSAGE_LEN`] bytes;
//! on a stream each one is preceded by its length as a 4-byte big-endian integer ([`frame`],
//! [`frame_len`]). [`decode`] refuses anything oversize, of another version, malformed, followed
//! by junk, or breaking a field limit, and says which.
//!
//! Who sends what (the owner is the party's host: it admits members, keeps the roster and orders
//! the chat):
//!
//! ```text
//! joiner -> owner   Join            owner -> joiner  Welcome | Rejected
//! member -> member  Hello           (opens a mesh link; each side opens its own one-way stream)
//! owner -> members  Roster, Chat, ChatPage, Kicked, PartyEnded
//! member -> owner   ChatSubmit, ChatSync, Presence, Leave
//! member -> member  VoiceReport     (how the sender's voice arrives)
//! member -> member  VoiceEndpoint   (where its voice datagrams are received)
//! member -> member  Plugin          (a plugin's bytes for the same plugin there)
//! ```

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::invite::{Invite, InviteError};
use crate::party::PartyId;

pub const WIRE_VERSION: u8 = 1;
/// Largest encoded message, version byte included.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Bytes of a display name.
pub const MAX_NAME_LEN: usize = 32;
/// Bytes of a chat message.
pub const MAX_CHAT_LEN: usize = 2000;
/// Members in a party: every pair keeps a voice link, so parties are small by design.
pub const MAX_MEMBERS: usize = 64;
/// Addresses a member advertises.
pub const MAX_MEMBER_ADDRS: usize = 6;
/// Bytes of one advertised address.
pub const MAX_ADDR_LEN: usize = 160;
/// Messages in one chat history page.
pub const MAX_CHAT_PAGE: usize = 64;
/// Recent departures a roster carries so members learn why someone left.
pub const MAX_DEPARTED: usize = 16;
/// Longest plugin id, and most bytes in one plugin message.
pub const MAX_PLUGIN_ID: usize = 64;
pub const MAX_PLUGIN_DATA: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Join(Box<Join>),
    Welcome(Welcome),
    Rejected(Rejection),
    Hello {
        party: PartyId,
    },
    Roster(Roster),
    /// `nonce` lets the sender recognise its own message when the owner echoes it, and the owner
    /// drop a resubmission it already ordered.
    ChatSubmit {
        nonce: u64,
        text: String,
    },
    Chat(ChatMessage),
    /// Asks for the ordered chat after `after` (a sequence number).
    ChatSync {
        after: u64,
    },
    ChatPage {
        messages: Vec<ChatMessage>,
        head: u64,
    },
    Presence(Presence),
    Leave,
    Kicked {
        banned: bool,
    },
    PartyEnded,
    /// How a member hears us: loss in ‰ and jitter over the last seconds. Senders tune their
    /// encoder (forward error correction) to the worst report.
    VoiceReport {
        loss_permille: u16,
        jitter_ms: u16,
    },
    /// Bytes from a plugin to the same plugin (`plugin`, its id) on another member.
    Plugin {
        plugin: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The UDP port of the sender's voice datagram endpoint, at the IPs the receiver reaches it
    /// directly: voice then goes over datagrams instead of streams.
    VoiceEndpoint {
        port: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    pub invite: Invite,
    pub name: String,
    /// Where other members can reach the joiner.
    pub addrs: Vec<Multiaddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub roster: Roster,
    /// The newest chat sequence number; the joiner asks for what it lacks with `ChatSync`.
    pub chat_head: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    #[error("{0}")]
    Invite(InviteError),
    #[error("you are banned from this party")]
    Banned,
    #[error("this party no longer exists: its owner ended it or does not host it any more")]
    UnknownParty,
    #[error("the party is full ({max} members)")]
    PartyFull { max: u32 },
    /// The owner's node is up but is not hosting this party at the moment (it may be starting).
    #[error("the party's owner is online but not hosting the party right now")]
    NotHosted,
    /// Kicked out with this invite: a new link from the owner lets the member back in.
    #[error("you were kicked from this party; ask its owner for a new link")]
    Kicked,
    /// The owner could not check the join against its records (a storage error): refused, not let in.
    #[error("the party's owner cannot check invites right now; try again later")]
    CannotCheck,
}

/// The owner's view of who is in the party, sent whole on every change (parties are small).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub party: PartyId,
    /// Increases with every change; members ignore older snapshots.
    pub version: u64,
    pub members: Vec<Member>,
    pub departed: Vec<Departure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub peer: PeerId,
    pub name: String,
    pub presence: Presence,
    pub addrs: Vec<Multiaddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Presence {
    Online,
    Away,
    Muted,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Muted => "muted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    pub peer: PeerId,
    pub name: String,
    pub reason: LeaveReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeaveReason {
    Left,
    Timeout,
    Kicked,
    Banned,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Timeout => "timeout",
            Self::Kicked | Self::Banned => "kicked",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Position in the party's one chat order, assigned by the owner, from 1.
    pub seq: u64,
    pub from: PeerId,
    pub name: String,
    pub text: String,
    /// When the owner ordered it, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The sender's `ChatSubmit` nonce.
    pub nonce: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("message of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")]
    Oversize { len: usize },
    #[error("unknown wire version {0} (this node speaks {WIRE_VERSION})")]
    UnknownVersion(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message has {0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("message breaks a limit: {0}")]
    Limit(&'static str),
}

pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION];
    postcard::to_io(msg, &mut out).expect("writing to a Vec cannot fail");
    out
}

pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(WireError::Oversize { len: bytes.len() });
    }
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnknownVersion(version));
    }
    let (msg, rest) =
        postcard::take_from_bytes::<Message>(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    validate(&msg)?;
    Ok(msg)
}

/// A length-prefixed frame for a stream. Panics if `msg` encodes beyond the limit, which only a bug
/// in this node can cause: everything it sends is built within the limits.
pub fn frame(msg: &Message) -> Vec<u8> {
    let body = encode(msg);
    assert!(
        body.len() <= MAX_MESSAGE_LEN,
        "encoded {:?} is {} bytes",
        std::mem::discriminant(msg),
        body.len()
    );
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The body length announced by a frame header, refused before anything is read if oversize.
pub fn frame_len(header: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(header) as usize;
    match len {
        0 => Err(WireError::Empty),
        n if n > MAX_MESSAGE_LEN => Err(WireError::Oversize { len: n }),
        n => Ok(n),
    }
}

/// Packs `messages`, in order, into one `ChatPage` that stays within [`MAX_CHAT_PAGE`] messages and
/// [`MAX_MESSAGE_LEN`] bytes; returns the page and how many messages it took.
pub fn chat_page(messages: &[ChatMessage], head: u64) -> (Message, usize) {
    // Upper bound of one encoded ChatMessage: varints (≤10 bytes each ×3), peer id (≤ 42 bytes with
    // its length), and the two strings with their length prefixes.
    let budget = MAX_MESSAGE_LEN - 64;
    let mut used = 0;
    let mut taken = 0;
    for m in messages.iter().take(MAX_CHAT_PAGE) {
        let size = 30 + 42 + 3 + m.name.len() + 3 + m.text.len();
        if used + size > budget {
            break;
        }
        used += size;
        taken += 1;
    }
    (Message::ChatPage { messages: messages[..taken].to_vec(), head }, taken)
}

/// A display name as this node will accept it: trimmed, 1..=32 bytes, in NFKC form (see
/// [`normal_name`]), no control characters, and none of the invisible ones that make a name look
/// like another or turn the text around it (format and bidirectional controls).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.trim() == name
        && !name.chars().any(|c| c.is_control() || invisible(c))
        && unicode_normalization::is_nfkc(name)
}

/// A name as a node sends it: NFKC (compatibility forms folded: full-width letters, ligatures),
/// invisible and control characters left out, trimmed.
pub fn normal_name(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let kept: String = name.chars().filter(|&c| !c.is_control() && !invisible(c)).collect();
    kept.nfkc().collect::<String>().trim().to_owned()
}

/// Characters that draw nothing or reorder text: zero-width ones, joiners, bidirectional marks,
/// embeddings, overrides and isolates, the byte-order mark, tag characters.
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// A plugin id: 1 to 64 lower-case letters, digits and `-`, starting with a letter.
pub fn valid_plugin_id(id: &str) -> bool {
    (1..=MAX_PLUGIN_ID).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check(ok: bool, what: &'static str) -> Result<(), WireError> {
    if ok { Ok(()) } else { Err(WireError::Limit(what)) }
}

fn check_addrs(addrs: &[Multiaddr]) -> Result<(), WireError> {
    check(addrs.len() <= MAX_MEMBER_ADDRS, "more than 6 addresses")?;
    check(addrs.iter().all(|a| a.as_ref().len() <= MAX_ADDR_LEN), "address longer than 160 bytes")
}

fn check_chat(m: &ChatMessage) -> Result<(), WireError> {
    check(valid_name(&m.name), "chat sender name")?;
    check(!m.text.is_empty() && m.text.len() <= MAX_CHAT_LEN, "chat text empty or over 2000 bytes")
}

fn validate(msg: &Message) -> Result<(), WireError> {
    match msg {
        Message::Join(j) => {
            check(valid_name(&j.name), "name must be 1-32 bytes without control characters")?;
            check_addrs(&j.addrs)
        }
        Message::Welcome(w) => validate_roster(&w.roster),
        Message::Roster(r) => validate_roster(r),
        Message::ChatSubmit { text, .. } => {
            check(!text.is_empty() && text.len() <= MAX_CHAT_LEN, "chat text empty or over 2000 bytes")
        }
        Message::Chat(m) => check_chat(m),
        Message::ChatPage { messages, .. } => {
            check(messages.len() <= MAX_CHAT_PAGE, "more than 64 messages in a page")?;
            messages.iter().try_for_each(check_chat)
        }
        Message::VoiceReport { loss_permille, .. } => {
            check(*loss_permille <= 1000, "loss above 1000 permille")
        }
        Message::VoiceEndpoint { port } => check(*port != 0, "voice endpoint port 0"),
        Message::Plugin { plugin, data } => {
            check(valid_plugin_id(plugin), "plugin id")?;
            check(data.len() <= MAX_PLUGIN_DATA, "plugin message over 16 KiB")
        }
        Message::Rejected(_)
        | Message::Hello { .. }
        | Message::ChatSync { .. }
        | Message::Presence(_)
        | Message::Leave
        | Message::Kicked { .. }
        | Message::PartyEnded => Ok(()),
    }
}

fn validate_roster(r: &Roster) -> Result<(), WireError> {
    check(!r.members.is_empty() && r.members.len() <= MAX_MEMBERS, "roster has 0 or more than 64 members")?;
    check(r.departed.len() <= MAX_DEPARTED, "more than 16 departures")?;
    for m in &r.members {
        check(valid_name(&m.name), "member name")?;
        check_addrs(&m.addrs)?;
    }
    r.departed.iter().try_for_each(|d| check(valid_name(&d.name), "departed member name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(seed: u8) -> PeerId {
        let key = libp2p_identity::ed25519::SecretKey::try_from_bytes([seed; 32]).unwrap();
        libp2p_identity::PublicKey::from(libp2p_identity::ed25519::Keypair::from(key).public()).to_peer_id()
    }

    fn chat(seq: u64, text: &str) -> ChatMessage {
        ChatMessage {
            seq,
            from: peer(1),
            name: "bob".into(),
            text: text.into(),
            ts_ms: 1_700_000_000_000,
            nonce: 7,
        }
    }

    #[test]
    fn chat_is_compact() {
        let bytes = encode(&Message::Chat(chat(1, "hi")));
        // version + tag + seq + peer id (38) + name + text + ts + nonce
        assert!(bytes.len() < 60, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), Message::Chat(chat(1, "hi")));
    }

    #[test]
    fn refuses_what_it_should_and_says_why() {
        assert_eq!(decode(&[]), Err(WireError::Empty));
        assert_eq!(decode(&[2, 0]), Err(WireError::UnknownVersion(2)));
        assert!(matches!(decode(&[WIRE_VERSION, 200]), Err(WireError::Malformed(_))));
        let mut trailing = encode(&Message::Leave);
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(WireError::TrailingBytes(1)));
        let huge = vec![WIRE_VERSION; MAX_MESSAGE_LEN + 1];
        assert_eq!(decode(&huge), Err(WireError::Oversize { len: MAX_MESSAGE_LEN + 1 }));
        let long = "x".repeat(MAX_CHAT_LEN + 1);
        let bytes = encode(&Message::ChatSubmit { nonce: 1, text: long });
        assert!(matches!(decode(&bytes), Err(WireError::Limit(_))));
        let bytes = encode(&Message::Chat(ChatMessage { name: "a\u{7}b".into(), ..chat(1, "x") }));
        assert!(matches!(decode(&bytes), Err(WireError::Limit(_))));
        let plugin =
            |plugin: &str, len: usize| encode(&Message::Plugin { plugin: plugin.into(), data: vec![1; len] });
        assert!(decode(&plugin("game-store", MAX_PLUGIN_DATA)).is_ok());
        for bad in
            [plugin("game-store", MAX_PLUGIN_DATA + 1), plugin("../x", 1), plugin("", 1), plugin("Store", 1)]
        {
            assert!(matches!(decode(&bad), Err(WireError::Limit(_))));
        }
    }

    #[test]
    fn frames_announce_their_length() {
        let frame = frame(&Message::Leave);
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        assert_eq!(decode(&frame[4..]).unwrap(), Message::Leave);
        assert_eq!(frame_len(0u32.to_be_bytes()), Err(WireError::Empty));
        assert!(matches!(frame_len(u32::MAX.to_be_bytes()), Err(WireError::Oversize { .. })));
    }

    #[test]
    fn a_full_roster_fits_the_message_limit() {
        let addr: Multiaddr =
            format!("/ip6/2001:db8::1/udp/65000/quic-v1/p2p/{}/p2p-circuit", peer(2)).parse().unwrap();
        let members = (0..MAX_MEMBERS as u8)
            .map(|i| Member {
                peer: peer(i),
                name: "n".repeat(MAX_NAME_LEN),
                presence: Presence::Online,
                addrs: vec![addr.clone(); MAX_MEMBER_ADDRS],
            })
            .collect();
        let departed = (0..MAX_DEPARTED as u8)
            .map(|i| Departure { peer: peer(i), name: "d".repeat(MAX_NAME_LEN), reason: LeaveReason::Left })
            .collect();
        let roster = Roster { party: PartyId([1; 16]), version: u64::MAX, members, departed };
        let bytes = encode(&Message::Roster(roster));
        assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} bytes", bytes.len());
        assert!(decode(&bytes).is_ok());
    }

    #[test]
    fn chat_pages_stay_within_limits() {
        let big: Vec<ChatMessage> = (1..=200).map(|i| chat(i, &"y".repeat(MAX_CHAT_LEN))).collect();
        let (page, taken) = chat_page(&big, 200);
        assert!(taken > 0 && taken < MAX_CHAT_PAGE);
        assert!(encode(&page).len() <= MAX_MESSAGE_LEN);
        assert!(decode(&encode(&page)).is_ok());
        let small: Vec<ChatMessage> = (1..=200).map(|i| chat(i, "hi")).collect();
        let (_, taken) = chat_page(&small, 200);
        assert_eq!(taken, MAX_CHAT_PAGE);
        assert_eq!(chat_page(&[], 0).1, 0);
    }

    #[test]
    fn names() {
        assert!(valid_name("alice"));
        assert!(valid_name("Ünïcødé ☺"));
        assert!(!valid_name(""));
        assert!(!valid_name(" alice"));
        assert!(!valid_name("a\nb"));
        assert!(!valid_name(&"x".repeat(33)));
        // Invisible and reordering characters, and forms NFKC folds.
        for bad in ["alice\u{200B}", "al\u{200D}ice", "\u{202E}ecila", "alice\u{2066}", "ﬁsh", "ａlice"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(normal_name(" ａlice\u{200B} "), "alice");
        assert_eq!(normal_name("ﬁsh"), "fish");
        assert!(valid_name(&normal_name("\u{202E}ecila")));
    }
}
