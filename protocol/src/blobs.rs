//! Requests for content between members, on `/partyline/blobs/1` streams.
//!
//! The asking member opens a stream and writes requests; the serving member answers each, in
//! order, on the same stream. A request or answer header is framed as party messages are (a
//! 4-byte big-endian length, then `[BLOBS_VERSION][postcard]`, at most [`MAX_HEADER_LEN`]); an
//! answer with a body (`Body`) is followed by exactly `len` raw bytes: an encoded manifest, a
//! piece list (32 bytes per piece) or a run of pieces. The asker knows how long each must be and
//! refuses anything else.
//!
//! ```text
//! asker -> server   Have{ids} | Manifest{id} | Pieces{id} | Range{id, first, count} | Direct
//! server -> asker   Have(bools) | Body{len} + bytes | NotFound | Busy | Refused(why) | Direct{…}
//! ```
//!
//! `Direct` asks for a faster channel: the server answers with a TCP port, a fresh key and a
//! one-time token; the asker connects to the server's address on that port, sends the token, and
//! goes on with the same requests in records sealed with the key (AES-256-GCM).

use serde::{Deserialize, Serialize};

use crate::content::ContentId;

pub const BLOBS_VERSION: u8 = 1;
pub const MAX_HEADER_LEN: usize = 4096;
/// Ids in one `Have`.
pub const MAX_HAVE: usize = 64;
/// Bytes in one `Range` answer at most.
pub const MAX_RANGE_BYTES: u64 = 64 << 20;
pub const MAX_REFUSAL_LEN: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobRequest {
    /// Which of these the server has whole and serves.
    Have {
        ids: Vec<ContentId>,
    },
    Manifest {
        id: ContentId,
    },
    Pieces {
        id: ContentId,
    },
    /// Pieces `first..first + count`.
    Range {
        id: ContentId,
        first: u64,
        count: u32,
    },
    /// A direct, sealed channel, if the server offers one.
    Direct,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobAnswer {
    /// One answer per id asked, in order.
    Have(Vec<bool>),
    /// `len` bytes follow.
    Body {
        len: u64,
    },
    NotFound,
    /// Serving too much right now: ask again later.
    Busy,
    Refused(String),
    /// Connect to this TCP port at the server's address, send `token`, then seal with `key`.
    Direct {
        port: u16,
        key: [u8; 32],
        token: [u8; 16],
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobWireError {
    #[error("empty header")]
    Empty,
    #[error("header of {0} bytes is over the limit")]
    Oversize(usize),
    #[error("unknown blobs protocol version {0}")]
    UnknownVersion(u8),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("{0} ids in one request, more than allowed")]
    TooMany(usize),
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut body = vec![BLOBS_VERSION];
    postcard::to_io(value, &mut body).expect("writing to a Vec cannot fail");
    assert!(body.len() <= MAX_HEADER_LEN, "blob header of {} bytes", body.len());
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, BlobWireError> {
    if bytes.len() > MAX_HEADER_LEN {
        return Err(BlobWireError::Oversize(bytes.len()));
    }
    let (&version, body) = bytes.split_first().ok_or(BlobWireError::Empty)?;
    if version != BLOBS_VERSION {
        return Err(BlobWireError::UnknownVersion(version));
    }
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| BlobWireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(BlobWireError::Malformed(format!("{} bytes of junk", rest.len())));
    }
    Ok(value)
}

/// The length of the header whose 4-byte prefix is `prefix`.
pub fn header_len(prefix: [u8; 4]) -> Result<usize, BlobWireError> {
    match u32::from_be_bytes(prefix) as usize {
        0 => Err(BlobWireError::Empty),
        n if n > MAX_HEADER_LEN => Err(BlobWireError::Oversize(n)),
        n => Ok(n),
    }
}

impl BlobRequest {
    /// Length-prefixed, ready to write.
    pub fn frame(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BlobWireError> {
        let request: Self = decode(bytes)?;
        match &request {
            Self::Have { ids } if ids.len() > MAX_HAVE => Err(BlobWireError::TooMany(ids.len())),
            _ => Ok(request),
        }
    }
}

impl BlobAnswer {
    pub fn frame(&self) -> Vec<u8> {
        match self {
            Self::Refused(why) if why.len() > MAX_REFUSAL_LEN => {
                let mut end = MAX_REFUSAL_LEN;
                while !why.is_char_boundary(end) {
                    end -= 1;
                }
                encode(&Self::Refused(why[..end].to_owned()))
            }
            _ => encode(self),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BlobWireError> {
        let answer: Self = decode(bytes)?;
        match &answer {
            Self::Have(bools) if bools.len() > MAX_HAVE => Err(BlobWireError::TooMany(bools.len())),
            _ => Ok(answer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let id = ContentId([7; 32]);
        for request in [
            BlobRequest::Have { ids: vec![id, id] },
            BlobRequest::Manifest { id },
            BlobRequest::Pieces { id },
            BlobRequest::Range { id, first: 3, count: 4 },
            BlobRequest::Direct,
        ] {
            let framed = request.frame();
            let len = header_len(framed[..4].try_into().unwrap()).unwrap();
            assert_eq!(BlobRequest::decode(&framed[4..4 + len]).unwrap(), request);
        }
        for answer in [
            BlobAnswer::Have(vec![true, false]),
            BlobAnswer::Body { len: 1 << 40 },
            BlobAnswer::NotFound,
            BlobAnswer::Busy,
            BlobAnswer::Refused("no".into()),
            BlobAnswer::Direct { port: 4242, key: [9; 32], token: [8; 16] },
        ] {
            assert_eq!(BlobAnswer::decode(&answer.frame()[4..]).unwrap(), answer);
        }
        let long = BlobAnswer::Refused("é".repeat(500)).frame();
        assert!(
            matches!(BlobAnswer::decode(&long[4..]), Ok(BlobAnswer::Refused(w)) if w.len() <= MAX_REFUSAL_LEN)
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(header_len([0, 0, 0, 0]), Err(BlobWireError::Empty));
        assert!(header_len([0, 1, 0, 0]).is_err());
        assert!(matches!(BlobRequest::decode(&[9, 0]), Err(BlobWireError::UnknownVersion(9))));
        assert!(BlobRequest::decode(&[BLOBS_VERSION, 200, 200]).is_err());
        let mut junk = BlobRequest::Manifest { id: ContentId([0; 32]) }.frame()[4..].to_vec();
        junk.push(0);
        assert!(BlobRequest::decode(&junk).is_err());
        let too_many = encode(&BlobRequest::Have { ids: vec![ContentId([0; 32]); MAX_HAVE + 1] });
        assert_eq!(BlobRequest::decode(&too_many[4..]), Err(BlobWireError::TooMany(MAX_HAVE + 1)));
    }
}
