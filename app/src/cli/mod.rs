//! The `partyline` command line: `host`, `join`, `relay`, and the headless session that prints
//! node events and reads chat and commands from stdin.

mod output;
mod plugins;
mod remote;
mod store_feed;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use libp2p::{Multiaddr, PeerId};
use partyline_protocol::InviteTerms;

use crate::config::{Settings, Show};
use crate::ipc::{Answer, Request};
use crate::net::NodeConfig;
use crate::net::relay_server::{self, RelayConfig};
use crate::paths::Dirs;
use crate::session::{Begin, Start, invite_terms, shutdown_signal};
use crate::store::Store;
use crate::voice::{MicSource, SpeakerSink, VoiceConfig, VoiceMode};
use output::Printer;

#[derive(Parser, Debug)]
#[command(
    name = "partyline",
    version,
    about = "Peer-to-peer party voice and chat for game communities",
    after_help = "`partyline partyline://join/…` joins that party (or hands the link to Partyline if it runs)."
)]
pub struct Cli {
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Keep settings, data and cache under this directory instead of the platform's.
    #[arg(long, global = true, value_name = "DIR", env = "PARTYLINE_HOME")]
    home: Option<PathBuf>,
    /// Show the overlay (even when the settings say headless).
    #[arg(long, global = true, conflicts_with = "headless")]
    overlay: bool,
    /// No overlay: print events and read commands from stdin, even when a display exists.
    #[arg(long, global = true)]
    headless: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Host your party (the one from last time, unless --new) and print its invite link.
    Host(HostArgs),
    /// Join a party from its partyline://join/… link.
    Join(JoinArgs),
    /// Run a community relay and bootstrap node for peers behind NATs.
    Relay(RelayArgs),
    /// List audio input and output devices.
    Devices,
    /// Register Partyline as the handler of partyline:// links for this user (a .desktop file).
    InstallDesktop,
    /// Manage plugins: list, install, enable, disable, grant, revoke, remove.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Games shared in the party, on the running Partyline: list, share PATH, get GAME.
    #[command(subcommand)]
    Games(remote::GamesCommand),
    /// Serve a store feed (STORE-FEED.md) for the game folders in DIR, on 127.0.0.1.
    StoreFeed {
        dir: PathBuf,
        /// Port to listen on (0 picks one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The store's name in the feed.
        #[arg(long)]
        name: Option<String>,
    },
    /// Offer a file or folder to a member, on the running Partyline; waits until they have it.
    Send {
        path: PathBuf,
        /// The member's name.
        #[arg(long)]
        to: String,
    },
}

#[derive(Args, Debug, Default)]
struct NodeArgs {
    /// Your display name (default: from settings).
    #[arg(long)]
    name: Option<String>,
    /// A relay to reserve a slot on (repeatable), as printed by `partyline relay`.
    #[arg(long = "relay", value_name = "ADDR")]
    relays: Vec<Multiaddr>,
    /// Listen on this address instead of every interface (repeatable).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<Multiaddr>,
    /// UDP/TCP port to listen on (default: from settings; 0 picks one).
    #[arg(long)]
    port: Option<u16>,
    /// Advertise this address instead of the ones found (repeatable): a port forward, a proxy.
    #[arg(long, value_name = "ADDR")]
    announce: Vec<Multiaddr>,
    /// Do not look for peers on the local network with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// Upload at most this many megabytes per second to members (default: from settings).
    #[arg(long, value_name = "MB/S")]
    upload_limit: Option<f64>,
    /// Transfers only over the party connection, never a direct channel of their own.
    #[arg(long)]
    no_direct_transfers: bool,
    /// Voice only over the party connection's streams, never as datagrams of its own.
    #[arg(long)]
    no_voice_datagrams: bool,
    /// UDP port for voice datagrams (default: any free one).
    #[arg(long, value_name = "PORT")]
    voice_port: Option<u16>,
    /// Tell members this port for voice datagrams instead of the one bound: a port forward, a
    /// proxy.
    #[arg(long, value_name = "PORT")]
    announce_voice_port: Option<u16>,
    #[command(flatten)]
    voice: VoiceArgs,
}

