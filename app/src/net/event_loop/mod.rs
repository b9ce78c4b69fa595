//! The one task that owns the swarm and the party engine.
//!
//! Each turn handles one input, local work first: a command from the [`super::Node`] handle, a
//! message or status from the link tasks, a swarm event, or the timer. Then it carries out the
//! actions the engine queued.

mod commands;
mod swarm_events;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Swarm};
use partyline_protocol::wire::Message;
use tokio::sync::{mpsc, oneshot};

use super::Command;
use super::addrs::{Connections, OwnAddrs, Ports, TCP_PORT_KEY, UDP_PORT_KEY};
use super::links::{LinkEvent, Links};
use super::members::MemberSet;
use super::swarm::Behaviour;
use super::voice_bridge::VoiceBridge;
use crate::events::{MemberInfo, NodeEvent, Path};
use crate::party::{Action, Engine};
use crate::rate::PeerBuckets;
use crate::stats::Counters;
use crate::voice::VoiceOut;

/// What one member's plugins may send here together: what one plugin may send
/// (`plugins::host_api`: a burst of 100, then 50 a second). Beyond it, dropped and counted.
const PLUGIN_BURST: u32 = 100;
const PLUGIN_PER_SEC: f64 = 50.0;
const TICK: Duration = Duration::from_millis(250);
/// How long start-up waits for listeners and relay reservations.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for queued messages to go out.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
const RELAY_RETRY: Duration = Duration::from_secs(15);
/// A peer counts as gone when it has had no connection this long. Connections come and go when
/// both sides dial at once or a relayed connection is upgraded; a last message (say, "leaving")
/// may also still be on its way when the connection closes.
const GONE_AFTER: Duration = Duration::from_millis(750);
/// After flushing, how long a stopping node keeps running before it closes its connections, so
/// that its last messages are read on the other side (a QUIC connection closed too early takes
/// unread data with it), and then how long it waits for the closes to go out.
const LINGER: Duration = Duration::from_millis(300);
const CLOSE_WAIT: Duration = Duration::from_millis(500);
const CLOSE_FLUSH: Duration = Duration::from_millis(100);
/// How long a peer that is no longer linked (kicked, refused) keeps its connection, so it can read
/// why, before this node closes it.
const DISCONNECT_AFTER: Duration = Duration::from_secs(5);
/// How long a relayed connection that a direct one replaced stays open, so the party stream on it
/// finishes cleanly; the writer opens its next stream only after `MIGRATE_PAUSE`, once it is closed.
const RELAYED_CLOSE_DELAY: Duration = Duration::from_millis(750);
const _: () = assert!(RELAYED_CLOSE_DELAY.as_millis() < super::links::MIGRATE_PAUSE.as_millis());

pub(super) struct EventLoop {
    swarm: Swarm<Behaviour>,
    engine: Engine,
    links: Links,
    voice: Option<VoiceBridge>,
    /// The membership view, published for transfers, voice datagrams and plugins.
    members: MemberSet,
    commands: mpsc::Receiver<Command>,
    link_events: mpsc::Receiver<LinkEvent>,
    events: mpsc::Sender<NodeEvent>,
    /// Members' plugin messages: a queue apart from `events`.
    plugin_messages: Option<mpsc::Sender<NodeEvent>>,
    counters: Arc<Counters>,
    /// What each member's plugins may send here, together.
    plugin_budget: PeerBuckets,
    own: OwnAddrs,
    connections: Connections,
    /// Listeners that have not reported an address yet; start-up waits for them.
    pending_listeners: HashSet<ListenerId>,
    relays: Vec<(PeerId, Multiaddr)>,
    relay_listeners: HashMap<ListenerId, Multiaddr>,
    relay_retry_at: Option<Instant>,
    ready: Option<Vec<oneshot::Sender<()>>>,
    ready_deadline: Instant,
    /// What the front end was last told about our addresses.
    announced: Vec<Multiaddr>,
    /// Addresses to advertise instead of the ones found, if any.
    announce: Vec<Multiaddr>,
    /// Peers we unlinked whose writers are still sending what was queued.
    flushing: HashSet<PeerId>,
    /// Peers whose last connection closed, and when.
    lost: HashMap<PeerId, Instant>,
    /// Connections to close at the given time (relayed ones a direct connection replaced).
    close_at: HashMap<ConnectionId, Instant>,
    /// Peers no longer linked, to disconnect at the given time unless linked again.
    disconnect_at: HashMap<PeerId, Instant>,
    shutdown: Option<Shutdown>,
}

