//! The talker's side of the wire: numbers and stamps every encoded frame, sends those the gate
//! lets out, and keeps a look-back of the ones it held back, so a talk spurt starts with the audio
//! from just before the detector heard speech (a soft onset, the first syllable) instead of
//! clipping it. Look-back frames go out at once, marked, and the listener's jitter buffer plays
//! them a little faster until it is back at its delay.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use partyline_protocol::voice::{MAX_OPUS_PACKET, Pose, SILENT, VoiceFrame};
use tokio::sync::mpsc;

use super::VoiceOut;
use super::capture_dsp::GatedFrame;

/// Audio sent ahead of the moment the gate opened.
pub(crate) const LOOKBACK: Duration = Duration::from_millis(60);

pub(crate) struct Sender {
    seq: u32,
    /// Timestamp (48 kHz samples) of the next frame.
    ts: u32,
    frame_samples: u32,
    /// Encoded frames held back while the gate was closed, newest last, with their timestamps
    /// and levels.
    lookback: VecDeque<(u32, u8, Vec<u8>)>,
    lookback_frames: usize,
    sending: bool,
    /// The last frame sent (its sequence number and Opus packet), for the next one to repeat
    /// while members report loss.
    last_sent: (Option<u32>, Vec<u8>),
    /// Bytes of frames sent so far.
    pub(crate) sent_bytes: u64,
}

impl Sender {
    pub(crate) fn new(frame_samples: usize) -> Self {
        let frame_ms = (frame_samples / 48).max(1);
        let lookback_frames = (LOOKBACK.as_millis() as usize).div_ceil(frame_ms);
        Self {
            seq: 0,
            ts: 0,
            frame_samples: frame_samples as u32,
            lookback: VecDeque::with_capacity(lookback_frames + 1),
            lookback_frames,
            sending: false,
            last_sent: (None, Vec::with_capacity(MAX_OPUS_PACKET)),
            sent_bytes: 0,
        }
    }

    /// The microphone was closed for `gap` (another one was opened, or the same again): the time
    /// stamps run on as time did, so that listeners hear the next frames as long after they were
    /// spoken as the ones before.
    pub(crate) fn skip(&mut self, gap: Duration) {
        let samples = (gap.as_secs_f64() * 48_000.0) as u32;
        self.ts = self.ts.wrapping_add(samples);
    }

    /// The gate closed the microphone (muted, another microphone): start the next spurt afresh.
    pub(crate) fn stop(&mut self) {
        self.sending = false;
        self.lookback.clear();
        self.last_sent.0 = None;
    }

    /// Takes the next frame out of the DSP, encoded (`None` if encoding failed): sends it if the
    /// gate was open, with the look-back first when a spurt starts; otherwise keeps it for the
    /// look-back. `redundancy`: each frame repeats the one before.
    pub(crate) fn frame(
        &mut self,
        frame: &GatedFrame<'_>,
        opus: Option<&[u8]>,
        pose: Option<Pose>,
        redundancy: bool,
        out: &mpsc::Sender<VoiceOut>,
    ) {
        let ts = self.ts;
        self.ts = self.ts.wrapping_add(self.frame_samples);
        let Some(opus) = opus else { return };
        let level = level(frame.pcm);
        if !frame.send {
            if !frame.may_look_back {
                self.lookback.clear();
            } else {
                if self.lookback.len() == self.lookback_frames {
                    self.lookback.pop_front();
                }
                self.lookback.push_back((ts, level, opus.to_vec()));
            }
            self.sending = false;
            self.last_sent.0 = None;
            return;
        }
        if !self.sending {
            while let Some((ts, level, packet)) = self.lookback.pop_front() {
                let held = Held { packet: &packet, ts, level, end: false, lookback: true };
                self.send(held, pose, redundancy, out);
            }
        }
        let live = Held { packet: opus, ts, level, end: frame.end, lookback: false };
        self.send(live, pose, redundancy, out);
        self.sending = !frame.end;
    }

    fn send(&mut self, f: Held<'_>, pose: Option<Pose>, redundancy: bool, out: &mpsc::Sender<VoiceOut>) {
        let seq = self.seq;
        let follows = self.last_sent.0 == Some(seq.wrapping_sub(1));
        let redundant = (redundancy && follows).then_some(&self.last_sent.1[..]);
        let voice = VoiceFrame {
            seq,
            ts: f.ts,
            talking: !f.end,
            end: f.end,
            lookback: f.lookback,
            level: Some(f.level),
            pose,
            opus: f.packet,
            redundant,
        };
        let bytes = voice.to_framed();
        self.sent_bytes += bytes.len() as u64;
        let _ = out.try_send(VoiceOut::Frame { seq, bytes: bytes.into(), created: Instant::now() });
        self.last_sent.0 = Some(seq);
        self.last_sent.1.clear();
        self.last_sent.1.extend_from_slice(f.packet);
        self.seq = seq.wrapping_add(1);
    }
}

