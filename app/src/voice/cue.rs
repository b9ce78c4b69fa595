//! Push-to-talk cues: a short rising blip when the microphone opens, a falling one when it closes,
//! quiet enough to sit under the game's sound.

use std::sync::Arc;

use kira::Frame;
use kira::sound::static_sound::{StaticSoundData, StaticSoundSettings};

use super::codec::SAMPLE_RATE;

/// Each of the two notes lasts this long.
const NOTE_MS: u32 = 45;
const AMPLITUDE: f32 = 0.18;

/// Two notes a fifth apart: up for "on air", down for "off air".
pub(crate) fn tone(on: bool) -> StaticSoundData {
    let (first, second) = if on { (660.0, 990.0) } else { (990.0, 660.0) };
    let n = (SAMPLE_RATE * NOTE_MS / 1000) as usize;
    let frames: Vec<Frame> = [first, second]
        .into_iter()
        .flat_map(|hz: f32| {
            (0..n).map(move |i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                // Raised-cosine envelope: no clicks at the note edges.
                let envelope = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos();
                Frame::from_mono(AMPLITUDE * envelope * (2.0 * std::f32::consts::PI * hz * t).sin())
            })
        })
        .collect();
    StaticSoundData {
        sample_rate: SAMPLE_RATE,
        frames: Arc::from(frames),
        settings: StaticSoundSettings::default(),
        slice: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_rises_and_off_falls_and_both_start_and_end_silent() {
        let zero_crossings = |d: &StaticSoundData, half: usize| {
            let f = &d.frames[half * d.frames.len() / 2..(half + 1) * d.frames.len() / 2];
            f.windows(2).filter(|w| (w[0].left >= 0.0) != (w[1].left >= 0.0)).count()
        };
        let (on, off) = (tone(true), tone(false));
        assert!(zero_crossings(&on, 1) > zero_crossings(&on, 0));
        assert!(zero_crossings(&off, 1) < zero_crossings(&off, 0));
        for d in [&on, &off] {
            assert!(d.frames[0].left.abs() < 1e-3 && d.frames[d.frames.len() - 1].left.abs() < 1e-2);
            assert!(d.frames.iter().all(|f| f.left.abs() <= AMPLITUDE));
        }
    }
}
