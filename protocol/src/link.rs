//! The join link: `partyline://join/<payload>`.
//!
//! The payload is lowercase base32 (no padding) of a compact, versioned binary layout:
//!
//! ```text
//! u8       version (1)
//! invite   owner key (32) | party salt (8) | invite id (10) | issued-at varint |
//!          lifetime varint | max-uses varint (0 = unlimited) | signature (64)
//! u8       address count (at most MAX_LINK_ADDRS)
//! repeated varint length (at most MAX_ADDR_LEN) | multiaddr bytes, without the owner's /p2p suffix
//! ```
//!
//! The owner's signature covers the invite and a digest of the address list, so a link changed
//! anywhere fails to parse, mostly with [`LinkError::Invite`]`(`[`crate::InviteError::BadSignature`]`)`. Expiry is checked against a `now` the
//! caller passes ([`JoinLink::check`]); revocation and use counts only the owner can check.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use libp2p_identity::{PeerId, PublicKey, ed25519};
use multiaddr::{Multiaddr, Protocol};

use crate::compact::{Reader, Writer};
use crate::invite::{Invite, InviteTerms};
use crate::party::{PartyId, PartySalt};
use crate::time::UnixTime;

pub const SCHEME: &str = "partyline";
pub use crate::errors::{JOIN_PREFIX, LINK_VERSION, LinkError};
/// A few reachable addresses: direct ones and relayed ones.
pub const MAX_LINK_ADDRS: usize = 8;
pub const MAX_ADDR_LEN: usize = 160;
/// Longest payload text accepted before decoding, so hostile input costs nothing to refuse.
pub const MAX_PAYLOAD_CHARS: usize = 4096;

/// A parsed, signature-checked join link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinLink {
    invite: Invite,
    addrs: Vec<Multiaddr>,
}

impl JoinLink {
    /// Mints a new invite and the link carrying it. `addrs` beyond [`MAX_LINK_ADDRS`], or longer
    /// than [`MAX_ADDR_LEN`] bytes, are left out; a trailing `/p2p/<owner>` is stripped (the owner's
    /// id is implied by the invite).
    pub fn mint(
        owner: &ed25519::Keypair,
        salt: PartySalt,
        terms: InviteTerms,
        now: UnixTime,
        addrs: impl IntoIterator<Item = Multiaddr>,
    ) -> Self {
        let owner_peer = PublicKey::from(owner.public()).to_peer_id();
        let addrs: Vec<Multiaddr> = addrs
            .into_iter()
            .map(|a| strip_peer(a, owner_peer))
            .filter(|a| a.to_vec().len() <= MAX_ADDR_LEN)
            .take(MAX_LINK_ADDRS)
            .collect();
        let invite = Invite::mint(owner, salt, terms, now, digest_addrs(&addrs));
        Self { invite, addrs }
    }

    pub fn invite(&self) -> &Invite {
        &self.invite
    }

    pub fn party_id(&self) -> PartyId {
        self.invite.party_id()
    }

    pub fn owner(&self) -> PeerId {
        self.invite.party().owner_peer()
    }

    /// Where to reach the owner, each without the `/p2p/<owner>` suffix.
    pub fn addrs(&self) -> &[Multiaddr] {
        &self.addrs
    }

    /// What a joiner can check before dialing: the signature (already checked by parsing) and expiry.
    pub fn check(&self, now: UnixTime) -> Result<(), LinkError> {
        Ok(self.invite.check(now)?)
    }

    pub fn to_payload(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(LINK_VERSION);
        self.invite.write(&mut w);
        w.u8(self.addrs.len() as u8);
        for addr in &self.addrs {
            let bytes = addr.to_vec();
            w.varint(bytes.len() as u64);
            w.bytes(&bytes);
        }
        w.finish()
    }

    pub fn from_payload(payload: &[u8]) -> Result<Self, LinkError> {
        let mut r = Reader::new(payload);
        let version = r.u8("version")?;
        if version != LINK_VERSION {
            return Err(LinkError::UnknownVersion(version));
        }
        let mut invite_part = Reader::new(r.rest());
        // The invite's digest is known only once the addresses after it are read: parse it twice.
        Invite::read(&mut invite_part, [0; 16])?;
        r = invite_part;
        let count = usize::from(r.u8("address count")?);
        if count > MAX_LINK_ADDRS {
            return Err(LinkError::BadField { field: "address count", reason: "more than 8 addresses" });
        }
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.varint("address length")?;
            if len > MAX_ADDR_LEN as u64 {
                return Err(LinkError::BadField { field: "address", reason: "longer than 160 bytes" });
            }
            let bytes = r.take(len as usize, "address")?;
            let addr = Multiaddr::try_from(bytes.to_vec())
                .map_err(|_| LinkError::BadField { field: "address", reason: "not a multiaddr" })?;
            addrs.push(addr);
        }
        if !r.is_empty() {
            return Err(LinkError::TrailingBytes);
        }
        let invite = Invite::read(&mut Reader::new(&payload[1..]), digest_addrs(&addrs))?;
        invite.verify()?;
        Ok(Self { invite, addrs })
    }
}

/// What the invite's signature says about the addresses: a hash of their encoded list.
fn digest_addrs(addrs: &[Multiaddr]) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_derive_key("partyline link addresses v1");
    for addr in addrs {
        let bytes = addr.to_vec();
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}

fn strip_peer(mut addr: Multiaddr, owner: PeerId) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(p)) if p == owner) {
        addr.pop();
    }
    addr
}

