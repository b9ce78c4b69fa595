//! Partyline's wire formats. Pure data: nothing here does I/O, reads clocks or touches the network.
//!
//! - [`party`]: a party's identity, bound to its owner's key.
//! - [`invite`]: invites signed by the owner (expiry, max uses, nonce) and the owner's revocation list.
//! - [`link`]: the `partyline://join/<payload>` link that carries a party, an invite and addresses.
//! - [`wire`]: the messages members exchange, their compact versioned encoding and hard size limits.
//! - [`voice`]: voice frames (an Opus packet with sequence, timestamp and the speaker's pose).
//! - [`content`]: shared content (games, files) addressed by BLAKE3: manifests, piece lists, and
//!   the checks that keep a manifest inside the folder it is unpacked into.
//! - [`blobs`]: requests for content between members (manifest, piece list, runs of pieces).
//! - [`names`]: the protocol names these go by on a connection.
//!
//! Every decoder here takes untrusted bytes and answers with a typed error saying what is wrong.

pub mod blobs;
pub mod content;
mod errors;
pub mod invite;
pub mod link;
pub mod names;
pub mod party;
pub mod time;
pub mod voice;
pub mod wire;

mod compact;
#[cfg(test)]
mod proptests;

pub use content::{ContentId, Manifest};
pub use invite::{Invite, InviteError, InviteId, InviteTerms, RevocationList};
pub use libp2p_identity::{Keypair, PeerId, PublicKey};
pub use link::{JoinLink, LinkError};
pub use multiaddr::Multiaddr;
pub use party::{Party, PartyId, PartySalt};
pub use time::UnixTime;