struct Shutdown {
    /// Give up waiting for writers to flush at this time.
    flush_deadline: Instant,
    /// Set once flushed: close connections at this time.
    close_at: Option<Instant>,
    /// Set once connections were closed: stop at this time.
    stop_at: Option<Instant>,
    reply: oneshot::Sender<()>,
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        engine: Engine,
        links: Links,
        voice: Option<VoiceBridge>,
        commands: mpsc::Receiver<Command>,
        link_events: mpsc::Receiver<LinkEvent>,
        events: mpsc::Sender<NodeEvent>,
        counters: Arc<Counters>,
        pending_listeners: HashSet<ListenerId>,
        relays: Vec<(PeerId, Multiaddr)>,
    ) -> Self {
        let mut this = Self {
            swarm,
            engine,
            links,
            voice,
            members: MemberSet::new().0,
            commands,
            link_events,
            events,
            plugin_messages: None,
            counters,
            own: OwnAddrs::default(),
            connections: Connections::default(),
            pending_listeners,
            relays,
            relay_listeners: HashMap::new(),
            relay_retry_at: None,
            ready: Some(Vec::new()),
            ready_deadline: Instant::now() + READY_TIMEOUT,
            announced: Vec::new(),
            announce: Vec::new(),
            flushing: HashSet::new(),
            lost: HashMap::new(),
            disconnect_at: HashMap::new(),
            close_at: HashMap::new(),
            shutdown: None,
            plugin_budget: PeerBuckets::new(PLUGIN_BURST, PLUGIN_PER_SEC),
        };
        this.connect_relays();
        this
    }

    /// Publishes the membership view to `members` as it changes.
    pub(super) fn publishing_members(mut self, members: MemberSet) -> Self {
        self.members = members;
        self
    }

    pub(super) fn delivering_plugin_messages(mut self, to: mpsc::Sender<NodeEvent>) -> Self {
        self.plugin_messages = Some(to);
        self
    }

    pub(super) fn announcing(mut self, addrs: Vec<Multiaddr>) -> Self {
        self.announce = addrs;
        self
    }

    /// Reserves a slot on each relay (listening on its circuit address dials it), and adds it as
    /// a Kademlia bootstrap node.
    fn connect_relays(&mut self) {
        for (peer, addr) in self.relays.clone() {
            if self.relay_listeners.values().any(|a| *a == addr) {
                continue;
            }
            let mut plain = addr.clone();
            plain.pop();
            self.swarm.behaviour_mut().kad.add_address(&peer, plain);
            match self.swarm.listen_on(addr.clone().with(Protocol::P2pCircuit)) {
                Ok(id) => {
                    self.relay_listeners.insert(id, addr);
                    self.pending_listeners.insert(id);
                }
                Err(e) => self.emit(NodeEvent::Error { message: format!("cannot use relay {addr}: {e}") }),
            }
        }
    }

    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = tick.tick() => self.on_tick(),
                command = self.commands.recv(), if self.shutdown.is_none() => match command {
                    Some(command) => self.on_command(command),
                    // Every handle is gone: nobody can use this node any more.
                    None => self.begin_shutdown(None),
                },
                Some(event) = self.link_events.recv() => self.on_link_event(event),
                Some(out) = voice_out(&mut self.voice) => {
                    if let Some(voice) = &mut self.voice {
                        voice.on_out(out, &mut self.links);
                    }
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
            self.apply_actions();
            if self.finish_shutdown() {
                return;
            }
        }
    }

    fn emit(&mut self, event: NodeEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            tracing::warn!(?event, "front end is not keeping up; dropped an event");
            Counters::bump(&self.counters.events_lost);
        }
    }

    fn deliver_plugin_message(&mut self, message: NodeEvent) {
        let Some(to) = &self.plugin_messages else { return self.emit(message) };
        if to.try_send(message).is_err() {
            Counters::bump(&self.counters.plugin_messages_lost);
        }
    }

    fn apply_actions(&mut self) {
        let actions: Vec<Action> = self.engine.take_actions().collect();
        for action in actions {
            match action {
                Action::Send { to, msg } => self.links.send(to, msg),
                Action::Addresses { peer, addrs } => {
                    for addr in addrs {
                        self.swarm.add_peer_address(peer, addr);
                    }
                }
                Action::Link(peer) => {
                    self.flushing.remove(&peer);
                    self.links.link(peer);
                }
                Action::Unlink(peer) => {
                    if self.links.is_linked(&peer) {
                        self.flushing.insert(peer);
                    }
                    self.links.unlink(peer);
                }
                Action::Rejoined(peer) => {
                    for id in self.connections.older(&peer) {
                        tracing::debug!(%peer, ?id, "closing an older connection of a member that came back");
                        self.swarm.close_connection(id);
                    }
                    self.links.migrate(peer);
                }
                Action::Emit(event) => {
                    if event.touches_membership() {
                        self.publish_members();
                    }
                    self.emit(event);
                }
            }
        }
    }

    /// The party engine's members, with the way to each as our connections have it now.
    pub(super) fn members_now(&self) -> anyhow::Result<Vec<MemberInfo>> {
        let mut members = self.engine.members()?;
        for m in members.iter_mut().filter(|m| !m.me) {
            m.path = self.connections.path(&m.peer);
        }
        Ok(members)
    }

    /// Publishes the membership view, and has voice follow it.
    fn publish_members(&mut self) {
        self.members.publish(self.members_now().ok());
        if let Some(voice) = &mut self.voice {
            voice.follow(&self.members.now(), &mut self.links);
        }
    }

    /// The way to `peer`, and where it may be reached directly, changed.
    fn connections_changed(&mut self, peer: PeerId) {
        self.members.connected(peer, self.connections.direct_ips(&peer));
        self.publish_members();
    }

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        if self.engine.party().is_some() {
            let _ = self.engine.leave();
        }
        self.links.unlink_all();
        let reply = reply.unwrap_or_else(|| oneshot::channel().0);
        self.shutdown = Some(Shutdown {
            flush_deadline: Instant::now() + FLUSH_TIMEOUT,
            close_at: None,
            stop_at: None,
            reply,
        });
    }

    /// True once shutting down, every writer has flushed (or the time is up), the other side had
    /// time to read it, and connections were closed.
    fn finish_shutdown(&mut self) -> bool {
        let now = Instant::now();
        let Some(shutdown) = &mut self.shutdown else { return false };
        match (shutdown.close_at, shutdown.stop_at) {
            (None, _) if self.flushing.is_empty() || now >= shutdown.flush_deadline => {
                shutdown.close_at = Some(now + LINGER);
            }
            (Some(at), None) if now >= at => {
                shutdown.stop_at = Some(now + CLOSE_WAIT);
                // Blocking closes each connection and keeps behaviours from dialing again.
                let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                for peer in peers {
                    self.swarm.behaviour_mut().blocked.block_peer(peer);
                }
            }
            // Every connection has closed: the QUIC close packets still have to leave this
            // process, or peers keep a dead connection (and streams opened on it) for seconds.
            (_, Some(at)) if self.swarm.connected_peers().next().is_none() && at > now + CLOSE_FLUSH => {
                shutdown.stop_at = Some(now + CLOSE_FLUSH);
            }
            (_, Some(at)) if now >= at => {
                if let Some(shutdown) = self.shutdown.take() {
                    let _ = shutdown.reply.send(());
                }
                return true;
            }
            _ => {}
        }
        false
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        let now = Instant::now();
        match event {
            LinkEvent::Message { peer, msg: Message::VoiceReport { loss_permille, .. } } => {
                // Voice quality is the voice thread's business, not the party's.
                let taken = self.voice.as_mut().is_some_and(|v| v.on_report(peer, loss_permille));
                if !taken {
                    Counters::bump(&self.counters.dropped_unauthorized);
                }
            }
            LinkEvent::Message { peer, msg: Message::VoiceEndpoint { port } } => {
                let taken = self.voice.as_mut().is_some_and(|v| v.on_endpoint(peer, port, &mut self.links));
                if !taken {
                    Counters::bump(&self.counters.dropped_unauthorized);
                }
            }
            // Plugins' bytes go to the plugin host, from members only, within each one's budget.
            LinkEvent::Message { peer, msg: Message::Plugin { plugin, data } } => {
                if !self.is_member(peer) {
                    Counters::bump(&self.counters.dropped_unauthorized);
                } else if !self.plugin_budget.take(peer, Instant::now()) {
                    Counters::bump(&self.counters.dropped_rate_limited);
                } else {
                    self.deliver_plugin_message(NodeEvent::PluginMessage { peer, plugin, data });
                }
            }
            LinkEvent::Message { peer, msg } => self.engine.on_message(peer, msg, now),
            LinkEvent::OpenFailed { peer, error } => self.engine.on_link_failed(peer, &error, now),
            LinkEvent::Flushed { peer } => {
                self.flushing.remove(&peer);
                self.disconnect_at.insert(peer, now + DISCONNECT_AFTER);
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let gone: Vec<PeerId> = self
            .lost
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= GONE_AFTER)
            .map(|(p, _)| *p)
            .collect();
        for peer in gone {
            self.lost.remove(&peer);
            self.engine.on_disconnected(peer, now);
        }
        let due: Vec<PeerId> =
            self.disconnect_at.iter().filter(|(_, at)| now >= **at).map(|(p, _)| *p).collect();
        for peer in due {
            self.disconnect_at.remove(&peer);
            if !self.links.is_linked(&peer) && !self.engine.is_member(&peer) {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
        self.engine.tick(now);
        let members = self.engine.members().unwrap_or_default().into_iter().map(|m| m.peer);
        let links = &self.links;
        self.swarm.behaviour_mut().strangers.sweep(now, members, |p| links.is_linked(p));
        if self.ready.is_some() && (self.pending_listeners.is_empty() || now >= self.ready_deadline) {
            self.become_ready();
        }
        if self.relay_retry_at.is_some_and(|at| now >= at) {
            self.relay_retry_at = None;
            self.connect_relays();
        }
    }

    fn become_ready(&mut self) {
        if let Some(waiters) = self.ready.take() {
            let ports = Ports::of(self.own.listen());
            self.engine.remember(UDP_PORT_KEY, ports.udp);
            self.engine.remember(TCP_PORT_KEY, ports.tcp);
            self.addrs_changed();
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
    }

    fn addrs_changed(&mut self) {
        if self.ready.is_some() {
            return;
        }
        let advertised = if self.announce.is_empty() { self.own.advertised() } else { self.announce.clone() };
        self.engine.set_addrs(advertised);
        let all = self.own.all();
        if all != self.announced {
            self.announced = all.clone();
            self.emit(NodeEvent::Listening { addrs: all });
        }
    }

    fn path_changed(&mut self, peer: PeerId, before: Path) {
        let after = self.connections.path(&peer);
        if after == before || after == Path::Offline {
            return;
        }
        if let Some(name) = self.engine.member_name(&peer) {
            self.emit(NodeEvent::Connection { peer, name, path: after });
        }
    }
}

/// The voice thread's next output, or never without voice.
async fn voice_out(voice: &mut Option<VoiceBridge>) -> Option<VoiceOut> {
    match voice {
        Some(v) => v.voice_mut().out.recv().await,
        None => std::future::pending().await,
    }
}
