//! The concealment lab: speech encoded as Partyline sends it (Opus VOIP, 48 kHz mono, 20 ms frames,
//! 24 kbit/s, complexity 8), frames lost at random or in bursts, and made up for in each of the
//! ways libopus 1.6 allows:
//! - `plc`: classic packet loss concealment;
//! - `deep-plc`: the neural concealment of libopus 1.5+ (decoder complexity 10);
//! - `fec`: in-band FEC (LBRR) from the next frame, else PLC;
//! - `copy`: each frame also carries the one before it (as Partyline does while members report
//!   loss), then FEC, then PLC;
//! - `copy-deep`: the same with deep PLC;
//! - `dred`: Deep REDundancy (100 ms of history in every packet, in-band FEC off) from the next
//!   frame, then deep PLC;
//! - `dred-3`: DRED from any of the next three frames: a receiver that waits 40 ms more for
//!   them (bursts);
//! - `copy-dred`: copies first, DRED from the next frame for what they miss.
//!
//! Except for `dred-3`, a lost frame is made up from the next frame only: what Partyline's jitter
//! buffer holds while frames get lost.
//!
//! `partyline-concealment SPEECH.wav OUT_DIR SCORER` writes `OUT_DIR/<way>-<loss>.wav` (the Opus
//! look-ahead cut from the start, so each lines up with the speech), scores each with `SCORER`
//! (`scripts/pesq_score.py`: PESQ-WB) and prints a table: PESQ-WB per way and loss, and the
//! kbit/s of Opus payload each way sends (copies included).
//!
//! The C API is reached through opusic-sys' raw bindings: every call is in this file, each checked.

use std::ffi::c_int;
use std::path::Path;

use opusic_sys as sys;

const RATE: i32 = 48_000;
const FRAME: usize = 960;
const BITRATE: c_int = 24_000;
/// DRED history carried in every packet, in 10 ms units.
const DRED_FRAMES: c_int = 10;

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Plc,
    DeepPlc,
    Fec,
    Copy,
    CopyDeep,
    Dred,
    Dred3,
    CopyDred,
}

impl Way {
    const ALL: [Way; 8] =
        [Way::Plc, Way::DeepPlc, Way::Fec, Way::Copy, Way::CopyDeep, Way::Dred, Way::Dred3, Way::CopyDred];

    fn name(self) -> &'static str {
        match self {
            Way::Plc => "plc",
            Way::DeepPlc => "deep-plc",
            Way::Fec => "fec",
            Way::Copy => "copy",
            Way::CopyDeep => "copy-deep",
            Way::Dred => "dred",
            Way::Dred3 => "dred-3",
            Way::CopyDred => "copy-dred",
        }
    }
    /// In-band FEC on. Not with DRED: with FEC on, libopus gives DRED 3 × the loss rate of what
    /// the bitrate has above 20 kbit/s (next to nothing at 24 kbit/s); without, up to 80% of
    /// what it has above 12 kbit/s.
    fn fec(self) -> bool {
        matches!(self, Way::Fec | Way::Copy | Way::CopyDeep)
    }
    fn copies(self) -> bool {
        matches!(self, Way::Copy | Way::CopyDeep | Way::CopyDred)
    }
    fn dred(self) -> bool {
        matches!(self, Way::Dred | Way::Dred3 | Way::CopyDred)
    }
    fn deep(self) -> bool {
        matches!(self, Way::DeepPlc | Way::CopyDeep | Way::Dred | Way::Dred3 | Way::CopyDred)
    }
    /// How many frames ahead of a lost one the receiver looks for what rebuilds it.
    fn reach(self) -> usize {
        if self == Way::Dred3 { 3 } else { 1 }
    }
}

/// Which frames are lost: independent losses (`burst` 1) or a Gilbert model with mean burst
/// length `burst` and the same overall loss; seeded, so every way meets the same losses.
fn losses(frames: usize, loss: f64, burst: f64, mut seed: u64) -> Vec<bool> {
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    // Good -> bad with p, bad -> good with r: mean burst 1/r, loss p / (p + r).
    let r = 1.0 / burst;
    let p = loss * r / (1.0 - loss);
    let mut bad = false;
    (0..frames)
        .map(|_| {
            bad = if burst <= 1.0 {
                random() < loss
            } else if bad {
                random() >= r
            } else {
                random() < p
            };
            bad
        })
        .collect()
}

struct Encoder(*mut sys::OpusEncoder);

impl Encoder {
    fn new(way: Way, loss_percent: c_int) -> Self {
        let mut error = 0;
        // SAFETY: arguments are valid constants; the result is checked before use.
        let st = unsafe { sys::opus_encoder_create(RATE, 1, sys::OPUS_APPLICATION_VOIP, &mut error) };
        assert!(!st.is_null() && error == 0, "opus_encoder_create: {error}");
        let enc = Self(st);
        enc.ctl(sys::OPUS_SET_BITRATE_REQUEST, BITRATE);
        enc.ctl(sys::OPUS_SET_COMPLEXITY_REQUEST, 8);
        enc.ctl(sys::OPUS_SET_INBAND_FEC_REQUEST, c_int::from(way.fec()));
        enc.ctl(sys::OPUS_SET_PACKET_LOSS_PERC_REQUEST, loss_percent);
        if way.dred() {
            enc.ctl(sys::OPUS_SET_DRED_DURATION_REQUEST, DRED_FRAMES);
        }
        enc
    }

