//! The sounds the mixer plays: each member's ring, and a silent one that counts what the output
//! renders (its clock). Both run on the audio thread: no locks, no allocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kira::Frame;
use kira::sound::{Sound, SoundData};

use crate::voice::codec::SAMPLE_RATE;

/// Counts of a member's playback, shared with the audio thread.
#[derive(Default, Debug)]
pub(crate) struct PlaybackCounters {
    pub(crate) samples_played: AtomicU64,
    pub(crate) underruns: AtomicU64,
    /// What the mixer's output has rendered (48 kHz samples), shared by all its members.
    pub(crate) rendered: Arc<AtomicU64>,
}

pub(super) struct RingSoundData {
    pub(super) consumer: rtrb::Consumer<f32>,
    pub(super) counters: Arc<PlaybackCounters>,
}

impl SoundData for RingSoundData {
    type Error = std::convert::Infallible;
    type Handle = ();

    fn into_sound(self) -> Result<(Box<dyn Sound>, ()), Self::Error> {
        Ok((
            Box::new(RingSound {
                consumer: self.consumer,
                counters: self.counters,
                phase: 0.0,
                last: 0.0,
                next: 0.0,
            }),
            (),
        ))
    }
}

/// Plays a member's decoded audio from its ring, on the audio thread: no locks, no allocation.
/// Converts from 48 kHz to the device's rate by linear interpolation when they differ.
struct RingSound {
    consumer: rtrb::Consumer<f32>,
    counters: Arc<PlaybackCounters>,
    phase: f64,
    last: f32,
    next: f32,
}

impl Sound for RingSound {
    fn process(&mut self, out: &mut [Frame], dt: f64, _info: &kira::info::Info) {
        let step = f64::from(SAMPLE_RATE) * dt;
        let mut underrun = false;
        for frame in out.iter_mut() {
            self.phase += step;
            while self.phase >= 1.0 {
                self.phase -= 1.0;
                self.last = self.next;
                self.next = match self.consumer.pop() {
                    Ok(s) => s,
                    Err(_) => {
                        underrun = true;
                        0.0
                    }
                };
            }
            let s = self.last + (self.next - self.last) * self.phase as f32;
            *frame = Frame::from_mono(s);
        }
        self.counters.samples_played.fetch_add(out.len() as u64, Ordering::Relaxed);
        if underrun {
            self.counters.underruns.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn finished(&self) -> bool {
        false
    }
}

/// Counts the output's samples (48 kHz), whatever is playing: the output device's clock.
pub(super) struct ClockSoundData(pub(super) Arc<AtomicU64>);

impl SoundData for ClockSoundData {
    type Error = std::convert::Infallible;
    type Handle = ();

    fn into_sound(self) -> Result<(Box<dyn Sound>, ()), Self::Error> {
        Ok((Box::new(ClockSound { rendered: self.0, samples: 0.0 }), ()))
    }
}

struct ClockSound {
    rendered: Arc<AtomicU64>,
    samples: f64,
}

impl Sound for ClockSound {
    fn process(&mut self, out: &mut [Frame], dt: f64, _info: &kira::info::Info) {
        out.fill(Frame::ZERO);
        self.samples += out.len() as f64 * f64::from(SAMPLE_RATE) * dt;
        self.rendered.store(self.samples as u64, Ordering::Relaxed);
    }

    fn finished(&self) -> bool {
        false
    }
}
