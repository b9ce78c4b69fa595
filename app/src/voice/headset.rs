//! The player's phone or handheld as headset (the companion page): its microphone arrives as Opus
//! packets and is decoded here into the capture ring, as a microphone's samples would be; the
//! party's mix is encoded here, 20 ms at a time in stereo, and handed back for the page to play.
//! The gateway carries the packets; none of it goes through a plugin.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, Result};
use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bitrate, Channels, SampleRate};

use super::codec::SAMPLE_RATE;

/// Packets from the page waiting to be decoded (half a second of 20 ms packets).
pub const MIC_QUEUE: usize = 25;
/// Packets of the mix waiting for the gateway.
pub const SPEAKER_QUEUE: usize = 25;
/// A frame of the mix sent to the page: 20 ms.
const FRAME: usize = SAMPLE_RATE as usize / 50;
/// With nothing from the page for this long, the microphone is silent (not stalled).
const QUIET_AFTER: Duration = Duration::from_millis(60);

/// A headset: the device's name, where its microphone's packets come from and where the mix's
/// packets go. Made by the gateway; the voice engine opens its two halves.
#[derive(Clone)]
pub struct Headset {
    pub device: String,
    mic: Arc<Mutex<Option<mpsc::Receiver<Vec<u8>>>>>,
    speaker: tokio::sync::mpsc::Sender<Vec<u8>>,
}

impl Headset {
    /// A headset for `device`: what to send its microphone's packets to, what its mix comes out of.
    pub fn new(device: &str) -> (Self, mpsc::SyncSender<Vec<u8>>, tokio::sync::mpsc::Receiver<Vec<u8>>) {
        let (mic_tx, mic_rx) = mpsc::sync_channel(MIC_QUEUE);
        let (speaker_tx, speaker_rx) = tokio::sync::mpsc::channel(SPEAKER_QUEUE);
        let headset =
            Self { device: device.to_owned(), mic: Arc::new(Mutex::new(Some(mic_rx))), speaker: speaker_tx };
        (headset, mic_tx, speaker_rx)
    }

    /// The microphone's packets (once: a microphone opened twice gets nothing the second time).
    pub(crate) fn take_mic(&self) -> Option<mpsc::Receiver<Vec<u8>>> {
        self.mic.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(crate) fn speaker(&self) -> tokio::sync::mpsc::Sender<Vec<u8>> {
        self.speaker.clone()
    }
}

impl std::fmt::Debug for Headset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Headset({})", self.device)
    }
}

impl PartialEq for Headset {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.mic, &other.mic)
    }
}

impl Eq for Headset {}

/// Decodes the page's packets into `push` (mono, 48 kHz) until the page stops sending for good
/// or `stop` is set; a gap is filled with silence, so that time goes on.
pub(crate) fn run_mic(
    packets: mpsc::Receiver<Vec<u8>>,
    mut push: impl FnMut(&[f32]),
    stop: &AtomicBool,
) -> Result<()> {
    let mut decoder =
        Decoder::new(SampleRate::Hz48000, Channels::Mono).context("cannot create an Opus decoder")?;
    let mut pcm = vec![0.0f32; 5760];
    let silence = vec![0.0f32; FRAME];
    while !stop.load(Ordering::Relaxed) {
        match packets.recv_timeout(QUIET_AFTER) {
            Ok(packet) => match decoder.decode_float(Some(&packet[..]), &mut pcm[..], false) {
                Ok(n) => push(&pcm[..n]),
                Err(_) => push(&silence),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => push(&silence),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}

/// Encodes the mix (stereo, interleaved, 48 kHz) 20 ms at a time for the page.
pub(crate) struct SpeakerEncoder {
    encoder: Encoder,
    pending: Vec<f32>,
    out: Vec<u8>,
    to: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Packets the gateway did not take in time (dropped).
    pub(crate) dropped: u64,
}

impl SpeakerEncoder {
    pub(crate) fn new(to: tokio::sync::mpsc::Sender<Vec<u8>>) -> Result<Self> {
        let mut encoder = Encoder::new(SampleRate::Hz48000, Channels::Stereo, Application::Audio)
            .context("cannot create an Opus encoder")?;
        encoder.set_bitrate(Bitrate::BitsPerSecond(64_000)).context("cannot set the bitrate")?;
        Ok(Self { encoder, pending: Vec::with_capacity(FRAME * 4), out: vec![0; 4000], to, dropped: 0 })
    }

    /// Takes rendered samples; sends a packet for each whole 20 ms.
    pub(crate) fn push(&mut self, stereo: &[f32]) {
        self.pending.extend_from_slice(stereo);
        while self.pending.len() >= FRAME * 2 {
            if let Ok(n) = self.encoder.encode_float(&self.pending[..FRAME * 2], &mut self.out)
                && self.to.try_send(self.out[..n].to_vec()).is_err()
            {
                self.dropped += 1;
            }
            self.pending.drain(..FRAME * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_s_microphone_is_decoded_and_the_mix_encoded_in_frames() {
        let (headset, mic, mut mix) = Headset::new("Pixel");
        // A tone from the page, as its encoder would send it.
        let page = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
        let tone: Vec<f32> = (0..FRAME).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        let mut packet = vec![0; 1000];
        for _ in 0..5 {
            let n = page.encode_float(&tone, &mut packet).unwrap();
            mic.send(packet[..n].to_vec()).unwrap();
        }
        drop(mic);
        let mut decoded = Vec::new();
        run_mic(headset.take_mic().unwrap(), |s| decoded.extend_from_slice(s), &AtomicBool::new(false))
            .unwrap();
        assert_eq!(decoded.len(), FRAME * 5, "five frames, then the page hung up");
        let energy = decoded[FRAME * 2..].iter().map(|s| s * s).sum::<f32>() / (FRAME * 3) as f32;
        assert!(energy > 0.05, "the tone came through: {energy}");
        assert!(headset.take_mic().is_none(), "opened once");

        let mut encoder = SpeakerEncoder::new(headset.speaker()).unwrap();
        encoder.push(&vec![0.1; FRAME * 2 * 3 + 10]);
        let packets: Vec<Vec<u8>> = std::iter::from_fn(|| mix.try_recv().ok()).collect();
        assert_eq!(packets.len(), 3, "one packet per 20 ms, the rest waits");
        // The gateway falling behind loses packets, never blocks the mix.
        for _ in 0..SPEAKER_QUEUE + 5 {
            encoder.push(&vec![0.0; FRAME * 2]);
        }
        assert_eq!(encoder.dropped, 5);
    }
}
