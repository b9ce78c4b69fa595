//! Content transfers between party members: sharing files and folders where they are, downloading
//! content from every member who has it (each piece checked against its BLAKE3 hash before it is
//! written), resuming after a crash or restart, and moving finished content into the library or
//! the downloads folder by an atomic rename.
//!
//! ```text
//! Transfers (handle) --commands--> engine task (owns transfers.sqlite3, the catalog, downloads)
//!                                    | publishes the catalog (watch)     | one task per download
//!                                    v                                   v
//!     serve: answers /partyline/blobs/1 for members       fetch: providers -> pieces -> writer thread
//! ```
//!
//! See `partyline_protocol::content` for how content is addressed and `::blobs` for the wire.

mod channel;
mod db;
pub(crate) mod disk;
mod engine;
mod fetch;
pub(crate) mod index;
mod rows;
mod sched;
mod serve;
mod stream;
mod worker;
mod writer;

use libp2p::StreamProtocol;

pub use db::State;
pub use engine::{TransferConfig, Transfers};
pub use rows::ContentInfo;

pub const BLOBS_PROTOCOL: StreamProtocol = StreamProtocol::new(partyline_protocol::names::BLOBS);

/// The other members of the party (the only peers served, and the ones asked for content), with
/// the IPs this node is directly connected to each at (empty: relayed only).
pub(crate) use crate::membership::MembershipView as Members;

/// `n` bytes for people: "512 B", "3.2 MiB".
pub use disk::bytes as human_bytes;

/// What the file or folder at `path` is as content: its manifest (whose id names it) and the
/// hash of each piece. Reads every byte.
pub fn describe(path: &std::path::Path) -> anyhow::Result<(partyline_protocol::Manifest, Vec<[u8; 32]>)> {
    let indexed = index::hash(index::scan(path)?, |_, _| {})?;
    Ok((indexed.manifest, indexed.pieces))
}
