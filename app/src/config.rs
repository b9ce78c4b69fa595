//! Settings: a TOML file in the config directory, written with defaults on first run.
//! Command-line flags override what the file says for one run; only the overlay's settings panel
//! rewrites the file.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::voice::{
    CodecSettings, GateSettings, MicSource, SpatialSettings, SpeakerSink, VoiceConfig, VoiceMode,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// How other members see you.
    pub name: String,
    /// Community relays (`partyline relay` prints their addresses). Parties you host put relayed
    /// addresses in their links, so friends behind NATs can reach you.
    pub relays: Vec<Multiaddr>,
    /// UDP (QUIC) and TCP port to listen on; 0 picks a free one each run.
    pub port: u16,
    /// Find party members on the local network by multicast DNS.
    pub mdns: bool,
    /// How long `join` keeps trying before it gives up.
    #[serde(with = "humantime_serde")]
    pub join_timeout: Duration,
    pub invites: InviteSettings,
    pub voice: VoiceSettings,
    pub overlay: OverlaySettings,
    pub relay_server: RelayServerSettings,
    pub transfers: TransferSettings,
    pub companion: CompanionSettings,
}

/// The companion gateway (a phone or handheld as remote), which serves while its plugin runs
/// (`partyline plugins enable companion`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompanionSettings {
    /// Its TCP port; 0 picks a free one each run (paired devices then lose it).
    pub port: u16,
}

impl Default for CompanionSettings {
    fn default() -> Self {
        Self { port: 47800 }
    }
}

/// Sharing games and files with members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferSettings {
    /// Upload at most this many megabytes per second to members, all together; 0: no limit.
    pub upload_limit_mbps: f64,
    /// Between members who reach each other directly (a LAN), move data over a TCP connection
    /// of its own, sealed with AES-256-GCM under a key exchanged over the party's encrypted
    /// link: much faster than the party connection. Off: always over the party connection.
    pub direct: bool,
}

impl Default for TransferSettings {
    fn default() -> Self {
        Self { upload_limit_mbps: 0.0, direct: true }
    }
}

impl TransferSettings {
    /// The limit in bytes per second.
    pub fn upload_limit(&self) -> Option<u64> {
        (self.upload_limit_mbps > 0.0).then_some((self.upload_limit_mbps * 1e6) as u64)
    }
}

/// Whether to draw the overlay (`overlay.show`; `--overlay` and `--headless` say it for one run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Show {
    /// The overlay when a display exists, else headless.
    #[default]
    Auto,
    Overlay,
    Headless,
}

impl Show {
    /// Whether to draw the overlay rather than run headless.
    pub fn overlay(self) -> bool {
        self == Self::Overlay || (self == Self::Auto && crate::display::available())
    }
}

/// The corner or edge of the screen the overlay keeps to (`overlay.anchor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    #[default]
    TopLeft,
    Top,
    TopRight,
    Right,
    BottomRight,
    Bottom,
    BottomLeft,
    Left,
}

impl Anchor {
    /// Clockwise from the top-left corner.
    pub const ALL: [Anchor; 8] = [
        Self::TopLeft,
        Self::Top,
        Self::TopRight,
        Self::Right,
        Self::BottomRight,
        Self::Bottom,
        Self::BottomLeft,
        Self::Left,
    ];

    /// The next one clockwise.
    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|a| *a == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// Which side it keeps to across and down: -1 the left or top, 1 the right or bottom, 0 the
    /// middle.
    pub fn sides(self) -> (i32, i32) {
        match self {
            Self::TopLeft => (-1, -1),
            Self::Top => (0, -1),
            Self::TopRight => (1, -1),
            Self::Right => (1, 0),
            Self::BottomRight => (1, 1),
            Self::Bottom => (0, 1),
            Self::BottomLeft => (-1, 1),
            Self::Left => (-1, 0),
        }
    }
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::choice::name(self))
    }
}

