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
use super::member::{MemberVoice, choose_loudest};
use super::mix::{Mixer, SpatialSettings};
use super::output::{ManualRenderer, OutputTarget};

/// One run of [`mix_cost`].
#[derive(Clone, Copy, Debug)]
pub struct MixCost {
    /// Members in the party, and how many of them talk.
    pub members: usize,
    pub speakers: usize,
    /// Audio produced, in seconds.
    pub audio_seconds: f64,
    /// Time spent receiving, decoding and mixing it, in seconds.
    pub busy_seconds: f64,
    /// Of which: jitter buffers and Opus decoding (the voice thread's share); the rest is the
    /// kira mix (the audio thread's share).
    pub decode_seconds: f64,
    /// RMS level of the mix, to show that voices were really mixed.
    pub output_rms: f64,
}

impl MixCost {
    /// The share of one core that receiving in real time takes.
    pub fn core_fraction(&self) -> f64 {
        self.busy_seconds / self.audio_seconds
    }
}

/// Receives, decodes and positionally mixes a party of `members` of whom `speakers` talk for
/// `seconds`, from `speech` (48 kHz mono, encoded once beforehand with the default codec
/// settings; every speaker starts at a different place in it), decoding and mixing only the
/// `loudest` of them at once (as the voice thread does). Members stand around the listener, 3 to
/// 40 m away.
pub fn mix_cost(
    speech: &[f32],
    members: usize,
    speakers: usize,
    loudest: usize,
    seconds: f64,
) -> Result<MixCost> {
    let codec = CodecSettings::default();
    let frame_samples = codec.frame_samples();
    anyhow::ensure!(speech.len() >= frame_samples, "the speech is shorter than a frame");
    let mut encoder = Encoder::new(codec)?;
    encoder.set_expected_loss(5)?;
    let packets = speech
        .chunks_exact(frame_samples)
        .map(|pcm| encoder.encode(pcm).map(|p| (p.to_vec(), super::send::level(pcm))))
        .collect::<Result<Vec<_>>>()?;

    let slot: ManualRenderer = Arc::default();
    let mut mixer = Mixer::new(OutputTarget::Manual(slot.clone()), SpatialSettings::default())?;
    mixer.set_listener_pose(Some(Pose::default()));
    let party = members;
    let mut members = std::collections::HashMap::with_capacity(party);
    let mut places = Vec::with_capacity(party);
    for i in 0..party {
        let peer = PeerId::random();
        let (producer, counters) = mixer.add_member(peer)?;
        let angle = i as f32 * 2.399_963; // the golden angle: spread all around
        let distance = 3.0 + 37.0 * (i as f32 / party.max(1) as f32);
        let pose = Pose { x: distance * angle.sin(), y: 0.0, z: -distance * angle.cos(), yaw: 0.0 };
        mixer.set_member_pose(&peer, Some(pose));
        let member =
            MemberVoice::new(format!("speaker{i}"), codec.frame_ms, frame_samples, producer, counters)?;
        members.insert(i, member);
        places.push((peer, pose, i * packets.len() / party.max(1)));
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
    let mut decode_seconds = 0.0;
    let mut scores = Vec::new();
    for n in 0..frames {
        let now = clock + period * n;
        let decoding = Instant::now();
        for (i, (_, pose, offset)) in places.iter().enumerate().take(speakers) {
            let (opus, level) = &packets[(offset + n as usize) % packets.len()];
            let frame = VoiceFrame {
                seq: n,
                ts: n * frame_samples as u32,
                talking: true,
                end: false,
                lookback: false,
                level: Some(*level),
                pose: Some(*pose),
                opus,
                redundant: None,
            };
            if let Some(member) = members.get_mut(&i) {
                member.receive(&frame, opus.len() + 20, now);
            }
        }
        choose_loudest(&mut members, loudest, now, &mut scores);
        for (i, member) in &mut members {
            if member.mixed {
                member.play_out(now);
            } else {
                member.pass_over(now);
            }
            mixer.set_active(&places[*i].0, member.has_audio());
        }
        decode_seconds += decoding.elapsed().as_secs_f64();
        for _ in 0..codec.frame_ms / 10 {
            renderer.on_start_processing();
            renderer.process(&mut buffer, 2);
            sum_squares += buffer.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            samples += buffer.len() as u64;
        }
    }
    let busy_seconds = started.elapsed().as_secs_f64();
    Ok(MixCost {
        members: party,
        speakers,
        audio_seconds: f64::from(frames) * f64::from(codec.frame_ms) / 1000.0,
        busy_seconds,
        decode_seconds,
        output_rms: (sum_squares / samples.max(1) as f64).sqrt(),
    })
}

/// How a receiver makes up for a lost frame in [`codec_under_loss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Opus packet-loss concealment only.
    Conceal,
    /// Opus in-band FEC from the next frame (concealment when that is lost too).
    Fec,
    /// The copy of the frame the next one carries, else FEC from the one after, else
    /// concealment: what Partyline does while members report loss.
    Redundancy,
}

