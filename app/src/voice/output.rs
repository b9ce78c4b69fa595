//! Where the mix goes: a real output device (kira's cpal backend), a WAV file written in real time
//! (bots and tests), nowhere (still consumed in real time, so jitter buffers behave), or a renderer
//! driven by hand (unit tests).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use kira::backend::cpal::{CpalBackend, CpalBackendSettings};
use kira::backend::{Backend, Renderer};

use super::codec::SAMPLE_RATE;

/// When a file output wrote its first sample (wall clock), for latency measurements.
pub(crate) type StartTime = Arc<Mutex<Option<std::time::SystemTime>>>;

/// A renderer shared with a test, which calls it directly.
pub(crate) type ManualRenderer = Arc<Mutex<Option<Renderer>>>;

#[derive(Clone, Default)]
pub(crate) enum OutputTarget {
    /// The system's default output device.
    #[default]
    DefaultDevice,
    /// An output device by (part of) its name.
    Device(String),
    /// A stereo 16-bit WAV file, written in real time; the wall-clock time of its first sample
    /// is reported through `started`.
    File { path: PathBuf, started: StartTime },
    /// Consumed in real time and discarded.
    Null,
    /// Encoded (Opus, 20 ms) for the companion page, in real time.
    Headset(tokio::sync::mpsc::Sender<Vec<u8>>),
    /// Rendered only when asked (unit tests, the mixing benchmark).
    Manual(ManualRenderer),
}

pub(crate) enum OutputBackend {
    /// A device, and the most it asks for at once (frames).
    Device(Box<CpalBackend>, usize),
    Rendered {
        target: OutputTarget,
        thread: Option<JoinHandle<()>>,
        stop: Arc<std::sync::atomic::AtomicBool>,
    },
}

impl Drop for OutputBackend {
    fn drop(&mut self) {
        if let Self::Rendered { stop, thread, .. } = self {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Frames per output callback: 20 ms. ALSA (through PulseAudio) left to choose picked blocks that
/// the 2-core test machine sometimes missed, stalling playback for seconds.
const OUTPUT_BLOCK: u32 = 960;

/// 48 kHz stereo when the device offers it: voices are decoded at 48 kHz, and asking for it
/// avoids a device quietly running at another rate than the one it reported.
fn preferred_config(device: Option<&cpal::Device>) -> Option<cpal::StreamConfig> {
    use cpal::traits::{DeviceTrait, HostTrait};
    let default = cpal::default_host().default_output_device();
    let device = device.or(default.as_ref())?;
    let mut configs = device.supported_output_configs().ok()?;
    configs
        .find(|c| {
            c.channels() == 2
                && c.sample_format() == cpal::SampleFormat::F32
                && c.min_sample_rate() <= SAMPLE_RATE
                && c.max_sample_rate() >= SAMPLE_RATE
        })
        .map(|c| {
            let mut config = c.with_sample_rate(SAMPLE_RATE).config();
            config.buffer_size = cpal::BufferSize::Fixed(OUTPUT_BLOCK);
            config
        })
}

/// Finds an output device whose name contains `name` (case-insensitive).
pub(crate) fn find_output_device(name: &str) -> Result<cpal::Device> {
    use cpal::traits::{DeviceTrait, HostTrait};
    let host = cpal::default_host();
    let wanted = name.to_lowercase();
    host.output_devices()
        .context("cannot list output devices")?
        .find(|d| d.description().is_ok_and(|desc| desc.to_string().to_lowercase().contains(&wanted)))
        .ok_or_else(|| anyhow!("no output device named like {name:?}; `partyline devices` lists them"))
}

impl OutputBackend {
    /// The most audio the output takes at once (48 kHz samples).
    pub(crate) fn block_samples(&self) -> usize {
        match self {
            Self::Device(_, frames) => *frames,
            Self::Rendered { .. } => RENDER_CHUNK,
        }
    }
}

impl Backend for OutputBackend {
    type Settings = OutputTarget;
    type Error = anyhow::Error;

    fn setup(target: OutputTarget, internal_buffer_size: usize) -> Result<(Self, u32)> {
        let device = match &target {
            OutputTarget::DefaultDevice => None,
            OutputTarget::Device(name) => Some(find_output_device(name)?),
            _ => {
                let stop = Arc::default();
                return Ok((Self::Rendered { target, thread: None, stop }, SAMPLE_RATE));
            }
        };
        let config = preferred_config(device.as_ref());
        // Left to choose, a device may ask for a lot at once; 40 ms is assumed until it shows.
        let block = match config.as_ref().map(|c| c.buffer_size) {
            Some(cpal::BufferSize::Fixed(frames)) => frames as usize,
            _ => SAMPLE_RATE as usize / 25,
        };
        let settings = CpalBackendSettings { config, device };
        let (backend, rate) = CpalBackend::setup(settings, internal_buffer_size)
            .map_err(|e| anyhow!("cannot open the output device: {e}"))?;
        Ok((Self::Device(Box::new(backend), block), rate))
    }

    fn start(&mut self, renderer: Renderer) -> Result<()> {
        match self {
            Self::Device(backend, _) => {
                backend.start(renderer).map_err(|e| anyhow!("cannot start audio output: {e}"))
            }
            Self::Rendered { target, thread, stop } => {
                if let OutputTarget::Manual(slot) = target {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(renderer);
                    return Ok(());
                }
                let sink = match target {
                    OutputTarget::File { path, started } => Sink::file(path, started.clone())?,
                    OutputTarget::Headset(to) => {
                        Sink::Headset(Box::new(super::headset::SpeakerEncoder::new(to.clone())?))
                    }
                    _ => Sink::Null,
                };
                let stop = stop.clone();
                *thread = Some(
                    std::thread::Builder::new()
                        .name("partyline-output".into())
                        .spawn(move || render_in_real_time(renderer, sink, &stop))?,
                );
                Ok(())
            }
        }
    }
}

enum Sink {
    Null,
    Headset(Box<super::headset::SpeakerEncoder>),
    File { writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>, started: StartTime },
}

impl Sink {
    fn file(path: &std::path::Path, started: StartTime) -> Result<Self> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self::File { writer, started })
    }
}

/// What the file and null outputs render at a time: 10 ms.
const RENDER_CHUNK: usize = SAMPLE_RATE as usize / 100;

/// Renders 10 ms at a time, paced by the wall clock, until stopped.
fn render_in_real_time(mut renderer: Renderer, mut sink: Sink, stop: &std::sync::atomic::AtomicBool) {
    let mut buffer = vec![0.0f32; RENDER_CHUNK * 2];
    let start = Instant::now();
    let mut chunks: u32 = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let due = start + Duration::from_millis(10) * chunks;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        renderer.on_start_processing();
        renderer.process(&mut buffer, 2);
        if let Sink::Headset(encoder) = &mut sink {
            encoder.push(&buffer);
        }
        if let Sink::File { writer, started } = &mut sink {
            if chunks == 0 {
                *started.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::SystemTime::now());
            }
            for s in &buffer {
                if writer.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).is_err() {
                    tracing::error!("cannot write the speaker file (disk full?); recording stops");
                    sink = Sink::Null;
                    break;
                }
            }
            // Keep the header current, so the file is valid even if the process is killed.
            if chunks % 50 == 49
                && let Sink::File { writer, .. } = &mut sink
            {
                let _ = writer.flush();
            }
        }
        chunks += 1;
    }
    if let Sink::File { writer, .. } = sink {
        let _ = writer.finalize();
    }
}
