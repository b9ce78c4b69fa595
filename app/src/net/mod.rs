//! The node: one event-loop task owns the libp2p swarm and the party engine; everything else talks
//! to it through a cloneable [`Node`] handle (bounded command channel, one reply per command) and
//! listens to its [`NodeEvent`]s (one bounded channel).

mod addrs;
mod event_loop;
mod links;
mod members;
mod strangers;
mod voice_bridge;
mod voice_dgram;
mod voice_links;

pub use links::PARTY_PROTOCOL;
pub use voice_bridge::VoiceControl;
pub use voice_links::VOICE_PROTOCOL;
pub mod relay_server;
mod swarm;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use partyline_protocol::wire::Presence;
use partyline_protocol::{InviteId, InviteTerms, JoinLink, PartyId};
use tokio::sync::{mpsc, oneshot};

use crate::config::Settings;
use crate::events::{MemberInfo, NodeEvent, Stats, VoiceStats};
use crate::membership::MembershipView;
use crate::party::{Engine, RevokeTarget};
use crate::paths::Dirs;
use crate::stats::Counters;
use crate::store::Store;
use crate::transfer::{TransferConfig, Transfers};
use crate::voice::{Voice, VoiceConfig};

/// Commands waiting for the event loop.
const COMMAND_QUEUE: usize = 64;
/// Events waiting for the front end; beyond this they are dropped and counted.
const EVENT_QUEUE: usize = 1024;
/// Members' plugin messages waiting for the plugin host (a queue apart from the node's events).
const PLUGIN_MESSAGE_QUEUE: usize = 256;
/// Messages from all peers waiting for the engine.
const LINK_EVENT_QUEUE: usize = 512;

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub dirs: Dirs,
    pub name: String,
    pub relays: Vec<Multiaddr>,
    /// Where to listen; empty means every interface on `port`, QUIC and TCP, IPv4 and IPv6.
    pub listen: Vec<Multiaddr>,
    pub port: u16,
    pub mdns: bool,
    pub join_timeout: Duration,
    /// `None`: no voice at all (chat only).
    pub voice: Option<VoiceConfig>,
    /// Advertise these addresses (in links and to members) instead of the ones found: for a port
    /// forward, or a proxy in front of this node.
    pub announce: Vec<Multiaddr>,
    /// Bytes per second uploaded to members at most, all together (`None`: no limit).
    pub upload_limit: Option<u64>,
    /// Transfers between members who reach each other directly go over a sealed TCP channel of
    /// their own (faster than libp2p's QUIC); off: libp2p streams only.
    pub direct_transfers: bool,
    /// Voice to members who reach each other directly goes over datagrams (a QUIC endpoint of its
    /// own on `voice_port`, 0: any); off: libp2p streams only.
    pub voice_datagrams: bool,
    pub voice_port: u16,
    /// Tell members this port for voice datagrams instead of the one bound (a proxy or a port
    /// forward in front of it).
    pub announce_voice_port: Option<u16>,
}

impl NodeConfig {
    pub fn new(dirs: Dirs, settings: &Settings) -> Self {
        Self {
            dirs,
            name: settings.name.clone(),
            relays: settings.relays.clone(),
            listen: Vec::new(),
            port: settings.port,
            mdns: settings.mdns,
            join_timeout: settings.join_timeout,
            voice: Some(settings.voice.to_config()),
            announce: Vec::new(),
            upload_limit: settings.transfers.upload_limit(),
            direct_transfers: settings.transfers.direct,
            voice_datagrams: true,
            voice_port: 0,
            announce_voice_port: None,
        }
    }

    /// Where the voice datagram endpoint listens: the IP of the first QUIC address this node
    /// listens on (every interface by default; loopback in tests).
    fn voice_addr(&self) -> std::net::SocketAddr {
        let ip = self.listen_ip(|p| matches!(p, Protocol::Udp(_)));
        std::net::SocketAddr::new(ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()), self.voice_port)
    }

    /// Where direct transfer channels listen: the IP of the first TCP address this node listens
    /// on (every interface by default; loopback in tests).
    fn direct_ip(&self) -> Option<std::net::IpAddr> {
        self.listen_ip(|p| matches!(p, Protocol::Tcp(_)))
    }

    /// The IP of the first address this node listens on whose transport is `transport`.
    fn listen_ip(&self, transport: impl Fn(&Protocol<'_>) -> bool) -> Option<std::net::IpAddr> {
        self.listen_addrs().iter().find_map(|addr| {
            let mut parts = addr.iter();
            let ip = match parts.next()? {
                Protocol::Ip4(ip) => std::net::IpAddr::V4(ip),
                Protocol::Ip6(ip) => std::net::IpAddr::V6(ip),
                _ => return None,
            };
            transport(&parts.next()?).then_some(ip)
        })
    }

    fn listen_addrs(&self) -> Vec<Multiaddr> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        let port = self.port;
        [
            format!("/ip4/0.0.0.0/udp/{port}/quic-v1"),
            format!("/ip4/0.0.0.0/tcp/{port}"),
            format!("/ip6/::/udp/{port}/quic-v1"),
            format!("/ip6/::/tcp/{port}"),
        ]
        .iter()
        .map(|a| a.parse().expect("valid multiaddr"))
        .collect()
    }
}