#[derive(Args, Debug, Default)]
struct VoiceArgs {
    /// Chat only: no voice, no audio devices.
    #[arg(long)]
    no_voice: bool,
    /// Microphone: "default", "none" (listen only), or part of a device's name.
    #[arg(long, value_name = "NAME")]
    mic_device: Option<String>,
    /// Speakers: "default", "none", or part of a device's name.
    #[arg(long, value_name = "NAME")]
    speaker_device: Option<String>,
    /// Play this WAV file as the microphone, in real time (bots, tests).
    #[arg(long, value_name = "WAV", conflicts_with = "mic_device")]
    mic_file: Option<PathBuf>,
    /// Record what you hear into this WAV file, in real time (bots, tests).
    #[arg(long, value_name = "WAV", conflicts_with = "speaker_device")]
    speaker_file: Option<PathBuf>,
    /// voice (voice activation), ptt (push-to-talk) or latch.
    #[arg(long, value_name = "MODE")]
    voice_mode: Option<VoiceMode>,
    /// Streams each member's voice is spread over (1-8).
    #[arg(long, value_name = "N")]
    voice_streams: Option<usize>,
    /// Opus bitrate, bits per second.
    #[arg(long, value_name = "BPS")]
    bitrate: Option<u32>,
    /// Opus frame length in ms: 10 or 20.
    #[arg(long, value_name = "MS")]
    frame_ms: Option<u32>,
    /// No noise suppression (the voice detector still runs).
    #[arg(long)]
    no_noise_suppression: bool,
}

#[derive(Args, Debug, Default)]
struct HostArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Start a new party instead of resuming yours.
    #[arg(long)]
    new: bool,
    /// How long the printed link stays valid, e.g. 30m, 2h, 1day (default: from settings).
    #[arg(long, value_parser = humantime::parse_duration)]
    expires: Option<Duration>,
    /// How many people may use the printed link (default: from settings; 0 = any number).
    #[arg(long)]
    uses: Option<u32>,
}

#[derive(Args, Debug)]
struct JoinArgs {
    /// The party's link.
    link: String,
    #[command(flatten)]
    node: NodeArgs,
    /// Give up joining after this long, e.g. 10s (default: from settings).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

#[derive(Args, Debug)]
struct RelayArgs {
    /// Listen on this address (repeatable; default: every interface on --port).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<Multiaddr>,
    /// A public address to announce, e.g. behind a port forward (repeatable).
    #[arg(long, value_name = "ADDR")]
    external: Vec<Multiaddr>,
    #[arg(long)]
    port: Option<u16>,
    /// Longest a relayed connection may last, e.g. 8h.
    #[arg(long, value_parser = humantime::parse_duration)]
    max_circuit_duration: Option<Duration>,
    /// Most bytes a relayed connection may carry.
    #[arg(long)]
    max_circuit_bytes: Option<u64>,
    #[arg(long)]
    max_circuits: Option<usize>,
    #[arg(long)]
    max_circuits_per_peer: Option<usize>,
    #[arg(long)]
    max_reservations: Option<usize>,
    /// Reservations one IP address may make at once (then one more each 30 s).
    #[arg(long, value_name = "N")]
    reservations_per_ip: Option<u32>,
    /// Relayed connections one IP address may open at once (then one more each 10 s).
    #[arg(long, value_name = "N")]
    circuits_per_ip: Option<u32>,
    /// Only this peer may reserve a slot (repeatable, adds to `relay_server.allow`; none: anyone).
    #[arg(long, value_name = "PEER")]
    allow: Vec<PeerId>,
}

/// A bare `partyline://` link (how desktops and browsers start a link handler) means `join LINK`.
pub fn with_join_for_links(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const COMMANDS: [&str; 6] = ["host", "join", "relay", "devices", "install-desktop", "plugins"];
    let is_link = |a: &std::ffi::OsString| a.to_str().is_some_and(|a| a.starts_with("partyline://"));
    let has_command = args.iter().skip(1).any(|a| a.to_str().is_some_and(|a| COMMANDS.contains(&a)));
    let mut out = args;
    if let Some(i) = out.iter().position(is_link).filter(|_| !has_command) {
        out.insert(i, "join".into());
    }
    out
}

/// What `main` does after reading the command line: stop with an exit code, or start a node
/// (drawn by the overlay or headless).
pub enum Plan {
    Exit(ExitCode),
    Start(Box<Start>),
}

/// Reads settings, carries out the commands that need no node (relay, devices, desktop
/// registration) and hands links to an already running Partyline.
pub async fn plan(cli: Cli) -> Plan {
    let printer = Printer::new(cli.json);
    match prepare(cli, printer).await {
        Ok(plan) => plan,
        Err(e) => {
            printer.error(&format!("{e:#}"));
            Plan::Exit(ExitCode::FAILURE)
        }
    }
}

/// Runs the command line headless; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match plan(cli).await {
        Plan::Exit(code) => code,
        Plan::Start(start) => start.run_headless().await,
    }
}

