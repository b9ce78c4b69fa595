//! Microphone input: a real input device (cpal) or a WAV file played in real time (bots, tests).
//! Either way samples land, mono f32 at the source's rate, in a lock-free ring the voice thread
//! drains. The device callback never blocks or allocates: it converts and pushes, and counts what
//! did not fit.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::MicSource;

/// Samples buffered between the device and the voice thread (one second at 48 kHz).
const RING: usize = 48_000;

/// A device that delivers nothing for this long has stopped, even if it reported no error (a
/// sound server that vanished leaves ALSA's PulseAudio plugin waiting).
const STALLED_AFTER: Duration = Duration::from_secs(2);
/// Capture block sizes tried, smallest first (ms).
pub(crate) const CAPTURE_BLOCKS_MS: [u32; 3] = [10, 20, 40];
/// Failed devices being closed at once, at most (see [`Capture::close_failed`]).
const MAX_CLOSING: usize = 4;

/// What the capture side shares with the voice thread.
#[derive(Default)]
pub(crate) struct CaptureStatus {
    /// The device reported an error (unplugged, taken away): reopen it.
    pub(crate) failed: AtomicBool,
    pub(crate) error: Mutex<Option<String>>,
    /// Samples the voice thread did not take in time.
    pub(crate) overflow: AtomicU64,
    /// The largest block the device delivered at once since the voice thread last looked
    /// (frames): how bursty capture is.
    pub(crate) largest_block: AtomicUsize,
    /// Overruns: the device had more than its buffer holds before it was read (samples lost,
    /// the gap filled with silence so that time stamps stay in step with the device's clock).
    pub(crate) overruns: AtomicU64,
    /// An overrun was reported and its gap is not filled yet.
    overrun_pending: AtomicBool,
    /// The file source reached its end.
    pub(crate) ended: AtomicBool,
    /// Wall-clock time of the first sample (file sources), for latency measurements.
    pub(crate) started: Mutex<Option<SystemTime>>,
    /// A file source waits for this: it plays once someone is there to hear it.
    pub(crate) go: AtomicBool,
}

pub(crate) struct Capture {
    pub(crate) consumer: rtrb::Consumer<f32>,
    pub(crate) rate: u32,
    /// The fixed block size the device was opened with (ms), if it took one.
    pub(crate) block_ms: Option<u32>,
    pub(crate) status: Arc<CaptureStatus>,
    pub(crate) description: String,
    /// When the device last delivered samples.
    heard_at: Instant,
    keep: Keep,
}