/// The overlay: where it sits, how it looks, its keys. Its settings panel rewrites this part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverlaySettings {
    pub show: Show,
    pub anchor: Anchor,
    /// Distance from that corner or edge, pixels.
    pub margin: [i32; 2],
    /// Window size, pixels.
    pub size: [u32; 2],
    /// Opacity of the panels' backdrop, 0.2 to 1.
    pub opacity: f32,
    /// Size of text and widgets, 0.75 to 2.
    pub scale: f32,
    /// Global key for push-to-talk (held, or pressed to latch), e.g. "F9" or "ctrl+shift+KeyT".
    pub ptt_key: String,
    /// Global key that makes the overlay take the mouse, or let clicks through to the game again.
    pub interact_key: String,
}

impl Default for OverlaySettings {
    fn default() -> Self {
        Self {
            show: Show::Auto,
            anchor: Anchor::TopLeft,
            margin: [24, 24],
            size: [340, 460],
            opacity: 0.8,
            scale: 1.0,
            ptt_key: "F9".into(),
            interact_key: "shift+F10".into(),
        }
    }
}

impl OverlaySettings {
    fn validate(&self) -> Result<()> {
        anyhow::ensure!((0.2..=1.0).contains(&self.opacity), "overlay.opacity must be 0.2 to 1");
        anyhow::ensure!((0.75..=2.0).contains(&self.scale), "overlay.scale must be 0.75 to 2");
        anyhow::ensure!(
            (160..=4096).contains(&self.size[0]) && (120..=4096).contains(&self.size[1]),
            "overlay.size must be at least [160, 120]"
        );
        Ok(())
    }
}

/// Voice: devices, how the microphone opens, how voices are encoded and placed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceSettings {
    /// Off: chat only, no audio devices opened.
    pub enabled: bool,
    /// Microphone: "default", "none" (listen only) or part of a device's name.
    pub input: String,
    /// Speakers or headset: "default", "none", or part of a device's name.
    pub output: String,
    /// "voice" (voice activation), "ptt" (push-to-talk, hold) or "latch" (press to toggle).
    pub mode: VoiceMode,
    /// Voice activation: how sure the detector must be that it hears speech, 0 to 1.
    pub threshold: f32,
    /// Voice activation: how long the microphone stays open after speech.
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
    pub noise_suppression: bool,
    /// Opus bitrate in bits per second.
    pub bitrate: u32,
    /// Opus frame length: 10ms or 20ms.
    #[serde(with = "humantime_serde")]
    pub frame: Duration,
    /// Streams each member's voice is spread over, so one lost packet stalls only some frames.
    pub streams_per_peer: usize,
    /// Read your in-game position from the MumbleLink shared memory games write.
    pub mumble_link: bool,
    /// Short tones when push-to-talk opens and closes your microphone.
    pub cues: bool,
    /// In a big party, how many of the members talking at once are heard: the loudest.
    pub mix_loudest: usize,
    /// Positional audio: voices fade from full volume at `min_distance` to silence at
    /// `max_distance` (metres); `rolloff` 1 fades linearly in decibels.
    pub min_distance: f32,
    pub max_distance: f32,
    pub rolloff: f32,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        let codec = CodecSettings::default();
        let gate = GateSettings::default();
        let spatial = SpatialSettings::default();
        Self {
            enabled: true,
            input: "default".into(),
            output: "default".into(),
            mode: gate.mode,
            threshold: gate.threshold,
            hold: Duration::from_millis(u64::from(gate.hold_ms)),
            noise_suppression: true,
            bitrate: codec.bitrate,
            frame: Duration::from_millis(u64::from(codec.frame_ms)),
            streams_per_peer: 8,
            mumble_link: true,
            cues: true,
            mix_loudest: VoiceConfig::default().mix_loudest,
            min_distance: spatial.min_distance,
            max_distance: spatial.max_distance,
            rolloff: spatial.rolloff,
        }
    }
}

impl VoiceSettings {
    pub fn to_config(&self) -> VoiceConfig {
        let defaults = VoiceConfig::default();
        VoiceConfig {
            input: MicSource::device(&self.input),
            output: SpeakerSink::device(&self.output),
            codec: CodecSettings {
                frame_ms: self.frame.as_millis() as u32,
                bitrate: self.bitrate,
                ..CodecSettings::default()
            },
            gate: GateSettings {
                mode: self.mode,
                threshold: self.threshold,
                hold_ms: self.hold.as_millis() as u32,
                ..GateSettings::default()
            },
            noise_suppression: self.noise_suppression,
            spatial: SpatialSettings {
                min_distance: self.min_distance,
                max_distance: self.max_distance,
                rolloff: self.rolloff,
            },
            mumble_link: self.mumble_link,
            streams_per_peer: self.streams_per_peer,
            cues: self.cues,
            mix_loudest: self.mix_loudest,
            ..defaults
        }
    }

