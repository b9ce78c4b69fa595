//! Invites to a party, signed by its owner, and the owner's revocation list.
//!
//! An invite names the party (owner key + salt), carries a random nonce that doubles as its id, when it
//! was issued, when it expires and how many different peers may use it. The owner signs all of it, so
//! a changed byte anywhere is caught by [`Invite::verify`]. Whether an invite was revoked or used up is
//! known only to the owner, whose database keeps every revocation and use ([`Invite::admit`] is told
//! the answers). A [`RevocationList`] is a bounded, signed copy of the newest revocations that
//! members can check; admission never depends on it.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use data_encoding::BASE32_NOPAD;
use libp2p_identity::ed25519;
use serde::{Deserialize, Serialize};

use crate::compact::{Reader, Writer};
pub use crate::errors::InviteError;
use crate::errors::LinkError;
use crate::party::{Party, PartyId, PartySalt};
use crate::time::UnixTime;

const INVITE_DOMAIN: &[u8] = b"partyline invite v1\0";
const REVOCATION_DOMAIN: &[u8] = b"partyline revocations v1\0";

/// Invites live for a day unless the owner says otherwise.
pub const DEFAULT_INVITE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The most revoked invites a list keeps; revoking beyond it forgets the oldest-expiring entries,
/// which have expired anyway by the time that many were minted.
pub const MAX_REVOKED: usize = 4096;

/// The invite's random nonce, which is also how the owner refers to it (`/revoke <id>`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InviteId(pub [u8; 10]);

impl InviteId {
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

impl fmt::Debug for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteId({self})")
    }
}

impl FromStr for InviteId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = BASE32_NOPAD
            .decode(s.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("not an invite id: {s:?}"))?;
        <[u8; 10]>::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| format!("not an invite id (expected 16 base32 characters): {s:?}"))
    }
}

/// What the owner decides when minting an invite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InviteTerms {
    pub lifetime: Duration,
    /// `None`: any number of peers may use it.
    pub max_uses: Option<NonZeroU32>,
}

impl Default for InviteTerms {
    fn default() -> Self {
        Self { lifetime: DEFAULT_INVITE_LIFETIME, max_uses: None }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    party: Party,
    id: InviteId,
    issued_at: UnixTime,
    expires_at: UnixTime,
    max_uses: Option<NonZeroU32>,
    /// Digest of the addresses the invite travels with in a link, so that the signature covers every
    /// byte of a link; see [`crate::link`].
    addrs_digest: [u8; 16],
    signature: [u8; 64],
}

impl Invite {
    /// Mints and signs an invite. The party is derived from `owner`'s key and `salt`.
    pub fn mint(
        owner: &ed25519::Keypair,
        salt: PartySalt,
        terms: InviteTerms,
        now: UnixTime,
        addrs_digest: [u8; 16],
    ) -> Self {
        let party = Party::new(owner.public(), salt);
        let mut invite = Self {
            party,
            id: InviteId::random(),
            issued_at: now,
            expires_at: now.saturating_add(terms.lifetime),
            max_uses: terms.max_uses,
            addrs_digest,
            signature: [0; 64],
        };
        let sig = owner.sign(&invite.signed_bytes());
        invite.signature.copy_from_slice(&sig);
        invite
    }

    pub fn party(&self) -> &Party {
        &self.party
    }

    pub fn party_id(&self) -> PartyId {
        self.party.id()
    }

    pub fn id(&self) -> InviteId {
        self.id
    }

    pub fn issued_at(&self) -> UnixTime {
        self.issued_at
    }

    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    pub fn max_uses(&self) -> Option<NonZeroU32> {
        self.max_uses
    }

    pub fn addrs_digest(&self) -> [u8; 16] {
        self.addrs_digest
    }

    /// Checks the owner's signature over every field.
    pub fn verify(&self) -> Result<(), InviteError> {
        if self.party.owner_key().verify(&self.signed_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(InviteError::BadSignature)
        }
    }

    /// Signature and expiry: what anyone holding the invite can check.
    pub fn check(&self, now: UnixTime) -> Result<(), InviteError> {
        self.verify()?;
        if now >= self.expires_at {
            return Err(InviteError::Expired { at: self.expires_at });
        }
        Ok(())
    }

