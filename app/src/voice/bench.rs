//! What receiving voice costs: many members talking at once, each through its own jitter buffer
//! and Opus decoder into its kira spatial track, mixed for a listener. The voice thread's own code,
//! driven by hand instead of by the clock, on one thread, so that the time it takes is the CPU it
//! needs. Used by the voice benchmark (`tests/benches/voice.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libp2p::PeerId;
use partyline_protocol::voice::{Pose, VoiceFrame};

use super::codec::{CodecSettings, Encoder, SAMPLE_RATE};
use super::member::MemberVoice;
use super::mix::{Mixer, SpatialSettings};
use super::output::{ManualRenderer, OutputTarget};

/// One run of [`mix_cost`].
#[derive(Clone, Copy, Debug)]
pub struct MixCost {
    pub speakers: usize,
    /// Audio produced, in seconds.
    pub audio_seconds: f64,
    /// Time spent receiving, decoding and mixing it, in seconds.
    pub busy_seconds: f64,
    /// RMS level of the mix, to show that voices were really mixed.
    pub output_rms: f64,
}

impl MixCost {
    /// The share of one core that receiving in real time takes.
    pub fn core_fraction(&self) -> f64 {
        self.busy_seconds / self.audio_seconds
    }
}

/// Receives, decodes and positionally mixes `speakers` members all talking for `seconds`, from
/// `speech` (48 kHz mono, encoded once beforehand with the default codec settings; every member
/// starts at a different place in it). Members stand around the listener, 3 to 40 m away.
pub fn mix_cost(speech: &[f32], speakers: usize, seconds: f64) -> Result<MixCost> {
    let codec = CodecSettings::default();
    let frame_samples = codec.frame_samples();
    anyhow::ensure!(speech.len() >= frame_samples, "the speech is shorter than a frame");
    let mut encoder = Encoder::new(codec)?;
    encoder.set_expected_loss(5)?;
    let packets = speech
        .chunks_exact(frame_samples)
        .map(|pcm| encoder.encode(pcm).map(<[u8]>::to_vec))
        .collect::<Result<Vec<_>>>()?;

    let slot: ManualRenderer = Arc::default();
    let mut mixer = Mixer::new(OutputTarget::Manual(slot.clone()), SpatialSettings::default())?;
    mixer.set_listener_pose(Some(Pose::default()));
    let mut members = Vec::with_capacity(speakers);
    for i in 0..speakers {
        let peer = PeerId::random();
        let (producer, counters) = mixer.add_member(peer)?;
        let angle = i as f32 * 2.399_963; // the golden angle: spread all around
        let distance = 3.0 + 37.0 * (i as f32 / speakers.max(1) as f32);
        let pose = Pose { x: distance * angle.sin(), y: 0.0, z: -distance * angle.cos(), yaw: 0.0 };
        mixer.set_member_pose(&peer, Some(pose));
        let member = MemberVoice::new(format!("speaker{i}"), codec.frame_ms, producer, counters)?;
        members.push((member, pose, i * packets.len() / speakers.max(1)));
    }

    let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
    let renderer = guard.as_mut().context("the mixer did not start")?;
    // The output asks for 10 ms at a time, as the real-time file and null outputs do.
    let mut buffer = vec![0.0f32; SAMPLE_RATE as usize / 100 * 2];
    let frames = (seconds * 1000.0 / f64::from(codec.frame_ms)).ceil() as u32;
    let period = Duration::from_millis(u64::from(codec.frame_ms));
    let (mut sum_squares, mut samples) = (0.0f64, 0u64);
    let clock = Instant::now();
    let started = Instant::now();
    for n in 0..frames {
        let now = clock + period * n;
        for (member, pose, offset) in &mut members {
            let opus = &packets[(*offset + n as usize) % packets.len()];
            let frame = VoiceFrame {
                seq: n,
                ts: n * frame_samples as u32,
                talking: true,
                end: false,
                pose: Some(*pose),
                opus,
            };
            member.receive(&frame, opus.len() + 20, now);
            member.play_out(now, frame_samples + frame_samples / 4);
        }
        for _ in 0..codec.frame_ms / 10 {
            renderer.on_start_processing();
            renderer.process(&mut buffer, 2);
            sum_squares += buffer.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            samples += buffer.len() as u64;
        }
    }
    let busy_seconds = started.elapsed().as_secs_f64();
    Ok(MixCost {
        speakers,
        audio_seconds: f64::from(frames) * f64::from(codec.frame_ms) / 1000.0,
        busy_seconds,
        output_rms: (sum_squares / samples.max(1) as f64).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f32) -> Vec<f32> {
        (0..(seconds * SAMPLE_RATE as f32) as usize)
            .map(|i| 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / SAMPLE_RATE as f32).sin())
            .collect()
    }

    #[test]
    fn members_are_decoded_and_mixed() {
        let one = mix_cost(&tone(1.0), 1, 1.0).unwrap();
        assert_eq!(one.audio_seconds, 1.0);
        assert!(one.output_rms > 0.01, "{one:?}");
        let none = mix_cost(&tone(1.0), 0, 1.0).unwrap();
        assert!(none.output_rms < 1e-6, "{none:?}");
        let four = mix_cost(&tone(1.0), 4, 1.0).unwrap();
        assert!(four.output_rms > one.output_rms * 0.5, "{four:?} vs {one:?}");
    }
}
