//! Voice frames: one Opus packet with what the receiver needs to play it in order and in place.
//!
//! ```text
//! u8   version (1)
//! u8   flags: bit 0 talking (the sender's gate is open), bit 1 last frame of a talk spurt,
//!             bit 2 a pose follows, bit 3 the previous frame's Opus packet follows,
//!             bit 4 look-back: audio from before the sender's gate opened, sent late on purpose
//!             (its arrival says nothing about the network's delay), bit 5 a level follows
//! u32  sequence number (big-endian), +1 per frame sent: gaps are losses
//! u32  timestamp in 48 kHz samples of the frame's first sample (big-endian, wraps)
//! [u8  speech level: -dBov of the frame, 0 (loudest) to 127 (silence), as RTP's audio level
//!      header extension (RFC 6464) carries it]                          if flag bit 5
//! [pose: 4 × f32 big-endian: x, y, z in metres, yaw in radians]   if flag bit 2
//! [u16 length (big-endian) + the Opus packet of frame seq - 1]     if flag bit 3 (redundancy)
//! ..   Opus packet (1..=1275 bytes)
//! ```
//!
//! On a stream each frame is preceded by its length as a big-endian u16.

use thiserror::Error;

pub const VOICE_VERSION: u8 = 1;
/// The largest Opus packet (RFC 6716).
pub const MAX_OPUS_PACKET: usize = 1275;
const HEADER: usize = 10;
const POSE: usize = 16;
/// Largest encoded frame, header, level, pose and redundancy included.
pub const MAX_VOICE_FRAME: usize = HEADER + 1 + POSE + 2 + 2 * MAX_OPUS_PACKET;

const TALKING: u8 = 1;
const END: u8 = 2;
const HAS_POSE: u8 = 4;
const HAS_REDUNDANT: u8 = 8;
const LOOKBACK: u8 = 16;
const HAS_LEVEL: u8 = 32;
/// The quietest speech level: silence.
pub const SILENT: u8 = 127;

/// Where a speaker stands and which way it faces, in the game's coordinates: metres, and yaw in
/// radians around the vertical (y) axis, 0 facing -z.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Pose {
    pub x: f32,
    pub y: f32,
    pub z: f32,
    pub yaw: f32,
}

impl Pose {
    pub fn is_finite(&self) -> bool {
        [self.x, self.y, self.z, self.yaw].iter().all(|v| v.is_finite())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiceFrame<'a> {
    pub seq: u32,
    pub ts: u32,
    /// The sender's transmit gate was open (it is talking).
    pub talking: bool,
    /// The last frame before the sender's gate closed.
    pub end: bool,
    /// Held back while the gate was closed and sent when it opened (the start of a talk spurt):
    /// late by design, not by the network.
    pub lookback: bool,
    /// How loud the frame is: -dBov, 0 (loudest) to [`SILENT`]. Receivers of big parties decode
    /// only the loudest members.
    pub level: Option<u8>,
    pub pose: Option<Pose>,
    pub opus: &'a [u8],
    /// The previous frame's (`seq - 1`) Opus packet again, sent while receivers report loss: a
    /// lost frame is then rebuilt exactly from the one after it.
    pub redundant: Option<&'a [u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VoiceError {
    #[error("voice frame too short ({0} bytes)")]
    Short(usize),
    #[error("voice frame too long ({0} bytes)")]
    Long(usize),
    #[error("unknown voice frame version {0}")]
    Version(u8),
    #[error("voice frame without an Opus packet")]
    Empty,
    #[error("voice frame pose is not finite")]
    BadPose,
    #[error("voice frame redundancy has a bad length")]
    BadRedundancy,
    #[error("voice frame level above 127")]
    BadLevel,
}

impl<'a> VoiceFrame<'a> {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.talking {
            flags |= TALKING;
        }
        if self.end {
            flags |= END;
        }
        if self.pose.is_some() {
            flags |= HAS_POSE;
        }
        if self.redundant.is_some() {
            flags |= HAS_REDUNDANT;
        }
        if self.lookback {
            flags |= LOOKBACK;
        }
        if self.level.is_some() {
            flags |= HAS_LEVEL;
        }
        out.push(VOICE_VERSION);
        out.push(flags);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ts.to_be_bytes());
        if let Some(level) = self.level {
            out.push(level.min(SILENT));
        }
        if let Some(p) = self.pose {
            for v in [p.x, p.y, p.z, p.yaw] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        if let Some(r) = self.redundant {
            out.extend_from_slice(&(r.len() as u16).to_be_bytes());
            out.extend_from_slice(r);
        }
        out.extend_from_slice(self.opus);
    }

    /// The frame preceded by its u16 length, as written on a stream.
    pub fn to_framed(&self) -> Vec<u8> {
        let mut out = vec![0, 0];
        self.encode_into(&mut out);
        let len = (out.len() - 2) as u16;
        out[..2].copy_from_slice(&len.to_be_bytes());
        out
    }

