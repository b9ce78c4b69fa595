//! What the jitter buffer hands out and reports: the pace to play at, what to play next, its
//! counts, and how a frame was sent.

/// How fast to play what the buffer holds, for the delay to meet the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pace {
    Steady,
    /// Heard later than the target: shorten what is played, by at most this much (ms).
    Faster(f64),
    /// Heard sooner than the target: lengthen it, by at most this much (ms).
    Slower(f64),
}

/// What the output holds ahead of what the buffer hands out next: decoded audio waiting to be
/// played, and how much it keeps ready at least (both ms).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Ahead {
    pub(crate) queued_ms: f64,
    pub(crate) ready_ms: f64,
}

/// What to play for the next frame period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Playout {
    /// Decode this frame.
    Frame(Vec<u8>),
    /// The frame is lost but the next one is here: decode its FEC data for the lost frame.
    Fec(Vec<u8>),
    /// Nothing to decode: conceal (the decoder extrapolates).
    Conceal,
    /// The next frame is not here yet and nothing after it: conceal a little (a few ms, not a
    /// whole frame) and ask again, so that a frame a few ms late costs a few ms of delay.
    Wait,
    /// Not talking: play silence.
    Silence,
}

impl Playout {
    /// What it is, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Frame(_) => "frame",
            Self::Fec(_) => "fec",
            Self::Conceal => "conceal",
            Self::Wait => "wait",
            Self::Silence => "silence",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct JitterStats {
    pub(crate) received: u64,
    /// Frames that never came in time: recovered by FEC or concealed.
    pub(crate) lost: u64,
    pub(crate) fec: u64,
    /// Missing frames filled in from the copy the next frame carried (redundancy).
    pub(crate) recovered: u64,
    pub(crate) concealed: u64,
    /// Arrived after their turn to play.
    pub(crate) late: u64,
    pub(crate) duplicates: u64,
    /// Dropped to catch up when playing faster was not enough.
    pub(crate) dropped: u64,
    /// Dropped because the buffer was full.
    pub(crate) overflow: u64,
    /// Quiet look-back left out at the start of a talk spurt.
    pub(crate) skipped: u64,
}

/// How a frame was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// As it was spoken: its arrival tells the network's delay.
    Live,
    /// Look-back, sent late on purpose when the talker's gate opened; `quiet`: nothing to hear.
    LookBack { quiet: bool },
}