/// The codec alone under random frame loss, no network: `speech` (48 kHz mono) encoded with the
/// default settings and the expected loss set to `loss`, frames dropped at random (seeded), decoded
/// with `recovery`. Returns the decoded audio, to score against the speech; it lags by Opus's
/// algorithmic delay.
pub fn codec_under_loss(speech: &[f32], loss: f64, recovery: Recovery, seed: u64) -> Result<Vec<f32>> {
    use rand::{Rng, SeedableRng};
    let codec = CodecSettings::default();
    let frame_samples = codec.frame_samples();
    let mut encoder = Encoder::new(codec)?;
    encoder.set_expected_loss((loss * 100.0).round() as u8)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let packets = speech
        .chunks_exact(frame_samples)
        .map(|pcm| Ok((encoder.encode(pcm)?.to_vec(), !rng.random_bool(loss))))
        .collect::<Result<Vec<_>>>()?;
    let mut decoder = super::codec::Decoder::new(frame_samples)?;
    let mut out = Vec::with_capacity(speech.len());
    let arrived = |i: usize| packets.get(i).is_some_and(|(_, arrived)| *arrived);
    let redundancy = recovery == Recovery::Redundancy;
    for (i, (packet, _)) in packets.iter().enumerate() {
        let pcm = if arrived(i) || (redundancy && arrived(i + 1)) {
            decoder.decode(packet)
        } else if recovery != Recovery::Conceal && (arrived(i + 1) || (redundancy && arrived(i + 2))) {
            decoder.decode_fec(&packets[i + 1].0)
        } else {
            decoder.conceal()
        };
        out.extend_from_slice(pcm);
    }
    Ok(out)
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
    fn fec_rebuilds_lost_frames_better_than_concealment() {
        let speech = crate::voice::codec::tests::voiced(3.0);
        let error = |out: &[f32]| -> f64 {
            // Opus delays by 312 samples (6.5 ms) at 48 kHz.
            let lag = 312;
            speech.iter().zip(&out[lag..]).map(|(a, b)| f64::from(a - b).powi(2)).sum()
        };
        let fec = error(&codec_under_loss(&speech, 0.2, Recovery::Fec, 7).unwrap());
        let conceal = error(&codec_under_loss(&speech, 0.2, Recovery::Conceal, 7).unwrap());
        let copies = error(&codec_under_loss(&speech, 0.2, Recovery::Redundancy, 7).unwrap());
        assert!(copies < fec, "copies {copies}, FEC {fec}");
        let clean = error(&codec_under_loss(&speech, 0.0, Recovery::Fec, 7).unwrap());
        assert!(clean < fec && fec < conceal, "clean {clean}, FEC {fec}, concealment {conceal}");
    }

    #[test]
    fn members_are_decoded_and_mixed() {
        let one = mix_cost(&tone(1.0), 1, 1, 8, 1.0).unwrap();
        assert_eq!(one.audio_seconds, 1.0);
        assert!(one.output_rms > 0.01, "{one:?}");
        let none = mix_cost(&tone(1.0), 4, 0, 8, 1.0).unwrap();
        assert!(none.output_rms < 1e-6, "{none:?}");
        let four = mix_cost(&tone(1.0), 4, 4, 8, 1.0).unwrap();
        assert!(four.output_rms > one.output_rms * 0.5, "{four:?} vs {one:?}");
    }
}
