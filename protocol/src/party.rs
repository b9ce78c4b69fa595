//! A party's identity.
//!
//! A party is named by its owner's Ed25519 key and a random salt the owner picks when creating it.
//! Its [`PartyId`] is a hash of both, so nobody without the owner's key can mint invites that a member
//! would accept for that id: the id is bound to the key.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use libp2p_identity::{PeerId, PublicKey, ed25519};
use serde::{Deserialize, Serialize};

/// Domain separation for the party id hash.
const PARTY_ID_DOMAIN: &str = "partyline party id v1";

/// 16 bytes, shown as 26 lowercase base32 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartyId(pub [u8; 16]);

/// The owner's per-party random salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartySalt(pub [u8; 8]);

impl PartySalt {
    pub fn random() -> Self {
        Self(rand::random())
    }
}

/// What identifies a party: its owner's public key and the salt. Everything else derives from it.
#[derive(Clone, PartialEq, Eq)]
pub struct Party {
    owner: ed25519::PublicKey,
    salt: PartySalt,
}

impl Party {
    pub fn new(owner: ed25519::PublicKey, salt: PartySalt) -> Self {
        Self { owner, salt }
    }

    pub fn owner_key(&self) -> &ed25519::PublicKey {
        &self.owner
    }

    pub fn owner_peer(&self) -> PeerId {
        PublicKey::from(self.owner.clone()).to_peer_id()
    }

    pub fn salt(&self) -> PartySalt {
        self.salt
    }

    pub fn id(&self) -> PartyId {
        let mut hasher = blake3::Hasher::new_derive_key(PARTY_ID_DOMAIN);
        hasher.update(&self.owner.to_bytes());
        hasher.update(&self.salt.0);
        let mut id = [0u8; 16];
        id.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        PartyId(id)
    }
}

impl fmt::Debug for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Party").field("id", &self.id()).field("owner", &self.owner_peer()).finish()
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

impl fmt::Debug for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartyId({self})")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a party id (expected 26 base32 characters): {0:?}")]
pub struct BadPartyId(String);

impl FromStr for PartyId {
    type Err = BadPartyId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = BASE32_NOPAD
            .decode(s.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| BadPartyId(s.to_owned()))?;
        let id = <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| BadPartyId(s.to_owned()))?;
        Ok(Self(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> ed25519::PublicKey {
        ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes([seed; 32]).unwrap()).public()
    }

    #[test]
    fn id_is_bound_to_owner_and_salt() {
        let salt = PartySalt([7; 8]);
        let a = Party::new(key(1), salt).id();
        assert_eq!(a, Party::new(key(1), salt).id());
        assert_ne!(a, Party::new(key(2), salt).id(), "another key gives another id");
        assert_ne!(a, Party::new(key(1), PartySalt([8; 8])).id(), "another salt gives another id");
    }

    #[test]
    fn id_text_round_trips() {
        let id = Party::new(key(3), PartySalt::random()).id();
        let text = id.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(text.parse::<PartyId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<PartyId>().unwrap(), id);
        assert!("not-an-id".parse::<PartyId>().is_err());
    }
}