    fn ctl(&self, request: c_int, value: c_int) {
        // SAFETY: `self.0` is a live encoder; every request used here takes one int.
        let result = unsafe { sys::opus_encoder_ctl(self.0, request, value) };
        assert_eq!(result, 0, "opus_encoder_ctl({request}, {value})");
    }

    fn lookahead(&self) -> usize {
        let mut value: c_int = 0;
        // SAFETY: the request writes one int through the pointer, which outlives the call.
        let result = unsafe {
            sys::opus_encoder_ctl(self.0, sys::OPUS_GET_LOOKAHEAD_REQUEST, &mut value as *mut c_int)
        };
        assert_eq!(result, 0);
        value as usize
    }

    fn encode(&mut self, pcm: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; 1500];
        // SAFETY: `pcm` holds FRAME samples and `out` 1500 bytes, as the call is told.
        let n = unsafe {
            sys::opus_encode_float(self.0, pcm.as_ptr(), FRAME as c_int, out.as_mut_ptr(), out.len() as i32)
        };
        assert!(n > 0, "opus_encode_float: {n}");
        out.truncate(n as usize);
        out
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { sys::opus_encoder_destroy(self.0) }
    }
}

struct Decoder {
    st: *mut sys::OpusDecoder,
    dred_decoder: *mut sys::OpusDREDDecoder,
    dred: *mut sys::OpusDRED,
}

impl Decoder {
    fn new(deep: bool) -> Self {
        let mut error = 0;
        // SAFETY: valid constants; results checked before use.
        let st = unsafe { sys::opus_decoder_create(RATE, 1, &mut error) };
        assert!(!st.is_null() && error == 0, "opus_decoder_create: {error}");
        // SAFETY: as above.
        let dred_decoder = unsafe { sys::opus_dred_decoder_create(&mut error) };
        assert!(!dred_decoder.is_null() && error == 0, "opus_dred_decoder_create: {error}");
        // SAFETY: as above.
        let dred = unsafe { sys::opus_dred_alloc(&mut error) };
        assert!(!dred.is_null() && error == 0, "opus_dred_alloc: {error}");
        // Deep PLC needs a decoder complexity of 5 or more.
        let complexity: c_int = if deep { 10 } else { 0 };
        // SAFETY: `st` is live; the request takes one int.
        let result = unsafe { sys::opus_decoder_ctl(st, sys::OPUS_SET_COMPLEXITY_REQUEST, complexity) };
        assert_eq!(result, 0, "decoder complexity");
        Self { st, dred_decoder, dred }
    }

    /// Decodes `packet` (FEC data of the frame before it if `fec`), or conceals (`None`).
    fn decode(&mut self, packet: Option<&[u8]>, fec: bool) -> Vec<f32> {
        let mut pcm = vec![0f32; FRAME];
        let (data, len) = packet.map_or((std::ptr::null(), 0), |p| (p.as_ptr(), p.len() as i32));
        // SAFETY: `data` is null (concealment) or `len` valid bytes; `pcm` holds FRAME samples.
        let n = unsafe {
            sys::opus_decode_float(self.st, data, len, pcm.as_mut_ptr(), FRAME as c_int, c_int::from(fec))
        };
        assert_eq!(n, FRAME as c_int, "opus_decode_float");
        pcm
    }

    /// Parses the DRED in `packet` (which came after the losses); `false` if it carries none.
    fn parse_dred(&mut self, packet: &[u8]) -> bool {
        let mut dred_end = 0;
        // SAFETY: all pointers are live; `packet` has `len` bytes.
        let offset = unsafe {
            sys::opus_dred_parse(
                self.dred_decoder,
                self.dred,
                packet.as_ptr(),
                packet.len() as i32,
                (DRED_FRAMES as i32) * RATE / 100,
                RATE,
                &mut dred_end,
                0,
            )
        };
        offset > 0
    }

    /// The frame `frames_before` frames before the packet last parsed, rebuilt from its DRED.
    fn decode_dred(&mut self, frames_before: usize) -> Vec<f32> {
        let mut pcm = vec![0f32; FRAME];
        // SAFETY: the states are live; `pcm` holds FRAME samples.
        let n = unsafe {
            sys::opus_decoder_dred_decode_float(
                self.st,
                self.dred,
                (frames_before * FRAME) as i32,
                pcm.as_mut_ptr(),
                FRAME as c_int,
            )
        };
        assert_eq!(n, FRAME as c_int, "opus_decoder_dred_decode_float");
        pcm
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: each was created once above and is destroyed once.
        unsafe {
            sys::opus_dred_free(self.dred);
            sys::opus_dred_decoder_destroy(self.dred_decoder);
            sys::opus_decoder_destroy(self.st);
        }
    }
}

