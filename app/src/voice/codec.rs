//! Opus at 48 kHz mono: the encoder a sender uses for everyone, and one decoder per member.

use anyhow::{Context, Result};
use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::{Application, Bandwidth, Bitrate, Channels, SampleRate, Signal};

pub(crate) const SAMPLE_RATE: u32 = 48_000;
const OPUS_SET_DTX_REQUEST: i32 = 4016;

/// How voice is encoded. The defaults were chosen by measurement (see the voice benchmark).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecSettings {
    /// 10 or 20 ms.
    pub frame_ms: u32,
    pub bitrate: u32,
    /// 0..=10: quality against CPU.
    pub complexity: u8,
    /// Use Opus in-band forward error correction when receivers report loss.
    pub fec: bool,
    /// Discontinuous transmission: near-empty packets during silences within a talk spurt.
    pub dtx: bool,
}

impl Default for CodecSettings {
    fn default() -> Self {
        Self { frame_ms: 20, bitrate: 24_000, complexity: 8, fec: true, dtx: true }
    }
}

impl CodecSettings {
    pub fn frame_samples(&self) -> usize {
        (SAMPLE_RATE * self.frame_ms / 1000) as usize
    }
}

pub(crate) struct Encoder {
    inner: OpusEncoder,
    settings: CodecSettings,
    out: Vec<u8>,
    loss_percent: u8,
}

impl Encoder {
    pub(crate) fn new(settings: CodecSettings) -> Result<Self> {
        anyhow::ensure!(matches!(settings.frame_ms, 10 | 20), "voice frames are 10 or 20 ms");
        let mut inner = OpusEncoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
            .context("cannot create the Opus encoder")?;
        inner.set_bitrate(Bitrate::BitsPerSecond(settings.bitrate as i32))?;
        inner.set_complexity(settings.complexity)?;
        inner.set_signal(Signal::Voice)?;
        inner.set_max_bandwidth(Bandwidth::Fullband)?;
        inner.set_vbr(true)?;
        inner.set_inband_fec(settings.fec)?;
        inner.set_encoder_ctl_request(OPUS_SET_DTX_REQUEST, i32::from(settings.dtx))?;
        Ok(Self { inner, settings, out: vec![0; protocol_max()], loss_percent: 0 })
    }

    /// Encodes one frame of `frame_samples` samples in -1..=1.
    pub(crate) fn encode(&mut self, pcm: &[f32]) -> Result<&[u8]> {
        debug_assert_eq!(pcm.len(), self.settings.frame_samples());
        let n = self.inner.encode_float(pcm, &mut self.out).context("Opus encoding failed")?;
        Ok(&self.out[..n])
    }

    /// Tunes forward error correction to the loss receivers report (percent, worst receiver).
    pub(crate) fn set_expected_loss(&mut self, percent: u8) -> Result<()> {
        let percent = percent.min(50);
        if percent != self.loss_percent {
            self.inner.set_packet_loss_perc(percent)?;
            self.loss_percent = percent;
        }
        Ok(())
    }

    pub(crate) fn expected_loss(&self) -> u8 {
        self.loss_percent
    }
}

fn protocol_max() -> usize {
    partyline_protocol::voice::MAX_OPUS_PACKET
}

pub(crate) struct Decoder {
    inner: OpusDecoder,
    pcm: Vec<f32>,
    frame: usize,
}

impl Decoder {
    pub(crate) fn new(frame_samples: usize) -> Result<Self> {
        let inner =
            OpusDecoder::new(SampleRate::Hz48000, Channels::Mono).context("cannot create an Opus decoder")?;
        // Room for the longest Opus packet (120 ms), whatever the sender's frame size.
        Ok(Self { inner, pcm: vec![0.0; 5760], frame: frame_samples })
    }

    /// The member's frame length (samples), as its time stamps show it: what FEC and concealment
    /// make up for a lost frame.
    pub(crate) fn set_frame_samples(&mut self, samples: usize) {
        self.frame = samples.clamp(120, self.pcm.len());
    }

    /// Decodes a packet; a malformed one is concealed instead.
    pub(crate) fn decode(&mut self, packet: &[u8]) -> &[f32] {
        match self.inner.decode_float(Some(packet), &mut self.pcm[..], false) {
            Ok(n) => &self.pcm[..n],
            Err(_) => self.conceal(),
        }
    }

    /// The frame before `next` was lost: decodes the copy of it that `next` carries (in-band FEC),
    /// or conceals if it carries none.
    pub(crate) fn decode_fec(&mut self, next: &[u8]) -> &[f32] {
        match self.inner.decode_float(Some(next), &mut self.pcm[..self.frame], true) {
            Ok(n) => &self.pcm[..n],
            Err(_) => self.conceal(),
        }
    }

    /// Packet loss concealment: the decoder extrapolates one frame.
    pub(crate) fn conceal(&mut self) -> &[f32] {
        self.conceal_for(self.frame)
    }