    /// The owner's full admission check, after [`Invite::check`]: `revoked` says whether the owner
    /// revoked it (as its database says), and `used_by_others` counts the distinct peers, other than
    /// the one presenting it, that joined with this invite; a peer re-joining with its own invite
    /// does not use it up.
    pub fn admit(&self, now: UnixTime, revoked: bool, used_by_others: u32) -> Result<(), InviteError> {
        self.check(now)?;
        if revoked {
            return Err(InviteError::Revoked);
        }
        if let Some(max) = self.max_uses
            && used_by_others >= max.get()
        {
            return Err(InviteError::UsedUp { max: max.get() });
        }
        Ok(())
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(INVITE_DOMAIN);
        w.bytes(&self.party.id().0);
        w.bytes(&self.id.0);
        w.bytes(&self.issued_at.0.to_le_bytes());
        w.bytes(&self.expires_at.0.to_le_bytes());
        w.bytes(&self.max_uses.map_or(0, NonZeroU32::get).to_le_bytes());
        w.bytes(&self.addrs_digest);
        w.finish()
    }

    /// Compact layout shared by links and wire messages: key, salt, id, issued, lifetime, uses, sig.
    /// The address digest is not written: a link recomputes it from its addresses, and
    /// [`Invite::to_bytes`] appends it.
    pub(crate) fn write(&self, w: &mut Writer) {
        w.bytes(&self.party.owner_key().to_bytes());
        w.bytes(&self.party.salt().0);
        w.bytes(&self.id.0);
        w.varint(self.issued_at.0);
        w.varint(self.expires_at.0.saturating_sub(self.issued_at.0));
        w.varint(self.max_uses.map_or(0, |n| u64::from(n.get())));
        w.bytes(&self.signature);
    }

    pub(crate) fn read(r: &mut Reader<'_>, addrs_digest: [u8; 16]) -> Result<Self, LinkError> {
        let key: [u8; 32] = r.array("owner key")?;
        let owner = ed25519::PublicKey::try_from_bytes(&key)
            .map_err(|_| LinkError::BadField { field: "owner key", reason: "not an Ed25519 public key" })?;
        let salt = PartySalt(r.array("party salt")?);
        let id = InviteId(r.array("invite id")?);
        let issued_at = UnixTime(r.varint("issued at")?);
        let lifetime = r.varint("lifetime")?;
        let expires_at = UnixTime(
            issued_at
                .0
                .checked_add(lifetime)
                .ok_or(LinkError::BadField { field: "lifetime", reason: "expiry overflows" })?,
        );
        let max_uses = match r.varint("max uses")? {
            0 => None,
            n => Some(
                u32::try_from(n)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or(LinkError::BadField { field: "max uses", reason: "above 2^32-1" })?,
            ),
        };
        let signature = r.array("signature")?;
        Ok(Self {
            party: Party::new(owner, salt),
            id,
            issued_at,
            expires_at,
            max_uses,
            addrs_digest,
            signature,
        })
    }

    /// The standalone layout, as presented to the owner when joining: [`Invite::write`] + digest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.bytes(&self.addrs_digest);
        w.finish()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LinkError> {
        let split = bytes.len().checked_sub(16).ok_or(LinkError::Truncated { field: "address digest" })?;
        let digest = <[u8; 16]>::try_from(&bytes[split..]).expect("16 bytes");
        let mut r = Reader::new(&bytes[..split]);
        let invite = Self::read(&mut r, digest)?;
        if !r.is_empty() {
            return Err(LinkError::TrailingBytes);
        }
        Ok(invite)
    }
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invite")
            .field("party", &self.party.id())
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .field("max_uses", &self.max_uses)
            .finish()
    }
}

impl Serialize for Invite {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> Deserialize<'de> for Invite {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Invite::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Invites the owner has revoked, signed by the owner so that any member can check a copy of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    party: PartyId,
    version: u64,
    revoked: BTreeSet<InviteId>,
}

impl RevocationList {
    pub fn new(party: PartyId) -> Self {
        Self { party, version: 0, revoked: BTreeSet::new() }
    }