/// What the listener hears of `speech` sent the `way` way through `lost`; the Opus bytes sent;
/// how many lost frames DRED rebuilt.
fn run(speech: &[f32], way: Way, lost: &[bool], loss_percent: c_int) -> (Vec<f32>, usize, usize) {
    let mut encoder = Encoder::new(way, loss_percent);
    let lookahead = encoder.lookahead();
    let packets: Vec<Vec<u8>> = speech.chunks_exact(FRAME).map(|pcm| encoder.encode(pcm)).collect();
    let sent: usize = packets.iter().map(Vec::len).sum::<usize>()
        + if way.copies() { packets.iter().skip(1).map(Vec::len).sum::<usize>() } else { 0 };
    let mut decoder = Decoder::new(way.deep());
    let mut out = Vec::with_capacity(speech.len());
    let mut by_dred = 0;
    for i in 0..packets.len() {
        if !lost[i] {
            out.extend(decoder.decode(Some(&packets[i]), false));
            continue;
        }
        // The copy of frame i rides in frame i + 1.
        if way.copies() && lost.get(i + 1) == Some(&false) {
            out.extend(decoder.decode(Some(&packets[i]), false));
            continue;
        }
        // The next packet that came, and how far ahead it is.
        let next = (i + 1..packets.len()).find(|j| !lost[*j]);
        let pcm = match next {
            Some(j) if way.dred() && j - i <= way.reach() && decoder.parse_dred(&packets[j]) => {
                by_dred += 1;
                decoder.decode_dred(j - i)
            }
            Some(j) if way.fec() && j == i + 1 => decoder.decode(Some(&packets[j]), true),
            _ => decoder.decode(None, false),
        };
        out.extend(pcm);
    }
    out.drain(..lookahead.min(out.len()));
    (out, sent, by_dred)
}

fn read_mono(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, RATE as u32, "48 kHz speech");
    let channels = usize::from(spec.channels);
    let scale = (1u32 << (spec.bits_per_sample - 1)) as f32;
    let samples: Vec<f32> = reader.samples::<i32>().map(|s| s.expect("sample") as f32 / scale).collect();
    samples.chunks(channels).map(|c| c.iter().sum::<f32>() / channels as f32).collect()
}

fn write_mono(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).expect("write wav");
    }
    w.finalize().expect("finish wav");
}

/// PESQ-WB of `heard` against `speech`, by the scorer script.
fn score(scorer: &Path, speech: &Path, heard: &Path) -> String {
    let out = std::process::Command::new("python3").arg(scorer).arg(speech).arg(heard).arg("0").output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("cannot run python3: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, speech_path, out_dir, scorer] = &args[..] else {
        eprintln!("usage: partyline-concealment SPEECH.wav OUT_DIR SCORER");
        std::process::exit(2);
    };
    let speech = read_mono(Path::new(speech_path));
    let out_dir = Path::new(out_dir);
    std::fs::create_dir_all(out_dir).expect("output folder");
    let frames = speech.len() / FRAME;
    let seconds = (frames * FRAME) as f64 / f64::from(RATE);
    let conditions = [
        ("clean", 0.0, 1.0, 1),
        ("5%", 0.05, 1.0, 2),
        ("10%", 0.10, 1.0, 3),
        ("20%", 0.20, 1.0, 4),
        ("10% bursts of 3", 0.10, 3.0, 5),
    ];
    println!(
        "\nconcealment, codec alone (libopus 1.6 via opusic-sys; 20 ms, 24 kbit/s, complexity 8): PESQ-WB"
    );
    print!("| way       |");
    for (label, ..) in conditions {
        print!(" {label:>15} |");
    }
    println!(" kbit/s at 10% | by DRED at 10% |");
    println!(
        "|-----------|{}---------------|----------------|",
        "-----------------|".repeat(conditions.len())
    );
    for way in Way::ALL {
        print!("| {:<9} |", way.name());
        let (mut kbps, mut rebuilt) = (0.0, 0);
        for (label, loss, burst, seed) in conditions {
            let lost = losses(frames, loss, burst, 0x9e37_79b9_7f4a_7c15 ^ seed);
            let (heard, bytes, by_dred) = run(&speech, way, &lost, (loss * 100.0) as c_int);
            let path = out_dir.join(format!("{}-{}.wav", way.name(), label.replace([' ', '%'], "")));
            write_mono(&path, &heard);
            print!(" {:>15} |", score(Path::new(scorer), Path::new(speech_path), &path));
            if label == "10%" {
                kbps = bytes as f64 * 8.0 / seconds / 1000.0;
                rebuilt = by_dred;
            }
        }
        println!(" {kbps:>13.1} | {rebuilt:>14} |");
    }
}