    fn validate(&self) -> Result<()> {
        anyhow::ensure!((0.0..=1.0).contains(&self.threshold), "voice.threshold must be between 0 and 1");
        anyhow::ensure!(matches!(self.frame.as_millis(), 10 | 20), "voice.frame must be 10ms or 20ms");
        anyhow::ensure!((1..=64).contains(&self.mix_loudest), "voice.mix_loudest must be 1 to 64");
        anyhow::ensure!((6_000..=128_000).contains(&self.bitrate), "voice.bitrate must be 6000 to 128000");
        anyhow::ensure!((1..=8).contains(&self.streams_per_peer), "voice.streams_per_peer must be 1 to 8");
        anyhow::ensure!(
            self.min_distance >= 0.0 && self.max_distance > self.min_distance && self.rolloff > 0.0,
            "voice distances must satisfy 0 <= min_distance < max_distance, and rolloff > 0"
        );
        Ok(())
    }
}

/// How many different people one link lets in, unless the settings say otherwise: a leaked link
/// cannot fill the party with strangers.
pub const DEFAULT_LINK_USES: u32 = 16;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InviteSettings {
    /// How long a new invite link stays valid.
    #[serde(with = "humantime_serde")]
    pub expires: Duration,
    /// How many different people may use one link; 0 means no limit.
    pub max_uses: u32,
}

/// Limits of `partyline relay`. libp2p's defaults (2 minutes, 128 KiB per circuit) would cut a voice
/// call off; these are sized for a party talking through the relay for hours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayServerSettings {
    pub port: u16,
    #[serde(with = "humantime_serde")]
    pub max_circuit_duration: Duration,
    pub max_circuit_bytes: u64,
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub max_reservations: usize,
    /// Reservations one source address (an IP) may make at once; then one more each 30 s.
    pub reservations_per_ip: u32,
    /// Relayed connections one source address may open at once; then one more each 10 s.
    pub circuits_per_ip: u32,
    /// Only these peers may reserve a slot (the community's members behind NATs); empty: anyone.
    /// Anyone may still open a relayed connection to a peer that holds a slot.
    pub allow: Vec<PeerId>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            name: default_name(),
            relays: Vec::new(),
            port: 0,
            mdns: true,
            join_timeout: Duration::from_secs(15),
            invites: InviteSettings::default(),
            voice: VoiceSettings::default(),
            overlay: OverlaySettings::default(),
            relay_server: RelayServerSettings::default(),
            transfers: TransferSettings::default(),
            companion: CompanionSettings::default(),
        }
    }
}

impl Default for InviteSettings {
    fn default() -> Self {
        Self { expires: Duration::from_secs(24 * 3600), max_uses: DEFAULT_LINK_USES }
    }
}

impl Default for RelayServerSettings {
    fn default() -> Self {
        Self {
            port: 4001,
            // A party evening: 8 hours. Opus voice at ~40 kbit/s each way is ~36 MB an hour per
            // circuit, so 1 GiB covers the evening with room for chat and file offers.
            max_circuit_duration: Duration::from_secs(8 * 3600),
            max_circuit_bytes: 1 << 30,
            max_circuits: 256,
            max_circuits_per_peer: 16,
            max_reservations: 512,
            // A household behind one NAT address: a few players, each renewing once an hour.
            reservations_per_ip: 8,
            // One player joining a party of 16 behind NATs opens 15 circuits at once.
            circuits_per_ip: 32,
            allow: Vec::new(),
        }
    }
}

fn default_name() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let name: String = partyline_protocol::wire::normal_name(&user).chars().take(32).collect();
    if partyline_protocol::wire::valid_name(&name) { name } else { "player".to_owned() }
}