async fn prepare(cli: Cli, printer: Printer) -> Result<Plan> {
    let dirs = Dirs::resolve(cli.home.as_deref())?;
    dirs.create()?;
    let settings = Settings::load_or_create(&dirs.settings_file())?;
    let (begin, node_args, join_timeout) = match cli.command {
        None => host_begin(&settings, HostArgs::default()),
        Some(Command::Host(args)) => host_begin(&settings, args),
        Some(Command::Join(args)) => (Begin::Join { link: args.link }, args.node, args.timeout),
        Some(Command::Relay(args)) => return relay(dirs, settings, args, printer).await.map(Plan::Exit),
        Some(Command::Devices) => return devices(printer).map(Plan::Exit),
        Some(Command::Plugins(command)) => return plugins::run(&dirs, command, printer).map(Plan::Exit),
        Some(Command::Games(command)) => return remote::games(&dirs, command, printer).await.map(Plan::Exit),
        Some(Command::StoreFeed { dir, port, name }) => {
            return store_feed::run(&dir, port, name.as_deref(), printer).await.map(Plan::Exit);
        }
        Some(Command::Send { path, to }) => {
            return remote::send(&dirs, &path, &to, printer).await.map(Plan::Exit);
        }
        Some(Command::InstallDesktop) => {
            let file = crate::desktop::install()?;
            printer.help(&format!("partyline:// links now open Partyline ({})", file.display()));
            return Ok(Plan::Exit(ExitCode::SUCCESS));
        }
    };
    // One Partyline per home: a running one takes the link, or says it is there.
    let request = match &begin {
        Begin::Join { link } => Request::Open { link: link.clone() },
        Begin::Host { .. } => Request::Line { line: String::new() },
    };
    match (crate::ipc::hand_off(&dirs.socket(), &request).await?, &begin) {
        (None, _) => {}
        (Some(Answer::Ok), Begin::Join { .. }) => {
            printer.help("handed the link to the Partyline already running");
            return Ok(Plan::Exit(ExitCode::SUCCESS));
        }
        (Some(Answer::Error(e)), Begin::Join { .. }) => {
            anyhow::bail!("the running Partyline cannot join: {e}")
        }
        (Some(_), Begin::Host { .. }) => anyhow::bail!("Partyline is already running"),
    }
    let mut config = node_config(dirs.clone(), &settings, node_args)?;
    if let Some(timeout) = join_timeout {
        config.join_timeout = timeout;
    }
    anyhow::ensure!(
        !cli.overlay || cfg!(feature = "overlay"),
        "this Partyline was built without the overlay (cargo feature `overlay`); run it headless"
    );
    // The command line's word for this run, else the settings'.
    let show = match (cli.overlay, cli.headless) {
        (true, _) => Show::Overlay,
        (_, true) => Show::Headless,
        _ => settings.overlay.show,
    };
    let overlay = cfg!(feature = "overlay") && show.overlay();
    let start = Start::new(dirs, settings, std::sync::Arc::new(printer), config, begin, overlay);
    Ok(Plan::Start(Box::new(start)))
}

/// Hosting: the first link's terms from the command line, else from the settings.
fn host_begin(settings: &Settings, args: HostArgs) -> (Begin, NodeArgs, Option<Duration>) {
    let terms = invite_terms(settings);
    let terms = InviteTerms {
        lifetime: args.expires.unwrap_or(terms.lifetime),
        max_uses: args.uses.map_or(terms.max_uses, NonZeroU32::new),
    };
    (Begin::Host { fresh: args.new, terms }, args.node, None)
}

