//! The `partyline` command line: `host`, `join`, `relay`, and the headless session that prints
//! node events and reads chat and commands from stdin.

mod input;
mod output;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;
use partyline_protocol::{InviteTerms, JoinLink};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::config::Settings;
use crate::events::NodeEvent;
use crate::net::relay_server::{self, RelayConfig};
use crate::net::{Node, NodeConfig};
use crate::paths::Dirs;
use crate::store::Store;
use crate::voice::{MicSource, SpeakerSink, VoiceConfig, VoiceMode};
use input::Input;
use output::Printer;

/// Exit codes besides 0 (success), 1 (error) and 2 (bad usage).
const EXIT_JOIN_FAILED: u8 = 3;
const EXIT_KICKED: u8 = 4;

#[derive(Parser, Debug)]
#[command(name = "partyline", version, about = "Peer-to-peer party voice and chat for game communities")]
pub struct Cli {
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Keep settings, data and cache under this directory instead of the platform's.
    #[arg(long, global = true, value_name = "DIR", env = "PARTYLINE_HOME")]
    home: Option<PathBuf>,
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
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let printer = Printer::new(cli.json);
    match dispatch(cli, printer).await {
        Ok(code) => code,
        Err(e) => {
            printer.error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli, printer: Printer) -> Result<ExitCode> {
    let dirs = Dirs::resolve(cli.home.as_deref())?;
    dirs.create()?;
    let settings = Settings::load_or_create(&dirs.settings_file())?;
    match cli.command {
        None => host(dirs, settings, HostArgs::default(), printer).await,
        Some(Command::Host(args)) => host(dirs, settings, args, printer).await,
        Some(Command::Join(args)) => join(dirs, settings, args, printer).await,
        Some(Command::Relay(args)) => relay(dirs, settings, args, printer).await,
        Some(Command::Devices) => devices(printer),
    }
}

fn invite_terms(settings: &Settings) -> InviteTerms {
    InviteTerms { lifetime: settings.invites.expires, max_uses: NonZeroU32::new(settings.invites.max_uses) }
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
        let name = name.trim().to_owned();
        anyhow::ensure!(
            partyline_protocol::wire::valid_name(&name),
            "--name must be 1-32 bytes without control characters"
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
    config.voice = voice_config(config.voice.take(), args.voice)?;
    Ok(config)
}

async fn host(dirs: Dirs, settings: Settings, args: HostArgs, printer: Printer) -> Result<ExitCode> {
    let defaults = invite_terms(&settings);
    let terms = InviteTerms {
        lifetime: args.expires.unwrap_or(defaults.lifetime),
        max_uses: args.uses.map_or(defaults.max_uses, NonZeroU32::new),
    };
    let config = node_config(dirs, &settings, args.node)?;
    let (node, events) = Node::start(config).await?;
    node.host(args.new).await?;
    node.invite(terms).await?;
    Ok(session(node, events, terms, printer).await)
}

async fn join(dirs: Dirs, settings: Settings, args: JoinArgs, printer: Printer) -> Result<ExitCode> {
    let link: JoinLink = match args.link.parse() {
        Ok(link) => link,
        Err(e) => {
            printer.event(&NodeEvent::JoinFailed { message: format!("cannot use this link: {e}") });
            return Ok(ExitCode::from(EXIT_JOIN_FAILED));
        }
    };
    let mut config = node_config(dirs, &settings, args.node)?;
    if let Some(timeout) = args.timeout {
        config.join_timeout = timeout;
    }
    let (node, events) = Node::start(config).await?;
    if let Err(e) = node.join(link).await {
        printer.event(&NodeEvent::JoinFailed { message: format!("cannot join: {e:#}") });
        let _ = node.shutdown().await;
        return Ok(ExitCode::from(EXIT_JOIN_FAILED));
    }
    Ok(session(node, events, invite_terms(&settings), printer).await)
}

async fn relay(dirs: Dirs, settings: Settings, args: RelayArgs, printer: Printer) -> Result<ExitCode> {
    let mut limits = settings.relay_server.clone();
    limits.port = args.port.unwrap_or(limits.port);
    limits.max_circuit_duration = args.max_circuit_duration.unwrap_or(limits.max_circuit_duration);
    limits.max_circuit_bytes = args.max_circuit_bytes.unwrap_or(limits.max_circuit_bytes);
    limits.max_circuits = args.max_circuits.unwrap_or(limits.max_circuits);
    limits.max_circuits_per_peer = args.max_circuits_per_peer.unwrap_or(limits.max_circuits_per_peer);
    limits.max_reservations = args.max_reservations.unwrap_or(limits.max_reservations);
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

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Prints events and runs what is typed on stdin until the node leaves the party.
async fn session(
    node: Node,
    mut events: mpsc::Receiver<NodeEvent>,
    default_terms: InviteTerms,
    printer: Printer,
) -> ExitCode {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut signalled = false;
    let code = loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break ExitCode::FAILURE };
                printer.event(&event);
                if let Some(code) = exit_code(&event) {
                    break code;
                }
            }
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => run_input(&node, &line, default_terms, printer).await,
                // No more input (stdin closed, or not a terminal): keep the party going.
                Ok(None) | Err(_) => stdin_open = false,
            },
            // Ctrl-C or SIGTERM: leave properly, then stop when the `left` event comes.
            () = &mut signal, if !signalled => {
                signalled = true;
                if node.leave().await.is_err() {
                    break ExitCode::SUCCESS;
                }
            }
        }
    };
    // Let the rest of the events (say, the reason for leaving) out before stopping.
    let _ = node.shutdown().await;
    while let Ok(event) = events.try_recv() {
        printer.event(&event);
    }
    code
}

fn exit_code(event: &NodeEvent) -> Option<ExitCode> {
    match event {
        NodeEvent::JoinFailed { .. } => Some(ExitCode::from(EXIT_JOIN_FAILED)),
        NodeEvent::Kicked { .. } => Some(ExitCode::from(EXIT_KICKED)),
        NodeEvent::PartyEnded | NodeEvent::Left => Some(ExitCode::SUCCESS),
        _ => None,
    }
}

async fn run_input(node: &Node, line: &str, default_terms: InviteTerms, printer: Printer) {
    let result: Result<()> = async {
        match input::parse(line).map_err(anyhow::Error::msg)? {
            Input::Nothing => {}
            Input::Help => printer.help(input::HELP),
            Input::Chat(text) => node.chat(text).await?,
            Input::Members => printer.event(&NodeEvent::Members { members: node.members().await? }),
            Input::Invite { expires, uses } => {
                let terms = InviteTerms {
                    lifetime: expires.unwrap_or(default_terms.lifetime),
                    max_uses: uses.or(default_terms.max_uses),
                };
                node.invite(terms).await.context("cannot make an invite")?;
            }
            Input::Revoke(target) => drop(node.revoke(target).await?),
            Input::Kick { name, ban } => node.kick(&name, ban).await?,
            Input::Presence(presence) => node.set_presence(presence).await?,
            Input::Voice(control) => node.voice(control).await?,
            Input::Stats => {
                printer.event(&NodeEvent::Stats(node.stats().await?));
                if let Ok(voice) = node.voice_stats().await {
                    printer.event(&NodeEvent::VoiceStats(voice));
                }
            }
            Input::Leave => node.leave().await?,
            Input::End => node.end_party().await?,
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        printer.error(&format!("{e:#}"));
    }
}