enum Keep {
    Stream(#[allow(dead_code)] cpal::Stream),
    Thread { stop: Arc<AtomicBool>, thread: Option<JoinHandle<()>> },
}

impl Drop for Keep {
    fn drop(&mut self) {
        if let Keep::Thread { stop, thread } = self {
            stop.store(true, Ordering::Relaxed);
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Capture {
    /// Opens `source` with blocks of at least `min_block_ms`; `Ok(None)` for [`MicSource::None`]
    /// (listen-only).
    pub(crate) fn open(source: &MicSource, min_block_ms: u32) -> Result<Option<Self>> {
        match source {
            MicSource::None => Ok(None),
            MicSource::File(path) => Self::file(path).map(Some),
            MicSource::Headset(headset) => Self::headset(headset).map(Some),
            MicSource::DefaultDevice => {
                let device = cpal::default_host()
                    .default_input_device()
                    .ok_or_else(|| anyhow!("no input device (microphone) found"))?;
                Self::device(device, min_block_ms).map(Some)
            }
            MicSource::Device(name) => Self::device(find_input_device(name)?, min_block_ms).map(Some),
        }
    }

    fn device(device: cpal::Device, min_block_ms: u32) -> Result<Self> {
        let description = device.description().map(|d| d.to_string()).unwrap_or_else(|_| "input".into());
        let default = device.default_input_config().context("the input device has no usable format")?;
        // 48 kHz when the device can do it (no resampling), else its own rate.
        let supports_48k = device.supported_input_configs().is_ok_and(|mut configs| {
            configs.any(|c| {
                c.min_sample_rate() <= 48_000
                    && c.max_sample_rate() >= 48_000
                    && c.sample_format() == default.sample_format()
            })
        });
        let mut config: cpal::StreamConfig = default.config();
        if supports_48k {
            config.sample_rate = 48_000;
        }
        // Small fixed blocks, so that frames leave as the microphone delivers them and not in
        // bursts (left to choose, ALSA's PulseAudio plugin delivered irregular blocks of up to
        // ~100 ms): the smallest of these the device accepts, else whatever it picks.
        let mut blocks: Vec<Option<u32>> = CAPTURE_BLOCKS_MS
            .iter()
            .filter(|ms| **ms >= min_block_ms)
            .filter(|ms| match default.buffer_size() {
                cpal::SupportedBufferSize::Range { min, max } => {
                    (*min..=*max).contains(&(config.sample_rate * *ms / 1000))
                }
                cpal::SupportedBufferSize::Unknown => true,
            })
            .map(|ms| Some(*ms))
            .collect();
        blocks.push(None);
        let mut failure = None;
        for block_ms in blocks {
            config.buffer_size = block_ms.map_or(cpal::BufferSize::Default, |ms| {
                cpal::BufferSize::Fixed(config.sample_rate * ms / 1000)
            });
            match Self::stream(&device, default.sample_format(), &config) {
                Ok((keep, consumer, status)) => {
                    return Ok(Self {
                        consumer,
                        rate: config.sample_rate,
                        block_ms,
                        status,
                        description,
                        heard_at: Instant::now(),
                        keep: Keep::Stream(keep),
                    });
                }
                Err(e) => {
                    tracing::debug!(?block_ms, "the input device refused: {e:#}");
                    failure = Some(e);
                }
            }
        }
        Err(failure.unwrap_or_else(|| anyhow!("the input device has no usable format")))
    }

    /// Opens and starts a capture stream with `config`.
    fn stream(
        device: &cpal::Device,
        format: cpal::SampleFormat,
        config: &cpal::StreamConfig,
    ) -> Result<(cpal::Stream, rtrb::Consumer<f32>, Arc<CaptureStatus>)> {
        let channels = usize::from(config.channels.max(1));
        let (producer, consumer) = rtrb::RingBuffer::new(RING);
        let status = Arc::new(CaptureStatus::default());
        let on_error = {
            let status = status.clone();
            move |e: cpal::Error| {
                if e.kind() == cpal::ErrorKind::Xrun {
                    // Recovered by the stream itself; the next block fills the gap.
                    status.overruns.fetch_add(1, Ordering::Relaxed);
                    status.overrun_pending.store(true, Ordering::Relaxed);
                    return;
                }
                *status.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                status.failed.store(true, Ordering::Relaxed);
            }
        };
        let (device, status2) = (device, status.clone());
        let stream = match format {
            cpal::SampleFormat::F32 => build::<f32>(device, config, channels, producer, status2, on_error)?,
            cpal::SampleFormat::I16 => build::<i16>(device, config, channels, producer, status2, on_error)?,
            cpal::SampleFormat::I32 => build::<i32>(device, config, channels, producer, status2, on_error)?,
            cpal::SampleFormat::U16 => build::<u16>(device, config, channels, producer, status2, on_error)?,
            other => bail!("unsupported input sample format {other:?}"),
        };
        stream.play().context("cannot start the input device")?;
        Ok((stream, consumer, status))
    }

    /// Plays a WAV file as the microphone, in real time, then silence; it starts when
    /// [`CaptureStatus::go`] is set.
    fn file(path: &std::path::Path) -> Result<Self> {
        let reader =
            hound::WavReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let samples: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader.into_samples::<f32>().collect::<Result<_, _>>()?,
            hound::SampleFormat::Int => {
                let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
                reader.into_samples::<i32>().map(|s| s.map(|s| s as f32 / scale)).collect::<Result<_, _>>()?
            }
        };
        let mono: Vec<f32> =
            samples.chunks(channels).map(|c| c.iter().sum::<f32>() / channels as f32).collect();
        let rate = spec.sample_rate;
        let (mut producer, consumer) = rtrb::RingBuffer::new(RING);
        let status = Arc::new(CaptureStatus::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (status, stop) = (status.clone(), stop.clone());
            std::thread::Builder::new().name("partyline-mic-file".into()).spawn(move || {
                let chunk = (rate / 100) as usize;
                while !status.go.load(Ordering::Relaxed) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let start = Instant::now();
                *status.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(SystemTime::now());
                let silence = vec![0.0; chunk];
                for n in 0u32.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let from = n as usize * chunk;
                    let samples = if from < mono.len() {
                        &mono[from..(from + chunk).min(mono.len())]
                    } else {
                        status.ended.store(true, Ordering::Relaxed);
                        &silence[..]
                    };
                    push_all(&mut producer, samples, &status);
                    let due = start + Duration::from_millis(10) * (n + 1);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            })?
        };
        Ok(Self {
            consumer,
            rate,
            status,
            block_ms: None,
            description: format!("file {}", path.display()),
            heard_at: Instant::now(),
            keep: Keep::Thread { stop, thread: Some(thread) },
        })
    }

    /// The page's microphone (a phone or handheld as headset), decoded as its packets come.
    fn headset(headset: &super::headset::Headset) -> Result<Self> {
        let packets = headset.take_mic().context("the headset's microphone is in use already")?;
        let (mut producer, consumer) = rtrb::RingBuffer::new(RING);
        let status = Arc::new(CaptureStatus::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (status, stop) = (status.clone(), stop.clone());
            std::thread::Builder::new().name("partyline-mic-headset".into()).spawn(move || {
                let push = |samples: &[f32]| push_all(&mut producer, samples, &status);
                if let Err(e) = super::headset::run_mic(packets, push, &stop) {
                    tracing::warn!("the headset's microphone stopped: {e:#}");
                }
                status.ended.store(true, Ordering::Relaxed);
            })?
        };
        Ok(Self {
            consumer,
            rate: super::codec::SAMPLE_RATE,
            status,
            block_ms: None,
            description: format!("headset {}", headset.device),
            heard_at: Instant::now(),
            keep: Keep::Thread { stop, thread: Some(thread) },
        })
    }

    /// Moves what was captured into `into`. A device that has delivered nothing for
    /// [`STALLED_AFTER`] is marked failed, as if it had reported an error.
    pub(crate) fn drain(&mut self, into: &mut Vec<f32>, now: Instant) {
        let before = into.len();
        while let Ok(s) = self.consumer.pop() {
            into.push(s);
        }
        if into.len() > before {
            self.heard_at = now;
        } else if matches!(self.keep, Keep::Stream(_))
            && now.duration_since(self.heard_at) > STALLED_AFTER
            && !self.status.failed.swap(true, Ordering::Relaxed)
        {
            *self.status.error.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("no sound from it for {} s", STALLED_AFTER.as_secs()));
        }
    }

    /// Closes the capture off the calling thread: closing a device whose sound server vanished
    /// can block for good inside ALSA's PulseAudio plugin, and the voice thread must run on. Past
    /// [`MAX_CLOSING`] closes still waiting, the capture is leaked instead.
    pub(crate) fn close(self) {
        static CLOSING: AtomicUsize = AtomicUsize::new(0);
        if CLOSING.fetch_add(1, Ordering::Relaxed) >= MAX_CLOSING {
            CLOSING.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(input = %self.description, "a microphone cannot be closed; leaving it");
            std::mem::forget(self);
            return;
        }
        let closing = std::thread::Builder::new().name("partyline-mic-close".into()).spawn(move || {
            drop(self);
            CLOSING.fetch_sub(1, Ordering::Relaxed);
        });
        if closing.is_err() {
            CLOSING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn push_all(producer: &mut rtrb::Producer<f32>, samples: &[f32], status: &CaptureStatus) {
    for s in samples {
        if producer.push(*s).is_err() {
            status.overflow.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    mut producer: rtrb::Producer<f32>,
    status: Arc<CaptureStatus>,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream>
where
    T: cpal::SizedSample,
    f32: cpal::FromSample<T>,
{
    let rate = config.sample_rate;
    let mut next_capture: Option<cpal::StreamInstant> = None;
    let stream = device
        .build_input_stream::<T, _, _>(
            *config,
            move |data: &[T], info: &cpal::InputCallbackInfo| {
                let frames = data.len() / channels;
                status.largest_block.fetch_max(frames, Ordering::Relaxed);
                // After an overrun, silence for what was lost (from the device's time stamps, at
                // most half a second), so that the samples counted stay in step with its clock.
                let captured = info.timestamp().capture;
                if status.overrun_pending.swap(false, Ordering::Relaxed)
                    && let Some(expected) = next_capture
                {
                    let lost = captured.saturating_duration_since(expected).min(Duration::from_millis(500));
                    for _ in 0..(lost.as_secs_f64() * f64::from(rate)) as usize {
                        if producer.push(0.0).is_err() {
                            break;
                        }
                    }
                }
                next_capture = captured.checked_add(Duration::from_secs_f64(frames as f64 / f64::from(rate)));
                for frame in data.chunks(channels) {
                    let sum: f32 = frame.iter().map(|s| <f32 as cpal::FromSample<T>>::from_sample_(*s)).sum();
                    if producer.push(sum / channels as f32).is_err() {
                        status.overflow.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            on_error,
            None,
        )
        .context("cannot open the input device")?;
    Ok(stream)
}

fn find_input_device(name: &str) -> Result<cpal::Device> {
    let wanted = name.to_lowercase();
    cpal::default_host()
        .input_devices()
        .context("cannot list input devices")?
        .find(|d| d.description().is_ok_and(|desc| desc.to_string().to_lowercase().contains(&wanted)))
        .ok_or_else(|| anyhow!("no input device named like {name:?}; `partyline devices` lists them"))
}

/// Names of the input and output devices, for `partyline devices`.
pub fn list_devices() -> Result<(Vec<String>, Vec<String>)> {
    let host = cpal::default_host();
    let names = |devices: Result<Box<dyn Iterator<Item = cpal::Device>>, _>| -> Vec<String> {
        devices
            .map(|ds| ds.filter_map(|d| d.description().ok().map(|d| d.to_string())).collect())
            .unwrap_or_default()
    };
    let inputs = names(host.input_devices().map(|d| Box::new(d) as Box<dyn Iterator<Item = _>>));
    let outputs = names(host.output_devices().map(|d| Box::new(d) as Box<dyn Iterator<Item = _>>));
    Ok((inputs, outputs))
}