fn voice_config(base: Option<VoiceConfig>, args: VoiceArgs) -> Result<Option<VoiceConfig>> {
    let Some(mut voice) = base.filter(|_| !args.no_voice) else { return Ok(None) };
    if let Some(name) = args.mic_device {
        voice.input = MicSource::device(&name);
    }
    if let Some(path) = args.mic_file {
        anyhow::ensure!(path.is_file(), "--mic-file {}: no such file", path.display());
        voice.input = MicSource::File(path);
    }
    if let Some(name) = args.speaker_device {
        voice.output = SpeakerSink::device(&name);
    }
    if let Some(path) = args.speaker_file {
        voice.output = SpeakerSink::File(path);
    }
    if let Some(mode) = args.voice_mode {
        voice.gate.mode = mode;
    }
    if let Some(n) = args.voice_streams {
        anyhow::ensure!((1..=8).contains(&n), "--voice-streams must be 1 to 8");
        voice.streams_per_peer = n;
    }
    if let Some(bitrate) = args.bitrate {
        anyhow::ensure!((6_000..=128_000).contains(&bitrate), "--bitrate must be 6000 to 128000");
        voice.codec.bitrate = bitrate;
    }
    if let Some(ms) = args.frame_ms {
        anyhow::ensure!(matches!(ms, 10 | 20), "--frame-ms must be 10 or 20");
        voice.codec.frame_ms = ms;
    }
    voice.noise_suppression &= !args.no_noise_suppression;
    Ok(Some(voice))
}

fn node_config(dirs: Dirs, settings: &Settings, args: NodeArgs) -> Result<NodeConfig> {
    let mut config = NodeConfig::new(dirs, settings);
    if let Some(name) = args.name {
        let name = partyline_protocol::wire::normal_name(&name);
        anyhow::ensure!(
            partyline_protocol::wire::valid_name(&name),
            "--name must be 1-32 bytes of visible characters"
        );
        config.name = name;
    }
    config.relays.extend(args.relays);
    config.listen = args.listen;
    config.announce = args.announce;
    if let Some(port) = args.port {
        config.port = port;
    }
    config.mdns &= !args.no_mdns;
    config.direct_transfers &= !args.no_direct_transfers;
    config.voice_datagrams &= !args.no_voice_datagrams;
    config.voice_port = args.voice_port.unwrap_or(config.voice_port);
    config.announce_voice_port = args.announce_voice_port;
    if let Some(limit) = args.upload_limit {
        anyhow::ensure!(limit.is_finite() && limit >= 0.0, "--upload-limit must be 0 (none) or more");
        config.upload_limit = (limit > 0.0).then_some((limit * 1e6) as u64);
    }
    config.voice = voice_config(config.voice.take(), args.voice)?;
    Ok(config)
}

async fn relay(dirs: Dirs, settings: Settings, args: RelayArgs, printer: Printer) -> Result<ExitCode> {
    let mut limits = settings.relay_server.clone();
    limits.port = args.port.unwrap_or(limits.port);
    limits.max_circuit_duration = args.max_circuit_duration.unwrap_or(limits.max_circuit_duration);
    limits.max_circuit_bytes = args.max_circuit_bytes.unwrap_or(limits.max_circuit_bytes);
    limits.max_circuits = args.max_circuits.unwrap_or(limits.max_circuits);
    limits.max_circuits_per_peer = args.max_circuits_per_peer.unwrap_or(limits.max_circuits_per_peer);
    limits.max_reservations = args.max_reservations.unwrap_or(limits.max_reservations);
    limits.reservations_per_ip = args.reservations_per_ip.unwrap_or(limits.reservations_per_ip);
    limits.circuits_per_ip = args.circuits_per_ip.unwrap_or(limits.circuits_per_ip);
    limits.allow.extend(args.allow);
    let key = Store::open(&dirs.database())?.relay_keypair()?;
    let config = RelayConfig { listen: args.listen, external: args.external, limits };
    tokio::select! {
        result = relay_server::run(key, config, |event| printer.relay(&event)) => result.map(|()| ExitCode::SUCCESS),
        () = shutdown_signal() => Ok(ExitCode::SUCCESS),
    }
}

fn devices(printer: Printer) -> Result<ExitCode> {
    let (inputs, outputs) = crate::voice::list_devices()?;
    printer.devices(&inputs, &outputs);
    Ok(ExitCode::SUCCESS)
}