impl fmt::Display for JoinLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let payload = BASE32_NOPAD.encode(&self.to_payload()).to_ascii_lowercase();
        write!(f, "{JOIN_PREFIX}{payload}")
    }
}

impl FromStr for JoinLink {
    type Err = LinkError;

    /// Accepts surrounding whitespace, any letter case and a trailing slash, as links get mangled
    /// by chat apps and address bars.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let found = || s.chars().take(40).collect::<String>();
        let (scheme, rest) = s.split_once("://").ok_or_else(|| LinkError::BadScheme { found: found() })?;
        if !scheme.eq_ignore_ascii_case(SCHEME) {
            return Err(LinkError::BadScheme { found: found() });
        }
        let (action, payload) = rest.split_once('/').unwrap_or((rest, ""));
        if !action.eq_ignore_ascii_case("join") {
            return Err(LinkError::BadScheme { found: found() });
        }
        let payload = payload.trim_end_matches('/');
        if payload.is_empty() {
            return Err(LinkError::Truncated { field: "payload" });
        }
        if payload.len() > MAX_PAYLOAD_CHARS {
            return Err(LinkError::BadEncoding(format!(
                "payload is {} characters, more than the {MAX_PAYLOAD_CHARS} a link may have",
                payload.len()
            )));
        }
        let bytes = BASE32_NOPAD.decode(payload.to_ascii_uppercase().as_bytes()).map_err(|e| {
            LinkError::BadEncoding(format!("payload is not base32 ({e}); was the link cut or changed?"))
        })?;
        Self::from_payload(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::*;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn sample() -> (JoinLink, ed25519::Keypair) {
        let key = ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes([9; 32]).unwrap());
        let terms = InviteTerms { lifetime: Duration::from_secs(3600), max_uses: NonZeroU32::new(5) };
        let relay: PeerId = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".parse().unwrap();
        let addrs = vec![
            "/ip4/192.168.1.20/udp/4001/quic-v1".parse().unwrap(),
            "/ip4/192.168.1.20/tcp/4001".parse().unwrap(),
            format!("/ip4/203.0.113.7/udp/4001/quic-v1/p2p/{relay}/p2p-circuit").parse().unwrap(),
        ];
        (JoinLink::mint(&key, PartySalt([4; 8]), terms, NOW, addrs), key)
    }

    #[test]
    fn round_trips_and_stays_short() {
        let (link, _) = sample();
        let text = link.to_string();
        assert!(text.starts_with("partyline://join/"));
        assert!(text.len() < 420, "link is {} chars: {text}", text.len());
        let parsed: JoinLink = text.parse().unwrap();
        assert_eq!(parsed, link);
        assert_eq!(parsed.check(NOW), Ok(()));
        let shouted: JoinLink =
            format!("  {}/ ", text.to_uppercase().replace("PARTYLINE", "Partyline")).parse().unwrap();
        assert_eq!(shouted, link);
    }

    #[test]
    fn strips_the_owners_peer_suffix() {
        let (_, key) = sample();
        let owner = PublicKey::from(key.public()).to_peer_id();
        let addr: Multiaddr = format!("/ip4/10.0.0.1/tcp/1/p2p/{owner}").parse().unwrap();
        let link = JoinLink::mint(&key, PartySalt([1; 8]), InviteTerms::default(), NOW, [addr]);
        assert_eq!(link.addrs()[0], "/ip4/10.0.0.1/tcp/1".parse::<Multiaddr>().unwrap());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let (link, _) = sample();
        let text = link.to_string();
        let payload = text.strip_prefix(JOIN_PREFIX).unwrap();

        assert!(matches!("https://example.com".parse::<JoinLink>(), Err(LinkError::BadScheme { .. })));
        assert!(matches!("partyline://call/abc".parse::<JoinLink>(), Err(LinkError::BadScheme { .. })));
        assert!(matches!("partyline://join/".parse::<JoinLink>(), Err(LinkError::Truncated { .. })));
        assert!(matches!(
            format!("{JOIN_PREFIX}{payload}!!").parse::<JoinLink>(),
            Err(LinkError::BadEncoding(_))
        ));

        let mut bytes = link.to_payload();
        bytes[0] = 9;
        let err = JoinLink::from_payload(&bytes).unwrap_err();
        assert_eq!(err, LinkError::UnknownVersion(9));
        assert!(err.to_string().contains("unknown link version 9"));

        let bytes = link.to_payload();
        assert!(matches!(
            JoinLink::from_payload(&bytes[..bytes.len() - 5]),
            Err(LinkError::Truncated { field: "address" })
        ));

        let err = link.check(UnixTime(NOW.0 + 3600)).unwrap_err();
        assert_eq!(err.to_string(), "invite expired at 2027-01-15T09:00:00Z");
    }

    #[test]
    fn one_changed_byte_anywhere_is_rejected() {
        let (link, _) = sample();
        let bytes = link.to_payload();
        for i in 0..bytes.len() {
            for delta in [1u8, 0x80] {
                let mut tampered = bytes.clone();
                tampered[i] = tampered[i].wrapping_add(delta);
                assert!(JoinLink::from_payload(&tampered).is_err(), "byte {i} changed yet link accepted");
            }
        }
        // The same through the text form: every character of the payload changed to another one.
        let text = link.to_string();
        for i in JOIN_PREFIX.len()..text.len() {
            let mut chars: Vec<char> = text.chars().collect();
            chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
            let tampered: String = chars.into_iter().collect();
            assert!(tampered.parse::<JoinLink>().is_err(), "char {i} changed yet link accepted");
        }
    }
}