    /// Conceals `samples` (a multiple of 2.5 ms, at most a frame): the decoder extrapolates.
    pub(crate) fn conceal_for(&mut self, samples: usize) -> &[f32] {
        let samples = samples.min(self.frame);
        let n = self.inner.decode_float(None::<&[u8]>, &mut self.pcm[..samples], false).unwrap_or(0);
        if n == 0 {
            self.pcm[..samples].fill(0.0);
            return &self.pcm[..samples];
        }
        &self.pcm[..n]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A voice-like test signal: a 120-190 Hz glottal pulse train with harmonics falling off, shaped
    /// by a 4 Hz syllable envelope.
    pub(crate) fn voiced(seconds: f32) -> Vec<f32> {
        let n = (seconds * SAMPLE_RATE as f32) as usize;
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                let f0 = 150.0 + 40.0 * (t * 1.3).sin();
                phase += f0 / SAMPLE_RATE as f32;
                let harmonics: f32 = (1..12)
                    .map(|h| (std::f32::consts::TAU * phase * h as f32).sin() / (h as f32).powf(1.2))
                    .sum();
                let envelope = 0.7 + 0.3 * (std::f32::consts::TAU * 4.0 * t).sin();
                0.15 * harmonics * envelope
            })
            .collect()
    }

    fn energy(a: &[f32]) -> f32 {
        a.iter().map(|x| x * x).sum()
    }

    fn error(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    #[test]
    fn round_trip_keeps_the_signal() {
        let settings = CodecSettings::default();
        let frame = settings.frame_samples();
        let mut enc = Encoder::new(settings).unwrap();
        let mut dec = Decoder::new(frame).unwrap();
        let signal = voiced(1.0);
        let mut out = Vec::new();
        let mut bytes = 0;
        for chunk in signal.chunks_exact(frame) {
            let packet = enc.encode(chunk).unwrap().to_vec();
            bytes += packet.len();
            out.extend_from_slice(dec.decode(&packet));
        }
        assert_eq!(out.len(), signal.len());
        let kbps = bytes as f32 * 8.0 / 1000.0;
        assert!(kbps < 40.0, "{kbps} kbit/s");
        // Opus delays its output a little; compare at the best small lag.
        let n = signal.len() - 600;
        let correlation = (0..600)
            .map(|lag| {
                let dot: f32 = signal[..n].iter().zip(&out[lag..lag + n]).map(|(a, b)| a * b).sum();
                dot / (energy(&signal[..n]) * energy(&out[lag..lag + n])).sqrt()
            })
            .fold(f32::MIN, f32::max);
        assert!(correlation > 0.9, "correlation {correlation}");
    }

    #[test]
    fn fec_recovers_a_lost_frame_better_than_concealment() {
        let settings = CodecSettings::default();
        let frame = settings.frame_samples();
        let mut enc = Encoder::new(settings).unwrap();
        enc.set_expected_loss(20).unwrap();
        let packets: Vec<Vec<u8>> =
            voiced(2.0).chunks_exact(frame).map(|c| enc.encode(c).unwrap().to_vec()).collect();

        // Reference: everything arrives. Then frame `lost` is lost: FEC from the next, or PLC.
        let decode_all = |lost: Option<(usize, bool)>| {
            let mut dec = Decoder::new(frame).unwrap();
            let mut frames = Vec::new();
            for (i, p) in packets.iter().enumerate() {
                let out = match lost {
                    Some((l, true)) if i == l => dec.decode_fec(&packets[i + 1]).to_vec(),
                    Some((l, false)) if i == l => dec.conceal().to_vec(),
                    _ => dec.decode(p).to_vec(),
                };
                frames.push(out);
            }
            frames
        };
        let reference = decode_all(None);
        // The encoder adds a redundant copy (LBRR) of frames it judges to be active speech; where the
        // next packet carries one, FEC restores the lost frame almost exactly, and it is never worse
        // than concealment (without a copy, decoding FEC falls back to it).
        let mut fec_wins = 0;
        let lost_frames = [30, 45, 60, 75, 90];
        for lost in lost_frames {
            let fec = decode_all(Some((lost, true)));
            let plc = decode_all(Some((lost, false)));
            let fec_err = error(&fec[lost], &reference[lost]);
            let plc_err = error(&plc[lost], &reference[lost]);
            assert!(
                fec_err <= plc_err * 1.001,
                "frame {lost}: FEC {fec_err} worse than concealment {plc_err}"
            );
            if fec_err < plc_err * 0.1 {
                fec_wins += 1;
            }
        }
        assert!(fec_wins >= 3, "FEC restored {fec_wins} of {} lost frames", lost_frames.len());
    }

    #[test]
    fn ten_ms_frames_work_too() {
        let settings = CodecSettings { frame_ms: 10, ..CodecSettings::default() };
        let mut enc = Encoder::new(settings).unwrap();
        let mut dec = Decoder::new(settings.frame_samples()).unwrap();
        let signal = voiced(0.2);
        for chunk in signal.chunks_exact(480) {
            let packet = enc.encode(chunk).unwrap().to_vec();
            assert_eq!(dec.decode(&packet).len(), 480);
        }
        assert_eq!(dec.conceal().len(), 480);
        assert_eq!(dec.conceal_for(240).len(), 240, "a shorter concealment");
        assert!(Encoder::new(CodecSettings { frame_ms: 15, ..settings }).is_err());
    }

    #[test]
    fn garbage_is_concealed_not_fatal() {
        let mut dec = Decoder::new(960).unwrap();
        assert_eq!(dec.decode(&[0xff, 0xff, 0xff]).len(), 960);
    }
}