/// An encoded frame on its way out.
struct Held<'a> {
    packet: &'a [u8],
    ts: u32,
    level: u8,
    end: bool,
    lookback: bool,
}

/// How loud `pcm` is, as frames carry it: -dBov (RMS against full scale), 0 to [`SILENT`].
pub(crate) fn level(pcm: &[f32]) -> u8 {
    let power = pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len().max(1) as f32;
    let db = 10.0 * power.max(1e-13).log10();
    (-db).round().clamp(0.0, f32::from(SILENT)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(out: &mut mpsc::Receiver<VoiceOut>) -> Vec<(u32, u32, bool, bool, Vec<u8>)> {
        let mut got = Vec::new();
        while let Ok(VoiceOut::Frame { bytes, .. }) = out.try_recv() {
            let f = VoiceFrame::decode(&bytes[2..]).unwrap();
            got.push((f.seq, f.ts, f.lookback, f.end, f.opus.to_vec()));
        }
        got
    }

    #[test]
    fn levels_are_minus_dbov() {
        assert_eq!(level(&[0.0; 960]), SILENT);
        assert_eq!(level(&[1.0; 960]), 0);
        assert_eq!(level(&[0.1; 960]), 20);
        assert_eq!(level(&[-0.01; 960]), 40);
    }

    #[test]
    fn a_spurt_starts_with_the_look_back_and_numbers_run_on() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut sender = Sender::new(960);
        let pcm = [0.0f32; 960];
        let gated = |send, end| GatedFrame { pcm: &pcm, send, end, may_look_back: true };
        // Five frames held back (only the last three are kept), then three sent, the last ending.
        for i in 0..5u8 {
            sender.frame(&gated(false, false), Some(&[i]), None, false, &tx);
        }
        assert!(frames(&mut rx).is_empty(), "nothing goes out while the gate is closed");
        for i in 5..8u8 {
            sender.frame(&gated(true, i == 7), Some(&[i]), None, false, &tx);
        }
        let got = frames(&mut rx);
        let summary: Vec<(u32, u32, bool, bool, u8)> =
            got.iter().map(|(seq, ts, lb, end, p)| (*seq, *ts, *lb, *end, p[0])).collect();
        assert_eq!(
            summary,
            vec![
                (0, 2 * 960, true, false, 2),
                (1, 3 * 960, true, false, 3),
                (2, 4 * 960, true, false, 4),
                (3, 5 * 960, false, false, 5),
                (4, 6 * 960, false, false, 6),
                (5, 7 * 960, false, true, 7),
            ],
            "the look-back keeps its own timestamps; sequence numbers have no gaps"
        );
        assert!(sender.sent_bytes > 0);
        // The next spurt has only what was held back since.
        sender.frame(&gated(false, false), Some(&[8]), None, false, &tx);
        sender.frame(&gated(true, false), Some(&[9]), None, false, &tx);
        let got = frames(&mut rx);
        assert_eq!(got.iter().map(|f| (f.0, f.2, f.4[0])).collect::<Vec<_>>(), [(6, true, 8), (7, false, 9)]);
        // Audio from while muted (or before push-to-talk) is not kept for later.
        sender.frame(&gated(false, false), Some(&[10]), None, false, &tx);
        sender.frame(
            &GatedFrame { may_look_back: false, ..gated(false, false) },
            Some(&[11]),
            None,
            false,
            &tx,
        );
        sender.frame(&gated(true, false), Some(&[12]), None, false, &tx);
        let got = frames(&mut rx);
        assert_eq!(got.iter().map(|f| f.4[0]).collect::<Vec<_>>(), [12], "only what was said after");
    }

    #[test]
    fn time_stamps_run_on_while_the_microphone_was_closed() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut sender = Sender::new(960);
        let pcm = [0.0f32; 960];
        let live = GatedFrame { pcm: &pcm, send: true, end: false, may_look_back: true };
        sender.frame(&live, Some(&[0]), None, false, &tx);
        sender.skip(Duration::from_millis(500));
        sender.frame(&live, Some(&[1]), None, false, &tx);
        let ts: Vec<u32> = frames(&mut rx).iter().map(|f| f.1).collect();
        assert_eq!(ts, [0, 960 + 24_000], "half a second later on the talker's clock");
    }
}
