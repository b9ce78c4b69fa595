//! The microphone's path to the encoder, on the voice thread: resample to 48 kHz, suppress noise
//! and detect voice (RNNoise through nnnoiseless, 10 ms steps), run the transmit gate, and hand out
//! whole encoder frames with whether they should go out.

use anyhow::{Context, Result};
use nnnoiseless::DenoiseState;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, PolynomialDegree, Resampler as _};

use super::codec::SAMPLE_RATE;
use super::gate::{Gate, GateSettings};

/// nnnoiseless works on 10 ms frames at 48 kHz, in i16 range.
const STEP: usize = DenoiseState::FRAME_SIZE;
const I16: f32 = 32768.0;

/// A frame ready for the encoder, and what to do with it.
pub(crate) struct GatedFrame<'a> {
    pub(crate) pcm: &'a [f32],
    /// The gate was open during this frame: send it.
    pub(crate) send: bool,
    /// The gate closed during this frame: it is the last of the talk spurt.
    pub(crate) end: bool,
    /// Held back, it may still go out as the look-back of a spurt that starts just after: voice
    /// activation, not muted. Audio from while muted, or before push-to-talk was pressed, never
    /// goes out.
    pub(crate) may_look_back: bool,
}

pub(crate) struct CaptureDsp {
    resampler: Option<Resampler>,
    denoise: Box<DenoiseState<'static>>,
    suppress_noise: bool,
    gate: Gate,
    resampled: Vec<f32>,
    step_in: Vec<f32>,
    step_out: Vec<f32>,
    frame: Vec<f32>,
    frame_samples: usize,
    frame_open: bool,
    was_sending: bool,
    /// Smoothed input level in dBFS, for meters.
    level_db: f32,
}

impl CaptureDsp {
    pub(crate) fn new(
        input_rate: u32,
        frame_samples: usize,
        gate: GateSettings,
        suppress_noise: bool,
    ) -> Result<Self> {
        let resampler = if input_rate == SAMPLE_RATE { None } else { Some(Resampler::new(input_rate)?) };
        Ok(Self {
            resampler,
            denoise: DenoiseState::new(),
            suppress_noise,
            gate: Gate::new(gate),
            resampled: Vec::with_capacity(SAMPLE_RATE as usize / 10),
            step_in: vec![0.0; STEP],
            step_out: vec![0.0; STEP],
            frame: Vec::with_capacity(frame_samples),
            frame_samples,
            frame_open: false,
            was_sending: false,
            level_db: -90.0,
        })
    }

    pub(crate) fn gate(&mut self) -> &mut Gate {
        &mut self.gate
    }

    pub(crate) fn level_db(&self) -> f32 {
        self.level_db
    }

    /// Feeds microphone samples (mono, at the input rate); calls `on_frame` for every finished
    /// encoder frame.
    pub(crate) fn push(&mut self, input: &[f32], mut on_frame: impl FnMut(GatedFrame<'_>)) {
        match &mut self.resampler {
            Some(r) => r.push(input, &mut self.resampled),
            None => self.resampled.extend_from_slice(input),
        }
        let mut consumed = 0;
        while self.resampled.len() - consumed >= STEP {
            for (dst, src) in self.step_in.iter_mut().zip(&self.resampled[consumed..consumed + STEP]) {
                *dst = src * I16;
            }
            consumed += STEP;
            let probability = self.denoise.process_frame(&mut self.step_out, &self.step_in);
            let open = self.gate.step(probability);
            self.frame_open |= open;
            let energy: f32 = self.step_in.iter().map(|s| (s / I16) * (s / I16)).sum::<f32>() / STEP as f32;
            let db = 10.0 * energy.max(1e-9).log10();
            self.level_db = if db > self.level_db { db } else { 0.9 * self.level_db + 0.1 * db };
            let cleaned = if self.suppress_noise { &self.step_out } else { &self.step_in };
            self.frame.extend(cleaned.iter().map(|s| (s / I16).clamp(-1.0, 1.0)));
            if self.frame.len() >= self.frame_samples {
                let send = self.frame_open;
                let end = self.was_sending && !self.gate.is_open();
                let may_look_back = self.gate.may_look_back();
                on_frame(GatedFrame {
                    pcm: &self.frame[..self.frame_samples],
                    send: send || end,
                    end,
                    may_look_back,
                });
                self.was_sending = send && !end;
                self.frame.clear();
                self.frame_open = false;
            }
        }
        self.resampled.drain(..consumed);
    }
}

/// Fixed-ratio conversion of the device's rate to 48 kHz (cubic polynomial interpolation).
struct Resampler {
    inner: Async<f32>,
    chunk: Vec<f32>,
    out: Vec<f32>,
}

impl Resampler {
    fn new(input_rate: u32) -> Result<Self> {
        let chunk_size = (input_rate / 100) as usize;
        let inner = Async::<f32>::new_poly(
            f64::from(SAMPLE_RATE) / f64::from(input_rate),
            1.0,
            PolynomialDegree::Cubic,
            chunk_size,
            1,
            FixedAsync::Input,
        )
        .with_context(|| format!("cannot resample {input_rate} Hz to 48 kHz"))?;
        let out = vec![0.0; inner.output_frames_max()];
        Ok(Self { inner, chunk: Vec::with_capacity(chunk_size), out })
    }