    pub fn decode(bytes: &'a [u8]) -> Result<Self, VoiceError> {
        if bytes.len() > MAX_VOICE_FRAME {
            return Err(VoiceError::Long(bytes.len()));
        }
        if bytes.len() < HEADER {
            return Err(VoiceError::Short(bytes.len()));
        }
        if bytes[0] != VOICE_VERSION {
            return Err(VoiceError::Version(bytes[0]));
        }
        let flags = bytes[1];
        let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let (seq, ts) = (word(2), word(6));
        let (level, at) = if flags & HAS_LEVEL != 0 {
            match bytes.get(HEADER) {
                Some(level) if *level <= SILENT => (Some(*level), HEADER + 1),
                Some(_) => return Err(VoiceError::BadLevel),
                None => return Err(VoiceError::Short(bytes.len())),
            }
        } else {
            (None, HEADER)
        };
        let (pose, rest) = if flags & HAS_POSE != 0 {
            if bytes.len() < at + POSE {
                return Err(VoiceError::Short(bytes.len()));
            }
            let f = |at: usize| f32::from_bits(word(at));
            let pose = Pose { x: f(at), y: f(at + 4), z: f(at + 8), yaw: f(at + 12) };
            if !pose.is_finite() {
                return Err(VoiceError::BadPose);
            }
            (Some(pose), &bytes[at + POSE..])
        } else {
            (None, &bytes[at..])
        };
        let (redundant, rest) = if flags & HAS_REDUNDANT != 0 {
            let [a, b, rest @ ..] = rest else { return Err(VoiceError::Short(bytes.len())) };
            let len = usize::from(u16::from_be_bytes([*a, *b]));
            if len == 0 || len > MAX_OPUS_PACKET || len > rest.len() {
                return Err(VoiceError::BadRedundancy);
            }
            (Some(&rest[..len]), &rest[len..])
        } else {
            (None, rest)
        };
        if rest.is_empty() {
            return Err(VoiceError::Empty);
        }
        if rest.len() > MAX_OPUS_PACKET {
            return Err(VoiceError::Long(bytes.len()));
        }
        let (talking, end, lookback) = (flags & TALKING != 0, flags & END != 0, flags & LOOKBACK != 0);
        Ok(Self { seq, ts, talking, end, lookback, level, pose, opus: rest, redundant })
    }
}

/// The frame length announced by a stream header, refused if impossible.
pub fn voice_frame_len(header: [u8; 2]) -> Result<usize, VoiceError> {
    match usize::from(u16::from_be_bytes(header)) {
        n if n < HEADER => Err(VoiceError::Short(n)),
        n if n > MAX_VOICE_FRAME => Err(VoiceError::Long(n)),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_pose() {
        let opus = [7u8; 60];
        let previous = [9u8; 41];
        let poses = [None, Some(Pose { x: 1.5, y: -2.0, z: 300.25, yaw: 3.1 })];
        for (pose, redundant) in poses.into_iter().flat_map(|p| [(p, None), (p, Some(&previous[..]))]) {
            let frame = VoiceFrame {
                seq: u32::MAX,
                ts: 123_456,
                talking: true,
                end: pose.is_some(),
                lookback: redundant.is_none(),
                level: pose.map(|_| 42),
                pose,
                opus: &opus,
                redundant,
            };
            let framed = frame.to_framed();
            let len = voice_frame_len([framed[0], framed[1]]).unwrap();
            assert_eq!(len, framed.len() - 2);
            assert_eq!(VoiceFrame::decode(&framed[2..]).unwrap(), frame);
        }
        // Header overhead: 10 bytes, 26 with a pose.
        let plain = VoiceFrame {
            seq: 1,
            ts: 2,
            talking: true,
            end: false,
            lookback: false,
            level: None,
            pose: None,
            opus: &opus,
            redundant: None,
        };
        assert_eq!(plain.to_framed().len(), 2 + 10 + 60);
        // A level: one byte; one above 127 is refused.
        let loud = VoiceFrame { level: Some(3), ..plain };
        let framed = loud.to_framed();
        assert_eq!(framed.len(), 2 + 11 + 60);
        let mut bad = framed[2..].to_vec();
        bad[10] = 128;
        assert_eq!(VoiceFrame::decode(&bad), Err(VoiceError::BadLevel));
        // Redundancy: 2 bytes and the previous packet.
        let red = VoiceFrame { redundant: Some(&previous), ..plain };
        assert_eq!(red.to_framed().len(), 2 + 10 + 2 + 41 + 60);
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(VoiceFrame::decode(&[1, 0, 0]), Err(VoiceError::Short(3)));
        assert_eq!(VoiceFrame::decode(&[9; 20]), Err(VoiceError::Version(9)));
        assert_eq!(VoiceFrame::decode(&[1, 0, 0, 0, 0, 1, 0, 0, 0, 1]), Err(VoiceError::Empty));
        let mut nan = vec![1, HAS_POSE, 0, 0, 0, 1, 0, 0, 0, 1];
        nan.extend_from_slice(&f32::NAN.to_be_bytes());
        nan.extend_from_slice(&[0; 12]);
        nan.push(1);
        assert_eq!(VoiceFrame::decode(&nan), Err(VoiceError::BadPose));
        assert!(VoiceFrame::decode(&vec![1; MAX_VOICE_FRAME + 1]).is_err());
        // Redundancy longer than what follows, empty, or leaving no packet of its own.
        assert_eq!(
            VoiceFrame::decode(&[1, HAS_REDUNDANT, 0, 0, 0, 1, 0, 0, 0, 1, 0, 9, 5]),
            Err(VoiceError::BadRedundancy)
        );
        assert_eq!(
            VoiceFrame::decode(&[1, HAS_REDUNDANT, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 5]),
            Err(VoiceError::BadRedundancy)
        );
        assert_eq!(
            VoiceFrame::decode(&[1, HAS_REDUNDANT, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 5]),
            Err(VoiceError::Empty)
        );
        assert_eq!(
            VoiceFrame::decode(&[1, HAS_REDUNDANT, 0, 0, 0, 1, 0, 0, 0, 1, 0]),
            Err(VoiceError::Short(11))
        );
        // Without redundancy an Opus packet is at most 1275 bytes.
        let mut long = vec![1, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        long.extend_from_slice(&[0; MAX_OPUS_PACKET + 1]);
        assert!(matches!(VoiceFrame::decode(&long), Err(VoiceError::Long(_))));
        assert!(voice_frame_len([0xff, 0xff]).is_err());
        assert!(voice_frame_len([0, 3]).is_err());
    }
}