const HEADER: &str = "\
# Partyline settings. Edit and restart Partyline; command-line flags override these for one run.
# The overlay's settings panel rewrites this file (comments other than these are not kept).
# Durations are written like \"15s\", \"2h\" or \"1day\".
";

impl Settings {
    /// Reads the file, or writes the defaults there if it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let settings: Settings =
                    toml::from_str(&text).with_context(|| format!("bad settings file {}", path.display()))?;
                settings.validate().with_context(|| format!("bad settings file {}", path.display()))?;
                Ok(settings)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let settings = Settings::default();
                let text = format!("{HEADER}\n{}", toml::to_string_pretty(&settings)?);
                write_atomically(path, &text)
                    .with_context(|| format!("cannot write default settings to {}", path.display()))?;
                Ok(settings)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read settings file {}", path.display())),
        }
    }

    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(
            partyline_protocol::wire::valid_name(&self.name),
            "name {:?} must be 1-32 bytes of visible characters in NFKC form, without leading/trailing spaces",
            self.name
        );
        anyhow::ensure!(self.join_timeout >= Duration::from_secs(1), "join_timeout must be at least 1s");
        anyhow::ensure!(
            self.invites.expires >= Duration::from_secs(1),
            "invites.expires must be at least 1s"
        );
        self.voice.validate()?;
        anyhow::ensure!(
            self.transfers.upload_limit_mbps.is_finite() && self.transfers.upload_limit_mbps >= 0.0,
            "transfers.upload_limit_mbps must be 0 (no limit) or more"
        );
        self.overlay.validate()
    }

    /// Writes the settings back (the overlay's settings panel does this); atomic.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = format!("{HEADER}\n{}", toml::to_string_pretty(self)?);
        write_atomically(path, &text).with_context(|| format!("cannot save settings to {}", path.display()))
    }
}

/// A crash or a full disk never leaves a half-written file: write a temporary file beside it,
/// flush it, then rename it over the old one.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_writes_defaults_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/settings.toml");
        let created = Settings::load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Partyline settings"));
        assert!(text.contains("join_timeout = \"15s\""), "{text}");
        assert_eq!(Settings::load_or_create(&path).unwrap(), created);
    }

    #[test]
    fn bad_files_say_where_and_what() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, "name = \"bob\"\nport = \"many\"\n").unwrap();
        let err = format!("{:#}", Settings::load_or_create(&path).unwrap_err());
        assert!(err.contains("settings.toml") && err.contains("port"), "{err}");
        std::fs::write(&path, "nmae = \"bob\"\n").unwrap();
        let err = format!("{:#}", Settings::load_or_create(&path).unwrap_err());
        assert!(err.contains("nmae"), "{err}");
        std::fs::write(&path, "relays = [\"not an address\"]\n").unwrap();
        assert!(Settings::load_or_create(&path).is_err());
    }

    #[test]
    fn choices_read_the_same_from_the_file_and_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(
            &path,
            "[overlay]\nshow = \"headless\"\nanchor = \"bottom-left\"\n[voice]\nmode = \"vad\"\n",
        )
        .unwrap();
        let s = Settings::load_or_create(&path).unwrap();
        assert_eq!((s.overlay.show, s.overlay.anchor), (Show::Headless, Anchor::BottomLeft));
        assert_eq!(s.voice.mode, VoiceMode::VoiceActivation);
        assert_eq!("vad".parse::<VoiceMode>(), Ok(s.voice.mode), "the command line takes the same names");
        assert_eq!(Anchor::BottomLeft.to_string(), "bottom-left");
        assert_eq!(Anchor::Left.next(), Anchor::TopLeft);
        std::fs::write(&path, "[overlay]\nanchor = \"middle\"\n").unwrap();
        let err = format!("{:#}", Settings::load_or_create(&path).unwrap_err());
        assert!(err.contains("anchor") && err.contains("`middle`") && err.contains("`top-left`"), "{err}");
        let err = "loud".parse::<VoiceMode>().unwrap_err();
        assert!(
            err.contains("`loud`") && ["`voice`", "`ptt`", "`latch`"].iter().all(|m| err.contains(m)),
            "{err}"
        );
    }
}