    fn push(&mut self, mut input: &[f32], output: &mut Vec<f32>) {
        while !input.is_empty() {
            let need = self.inner.input_frames_next() - self.chunk.len();
            let take = need.min(input.len());
            self.chunk.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.chunk.len() < self.inner.input_frames_next() {
                return;
            }
            let frames = self.chunk.len();
            let capacity = self.out.len();
            let done = InterleavedSlice::new(&self.chunk, 1, frames).ok().and_then(|src| {
                let mut dst = InterleavedSlice::new_mut(&mut self.out, 1, capacity).ok()?;
                self.inner.process_into_buffer(&src, &mut dst, None).ok()
            });
            if let Some((_, written)) = done {
                output.extend_from_slice(&self.out[..written]);
            }
            self.chunk.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::tests::voiced;
    use super::super::gate::VoiceMode;
    use super::*;

    #[test]
    fn speech_opens_the_gate_and_silence_closes_it_with_an_end_frame() {
        let mut dsp = CaptureDsp::new(48_000, 960, GateSettings::default(), true).unwrap();
        let mut input = vec![0.0; 48_000];
        input.extend(voiced(1.0));
        input.extend(vec![0.0; 48_000]);
        let mut frames = Vec::new();
        for chunk in input.chunks(441) {
            dsp.push(chunk, |f| frames.push((f.send, f.end, f.pcm.len())));
        }
        assert_eq!(frames.len(), 150);
        assert!(frames.iter().all(|f| f.2 == 960));
        let sent: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.0).map(|(i, _)| i).collect();
        assert!(!sent.is_empty() && sent[0] >= 45 && sent[0] <= 60, "talk starts with the speech: {sent:?}");
        // Speech ends at frame 100; the gate holds 400 ms (20 frames) more.
        assert!(*sent.last().unwrap() <= 123, "and stops after the hold time: {sent:?}");
        assert_eq!(frames.iter().filter(|f| f.1).count(), 1, "one end-of-spurt frame");
        assert!(frames[*sent.last().unwrap()].1, "the last sent frame is the end");
    }

    #[test]
    fn push_to_talk_sends_only_while_held() {
        let settings = GateSettings { mode: VoiceMode::PushToTalk, ..GateSettings::default() };
        let mut dsp = CaptureDsp::new(48_000, 960, settings, false).unwrap();
        let speech = voiced(0.4);
        let mut sent = 0;
        dsp.push(&speech, |f| sent += usize::from(f.send));
        assert_eq!(sent, 0);
        dsp.gate().key(true);
        dsp.push(&speech, |f| sent += usize::from(f.send));
        assert_eq!(sent, 20);
    }

    #[test]
    fn other_rates_are_resampled_to_48k() {
        for rate in [44_100u32, 16_000] {
            let mut dsp = CaptureDsp::new(rate, 960, GateSettings::default(), false).unwrap();
            let input = vec![0.0; rate as usize * 2];
            let mut samples = 0;
            for chunk in input.chunks(rate as usize / 100) {
                dsp.push(chunk, |f| samples += f.pcm.len());
            }
            let expected = 96_000;
            assert!(samples.abs_diff(expected) <= 960 * 2, "{rate} Hz: {samples} samples out");
        }
    }
}
