//! Partyline: a peer-to-peer party node (libp2p), its voice engine, its command line and its
//! overlay. See ARCHITECTURE.md at the repository root for how the pieces fit.

pub mod choice;
pub mod cli;
pub mod companion;
pub mod config;
pub mod desktop;
pub mod display;
pub mod event_json;
pub mod events;
pub mod ipc;
pub mod membership;
pub mod net;
#[cfg(feature = "overlay")]
pub mod overlay;
pub mod party;
pub mod paths;
pub mod plugins;
pub mod session;
pub mod store;
pub mod transfer;
pub mod voice;

mod rate;
mod stats;

pub use events::{MemberInfo, NodeEvent, Path, Stats};
pub use net::{Node, NodeConfig};
pub use party::RevokeTarget;
