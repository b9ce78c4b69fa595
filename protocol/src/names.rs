//! The names Partyline's protocols go by on a connection (libp2p stream protocols, the identify
//! and Kademlia protocol names, the voice endpoint's ALPN). A name changes when its protocol does
//! in a way older peers cannot read.

/// Party streams: length-prefixed [`crate::wire`] messages, one stream each way.
pub const PARTY: &str = "/partyline/party/1";
/// Voice streams: [`crate::voice`] frames, when datagrams do not get through.
pub const VOICE: &str = "/partyline/voice/1";
/// Content between members: [`crate::blobs`] requests and answers.
pub const BLOBS: &str = "/partyline/blobs/1";
/// Partyline's own Kademlia DHT (kept apart from the public IPFS one).
pub const KAD: &str = "/partyline/kad/1.0.0";
/// What identify announces as this node's protocol.
pub const IDENTIFY: &str = "/partyline/id/1.0.0";
/// ALPN of the voice datagram endpoint (QUIC).
pub const VOICE_DATAGRAMS: &str = "/partyline/voice-datagrams/1";