/// The relay's peer id, from the `/p2p/<id>` its address must end with.
pub(crate) fn relay_peer(addr: &Multiaddr) -> Result<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok(peer),
        _ => bail!("relay address {addr} must end with /p2p/<relay peer id>, as `partyline relay` prints it"),
    }
}

pub(crate) enum Command {
    WaitReady(oneshot::Sender<()>),
    Host {
        fresh: bool,
        reply: oneshot::Sender<Result<PartyId>>,
    },
    Join {
        link: Box<JoinLink>,
        reply: oneshot::Sender<Result<()>>,
    },
    Chat {
        text: String,
        reply: oneshot::Sender<Result<()>>,
    },
    Invite {
        terms: InviteTerms,
        reply: oneshot::Sender<Result<JoinLink>>,
    },
    Revoke {
        target: RevokeTarget,
        reply: oneshot::Sender<Result<Vec<InviteId>>>,
    },
    Kick {
        name: String,
        ban: bool,
        reply: oneshot::Sender<Result<()>>,
    },
    Presence {
        presence: Presence,
        reply: oneshot::Sender<Result<()>>,
    },
    Members(oneshot::Sender<Result<Vec<MemberInfo>>>),
    Stats(oneshot::Sender<Stats>),
    Addrs(oneshot::Sender<Vec<Multiaddr>>),
    Voice {
        control: VoiceControl,
        reply: oneshot::Sender<Result<()>>,
    },
    VoiceStats(oneshot::Sender<Result<VoiceStats>>),
    /// A plugin's bytes for the same plugin on one member, or on all the others.
    Plugin {
        to: Option<PeerId>,
        plugin: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    Leave(oneshot::Sender<Result<()>>),
    End(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle to a running node. Cheap to clone; the node stops when it is shut down or when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Node {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    transfers: Transfers,
    /// Members' plugin messages ([`NodeEvent::PluginMessage`]), until taken.
    plugin_messages: Arc<std::sync::Mutex<Option<mpsc::Receiver<NodeEvent>>>>,
    membership: MembershipView,
}

impl Node {
    /// Opens the store, starts listening (and reserving relay slots), and returns once the node
    /// knows its addresses, with the stream of its events.
    pub async fn start(config: NodeConfig) -> Result<(Node, mpsc::Receiver<NodeEvent>)> {
        config.dirs.create()?;
        let store = Store::open(&config.dirs.database())?;
        let key = store.keypair()?;
        let remembered = {
            let port = |key: &str| store.meta(key).map(|p| p.and_then(|p| u16::try_from(p).ok()));
            addrs::Ports { udp: port(addrs::UDP_PORT_KEY)?, tcp: port(addrs::TCP_PORT_KEY)? }
        };
        let peer_id = key.public().to_peer_id();
        let counters = Arc::new(Counters::default());
        let engine = Engine::new(store, &key, config.name.clone(), counters.clone(), config.join_timeout)?;
        let relays =
            config.relays.iter().map(|r| Ok((relay_peer(r)?, r.clone()))).collect::<Result<Vec<_>>>()?;

        let identity = key.clone();
        let mut swarm = swarm::build(key, config.mdns)?;
        let mut listeners = std::collections::HashSet::new();
        for addr in config.listen_addrs() {
            // The port used last time first, so that links and reconnects keep working.
            let again = remembered.apply(&addr).and_then(|a| swarm.listen_on(a).ok());
            match again.map_or_else(|| swarm.listen_on(addr.clone()), Ok) {
                Ok(id) => drop(listeners.insert(id)),
                Err(e) => tracing::warn!(%addr, error = %e, "cannot listen"),
            }
        }
        if listeners.is_empty() {
            bail!("cannot listen on any address; is the port in use?");
        }

        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (plugin_tx, plugin_rx) = mpsc::channel(PLUGIN_MESSAGE_QUEUE);
        let (link_tx, link_rx) = mpsc::channel(LINK_EVENT_QUEUE);
        let swarm_control = swarm.behaviour().stream.new_control();
        let links = links::Links::new(swarm.behaviour().stream.new_control(), link_tx, counters.clone());
        let (members, members_rx) = members::MemberSet::new();
        let voice = match config.voice.clone() {
            Some(mut voice_config) => {
                voice_config.me = peer_id;
                voice_config.my_name = config.name.clone();
                let voice = Voice::start(voice_config, events_tx.clone())?;
                let (buckets, counters) = (voice_links::voice_budget(), Arc::default());
                let voice_links = voice_links::VoiceLinks::new(
                    swarm.behaviour().stream.new_control(),
                    voice.streams_per_peer,
                    voice.inbound_sender(),
                    buckets.clone(),
                    Arc::clone(&counters),
                );
                let datagrams = if config.voice_datagrams {
                    let started = voice_dgram::VoiceDatagrams::start(
                        config.voice_addr(),
                        config.announce_voice_port,
                        &identity,
                        members_rx.clone(),
                        voice.inbound_sender(),
                        buckets,
                        counters,
                    );
                    // Without it voice still goes over streams.
                    started.map_err(|e| tracing::warn!("voice datagrams are off: {e:#}")).ok()
                } else {
                    None
                };
                Some(voice_bridge::VoiceBridge::new(voice, voice_links, datagrams))
            }
            None => None,
        };
        let event_loop = event_loop::EventLoop::new(
            swarm,
            engine,
            links,
            voice,
            rx,
            link_rx,
            events_tx.clone(),
            counters,
            listeners,
            relays,
        );
        let membership = members_rx.clone();
        let transfers = Transfers::start(
            swarm_control,
            members_rx,
            events_tx,
            TransferConfig {
                dir: config.dirs.transfers(),
                upload_limit: config.upload_limit,
                direct: config.direct_transfers.then(|| config.direct_ip()).flatten(),
            },
        )?;
        let event_loop = event_loop
            .announcing(config.announce.clone())
            .publishing_members(members)
            .delivering_plugin_messages(plugin_tx);
        tokio::spawn(event_loop.run());

        let plugin_messages = Arc::new(std::sync::Mutex::new(Some(plugin_rx)));
        let node = Node { tx, peer_id, transfers, plugin_messages, membership };
        node.call(Command::WaitReady).await?;
        Ok((node, events_rx))
    }

    /// Members' plugin messages, in a queue of their own (so that a flood of them cannot crowd
    /// out the node's events): the first call takes it, later ones get `None`.
    pub fn plugin_messages(&self) -> Option<mpsc::Receiver<NodeEvent>> {
        self.plugin_messages.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Who is in the party, as the node publishes it.
    pub fn membership(&self) -> MembershipView {
        self.membership.clone()
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Sharing and downloading content with the party's members.
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }

    async fn call<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(command(reply)).await.map_err(|_| anyhow!("the node has stopped"))?;
        rx.await.map_err(|_| anyhow!("the node has stopped"))
    }

    /// Hosts this node's party (resumed from storage), or a new one when `fresh`.
    pub async fn host(&self, fresh: bool) -> Result<PartyId> {
        self.call(|reply| Command::Host { fresh, reply }).await?
    }

    /// Starts joining; the outcome arrives as [`NodeEvent::Joined`] or [`NodeEvent::JoinFailed`].
    pub async fn join(&self, link: JoinLink) -> Result<()> {
        self.call(|reply| Command::Join { link: Box::new(link), reply }).await?
    }

    pub async fn chat(&self, text: impl Into<String>) -> Result<()> {
        let text = text.into();
        self.call(|reply| Command::Chat { text, reply }).await?
    }

    pub async fn invite(&self, terms: InviteTerms) -> Result<JoinLink> {
        self.call(|reply| Command::Invite { terms, reply }).await?
    }

    pub async fn revoke(&self, target: RevokeTarget) -> Result<Vec<InviteId>> {
        self.call(|reply| Command::Revoke { target, reply }).await?
    }

    pub async fn kick(&self, name: &str, ban: bool) -> Result<()> {
        let name = name.to_owned();
        self.call(|reply| Command::Kick { name, ban, reply }).await?
    }

    pub async fn set_presence(&self, presence: Presence) -> Result<()> {
        self.call(|reply| Command::Presence { presence, reply }).await?
    }

    pub async fn members(&self) -> Result<Vec<MemberInfo>> {
        self.call(Command::Members).await?
    }

    pub async fn stats(&self) -> Result<Stats> {
        self.call(Command::Stats).await
    }

    /// Every address this node listens on or was confirmed at.
    pub async fn addrs(&self) -> Result<Vec<Multiaddr>> {
        self.call(Command::Addrs).await
    }

    /// Push-to-talk, voice mode, mute, deafen, a member's volume, our position.
    pub async fn voice(&self, control: VoiceControl) -> Result<()> {
        self.call(|reply| Command::Voice { control, reply }).await?
    }

    pub async fn voice_stats(&self) -> Result<VoiceStats> {
        self.call(Command::VoiceStats).await?
    }

    /// Sends a plugin's bytes to the same plugin on member `to`, or on every other member.
    pub async fn plugin_message(&self, to: Option<PeerId>, plugin: String, data: Vec<u8>) -> Result<()> {
        self.call(|reply| Command::Plugin { to, plugin, data, reply }).await?
    }

    pub async fn leave(&self) -> Result<()> {
        self.call(Command::Leave).await?
    }

    /// Ends the party this node owns; its links stop working.
    pub async fn end_party(&self) -> Result<()> {
        self.call(Command::End).await?
    }

    /// Sends what is queued for peers (up to two seconds), then stops the node.
    pub async fn shutdown(&self) -> Result<()> {
        self.call(Command::Shutdown).await.context("shutting down")
    }
}
