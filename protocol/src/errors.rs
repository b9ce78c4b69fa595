//! What can be wrong with a join link or the invite in it: the errors the link, its invite and
//! the compact reader under both report (a module of its own, so that none of them needs another
//! for its errors).

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

pub const JOIN_PREFIX: &str = "partyline://join/";
pub const LINK_VERSION: u8 = 1;

/// Why an invite does not let its holder in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum InviteError {
    #[error("bad signature: the invite was not signed by the party owner or was changed after signing")]
    BadSignature,
    #[error("invite expired at {at}")]
    Expired { at: UnixTime },
    #[error("invite was revoked by the party owner")]
    Revoked,
    #[error("invite was already used by {max} peer(s), its limit")]
    UsedUp { max: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("bad scheme: expected a link starting with {JOIN_PREFIX}, got {found:?}")]
    BadScheme { found: String },
    #[error("bad encoding: {0}")]
    BadEncoding(String),
    #[error("unknown link version {0}: this Partyline understands version {LINK_VERSION}; update it")]
    UnknownVersion(u8),
    #[error("truncated link: the {field} is missing or cut short")]
    Truncated { field: &'static str },
    #[error("bad {field} in link: {reason}")]
    BadField { field: &'static str, reason: &'static str },
    #[error("link has unexpected bytes after its end")]
    TrailingBytes,
    #[error("{0}")]
    Invite(#[from] InviteError),
}