    pub fn party(&self) -> PartyId {
        self.party
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn is_revoked(&self, id: &InviteId) -> bool {
        self.revoked.contains(id)
    }

    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &InviteId> {
        self.revoked.iter()
    }

    /// Adds `id`; returns false if it was already revoked. Keeps at most [`MAX_REVOKED`] entries.
    pub fn revoke(&mut self, id: InviteId) -> bool {
        let added = self.revoked.insert(id);
        if added {
            self.version += 1;
            while self.revoked.len() > MAX_REVOKED {
                self.revoked.pop_first();
            }
        }
        added
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(REVOCATION_DOMAIN);
        w.bytes(&self.party.0);
        w.bytes(&self.version.to_le_bytes());
        for id in &self.revoked {
            w.bytes(&id.0);
        }
        w.finish()
    }

    /// The owner's signature over this exact list, for handing a copy to members.
    pub fn sign(&self, owner: &ed25519::Keypair) -> Vec<u8> {
        owner.sign(&self.signed_bytes())
    }

    pub fn verify(&self, party: &Party, signature: &[u8]) -> bool {
        party.id() == self.party && party.owner_key().verify(&self.signed_bytes(), signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn owner(seed: u8) -> ed25519::Keypair {
        ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes([seed; 32]).unwrap())
    }

    const NOW: UnixTime = UnixTime(1_800_000_000);

    #[test]
    fn fresh_invite_checks_out_and_expires_at_its_time() {
        let terms = InviteTerms { lifetime: Duration::from_secs(60), max_uses: None };
        let invite = Invite::mint(&owner(1), PartySalt([1; 8]), terms, NOW, [0; 16]);
        assert_eq!(invite.check(NOW), Ok(()));
        assert_eq!(invite.check(UnixTime(NOW.0 + 59)), Ok(()));
        let err = invite.check(UnixTime(NOW.0 + 60)).unwrap_err();
        assert_eq!(err, InviteError::Expired { at: UnixTime(NOW.0 + 60) });
        assert_eq!(err.to_string(), "invite expired at 2027-01-15T08:01:00Z");
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let invite = Invite::mint(&owner(2), PartySalt([2; 8]), InviteTerms::default(), NOW, [2; 16]);
        let bytes = invite.to_bytes();
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0x01;
            // Either it no longer parses at all, or its signature fails: rejected both ways.
            if let Ok(t) = Invite::from_bytes(&tampered) {
                assert!(t.verify().is_err(), "byte {i} changed but signature still verifies");
            }
        }
    }

    #[test]
    fn another_key_cannot_sign_for_the_party() {
        let real = Invite::mint(&owner(3), PartySalt([3; 8]), InviteTerms::default(), NOW, [0; 16]);
        let mut forged = Invite::mint(&owner(4), PartySalt([3; 8]), InviteTerms::default(), NOW, [0; 16]);
        forged.party = real.party.clone();
        assert_eq!(forged.verify(), Err(InviteError::BadSignature));
    }

    #[test]
    fn admission_honours_revocation_and_uses() {
        let terms = InviteTerms { lifetime: Duration::from_secs(600), max_uses: NonZeroU32::new(2) };
        let invite = Invite::mint(&owner(5), PartySalt([5; 8]), terms, NOW, [0; 16]);
        assert_eq!(invite.admit(NOW, false, 0), Ok(()));
        assert_eq!(invite.admit(NOW, false, 1), Ok(()));
        assert_eq!(invite.admit(NOW, false, 2), Err(InviteError::UsedUp { max: 2 }));
        assert_eq!(invite.admit(NOW, true, 0), Err(InviteError::Revoked));
    }

    #[test]
    fn revocation_list_is_signed_by_the_owner() {
        let key = owner(6);
        let party = Party::new(key.public(), PartySalt([6; 8]));
        let mut list = RevocationList::new(party.id());
        list.revoke(InviteId([1; 10]));
        let sig = list.sign(&key);
        assert!(list.verify(&party, &sig));
        let mut changed = list.clone();
        changed.revoke(InviteId([2; 10]));
        assert!(!changed.verify(&party, &sig));
        let stranger = Party::new(owner(7).public(), PartySalt([6; 8]));
        assert!(!list.verify(&stranger, &sig));
    }

    #[test]
    fn revocation_list_stays_bounded() {
        let mut list = RevocationList::new(PartyId([0; 16]));
        for i in 0..(MAX_REVOKED as u32 + 10) {
            let mut id = [0u8; 10];
            id[..4].copy_from_slice(&i.to_be_bytes());
            list.revoke(InviteId(id));
        }
        assert_eq!(list.len(), MAX_REVOKED);
    }

    #[test]
    fn invite_id_text_round_trips() {
        let id = InviteId::random();
        assert_eq!(id.to_string().parse::<InviteId>().unwrap(), id);
        assert!("zz".parse::<InviteId>().is_err());
    }
}
