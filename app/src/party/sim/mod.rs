//! Party engines wired together in memory, with clocks the test moves: no sockets, no tasks.
//!
//! Each node has its own engine, identity and database (a file, so a node can restart). What an
//! engine queues is carried out as the network event loop would: a `Send` is encoded, delivered
//! and decoded on the other side, in order; a `Link` to a peer that is up connects both sides; one
//! to a peer that is down fails. Taking a node down (or moving the clocks) is the test's to do.

mod tests;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::identity::Keypair;
use partyline_protocol::wire::{self, Message, Rejection};
use partyline_protocol::{InviteTerms, JoinLink};

use super::{Action, Engine, WallClock};
use crate::events::NodeEvent;
use crate::stats::Counters;
use crate::store::Store;

/// Deliveries in one [`Sim::run`] past which the engines are taken to be talking in a loop.
const MOST_DELIVERIES: usize = 100_000;

pub(super) struct SimNode {
    pub(super) peer: PeerId,
    pub(super) name: String,
    key: Keypair,
    db: PathBuf,
    /// `None` while the node is down.
    engine: Option<Engine>,
    /// This node's wall clock, in ms since the epoch (nodes' clocks may disagree).
    wall: Arc<AtomicU64>,
    pub(super) events: Vec<NodeEvent>,
    /// What hosts answered this node's joins with.
    pub(super) rejections: Vec<Rejection>,
}

pub(super) struct Sim {
    pub(super) nodes: Vec<SimNode>,
    now: Instant,
    /// Messages on their way: (from, to, encoded message).
    wire: VecDeque<(PeerId, PeerId, Vec<u8>)>,
    /// Pairs of nodes with a connection between them (both orders).
    connected: HashSet<(PeerId, PeerId)>,
    /// Messages to a node are dropped while it is in here (its links look up, nothing arrives).
    pub(super) deaf: HashSet<PeerId>,
    _dir: tempfile::TempDir,
}

/// 2026-12-01T00:00:00Z, where every clock starts.
const EPOCH_MS: u64 = 1_796_083_200_000;

impl Sim {
    /// Nodes named `names`, all up, with clocks that agree.
    pub(super) fn new(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let key = Keypair::generate_ed25519();
                SimNode {
                    peer: key.public().to_peer_id(),
                    key,
                    name: (*name).to_owned(),
                    db: dir.path().join(format!("{i}.db")),
                    engine: None,
                    wall: Arc::new(AtomicU64::new(EPOCH_MS)),
                    events: Vec::new(),
                    rejections: Vec::new(),
                }
            })
            .collect();
        let mut sim = Self {
            nodes,
            now: Instant::now(),
            wire: VecDeque::new(),
            connected: HashSet::new(),
            deaf: HashSet::new(),
            _dir: dir,
        };
        for i in 0..sim.nodes.len() {
            sim.start(i);
        }
        sim
    }

    /// Starts node `i` (again) on its database.
    pub(super) fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let store = Store::open(&node.db).expect("database");
        let counters = Arc::new(Counters::default());
        let engine = Engine::new(store, &node.key, node.name.clone(), counters, Duration::from_secs(15))
            .expect("engine")
            .with_clock(WallClock::set_by(node.wall.clone()));
        node.engine = Some(engine);
    }

    /// Takes node `i` down: its engine is gone, its connections drop, and the others notice.
    pub(super) fn stop(&mut self, i: usize) {
        let peer = self.nodes[i].peer;
        self.nodes[i].engine = None;
        self.connected.retain(|(a, b)| *a != peer && *b != peer);
        self.wire.retain(|(from, to, _)| *from != peer && *to != peer);
        let now = self.now;
        for other in self.nodes.iter_mut().filter_map(|n| n.engine.as_mut()) {
            other.on_disconnected(peer, now);
        }
        self.run();
    }

    pub(super) fn engine(&mut self, i: usize) -> &mut Engine {
        self.nodes[i].engine.as_mut().expect("node is up")
    }

    fn index(&self, peer: PeerId) -> Option<usize> {
        self.nodes.iter().position(|n| n.peer == peer)
    }

    /// Node `i` hosts its party and mints a link with `terms`.
    pub(super) fn host(&mut self, i: usize, terms: InviteTerms) -> JoinLink {
        self.engine(i).host(false).expect("hosts");
        let link = self.engine(i).invite(terms).expect("invite");
        self.run();
        link
    }

    /// Node `i` joins with `link`; the exchange runs to its end.
    pub(super) fn join(&mut self, i: usize, link: &JoinLink) -> anyhow::Result<()> {
        let now = self.now;
        self.engine(i).join(link.clone(), now)?;
        self.run();
        Ok(())
    }

    /// Moves every node's clocks (monotonic and wall) on by `by`, ticks the engines, and runs.
    pub(super) fn advance(&mut self, by: Duration) {
        self.now += by;
        let ms = u64::try_from(by.as_millis()).expect("a test's duration");
        for node in &mut self.nodes {
            node.wall.fetch_add(ms, Ordering::Relaxed);
        }
        let now = self.now;
        for engine in self.nodes.iter_mut().filter_map(|n| n.engine.as_mut()) {
            engine.tick(now);
        }
        self.run();
    }

    /// Sets node `i`'s wall clock `by` ahead of (or, negative, behind) where it is.
    pub(super) fn skew(&mut self, i: usize, by_ms: i64) {
        let wall = &self.nodes[i].wall;
        wall.store(wall.load(Ordering::Relaxed).saturating_add_signed(by_ms), Ordering::Relaxed);
    }

    /// Carries out what the engines queued, and delivers what is on the wire, until all is quiet.
    pub(super) fn run(&mut self) {
        for _ in 0..MOST_DELIVERIES {
            self.take_actions();
            let Some((from, to, bytes)) = self.wire.pop_front() else { return };
            let msg = wire::decode(&bytes).expect("what an engine sends decodes");
            let Some(i) = self.index(to) else { continue };
            if let Message::Rejected(rejection) = &msg {
                self.nodes[i].rejections.push(rejection.clone());
            }
            let now = self.now;
            if let Some(engine) = self.nodes[i].engine.as_mut() {
                engine.on_message(from, msg, now);
            }
        }
        panic!("the engines are still talking after {MOST_DELIVERIES} deliveries");
    }

    fn take_actions(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            let me = self.nodes[i].peer;
            let Some(engine) = self.nodes[i].engine.as_mut() else { continue };
            let actions: Vec<Action> = engine.take_actions().collect();
            for action in actions {
                match action {
                    Action::Send { to, msg } => {
                        if !self.deaf.contains(&to) {
                            self.wire.push_back((me, to, wire::encode(&msg)));
                        }
                    }
                    Action::Link(peer) => self.link(i, peer, now),
                    Action::Unlink(peer) => {
                        self.connected.remove(&(me, peer));
                        self.connected.remove(&(peer, me));
                    }
                    Action::Emit(event) => self.nodes[i].events.push(event),
                    Action::Addresses { .. } | Action::Rejoined(_) => {}
                }
            }
        }
    }

    /// Node `i` keeps a link to `peer`: both sides hear of a new connection, or `i` of a failure.
    fn link(&mut self, i: usize, peer: PeerId, now: Instant) {
        let me = self.nodes[i].peer;
        let up = self.index(peer).is_some_and(|j| self.nodes[j].engine.is_some());
        if !up {
            if let Some(engine) = self.nodes[i].engine.as_mut() {
                engine.on_link_failed(peer, "cannot reach the peer", now);
            }
            return;
        }
        if !self.connected.insert((me, peer)) {
            return;
        }
        self.connected.insert((peer, me));
        if let Some(engine) = self.nodes[i].engine.as_mut() {
            engine.on_connected(peer, now);
        }
        if let Some(engine) = self.index(peer).and_then(|j| self.nodes[j].engine.as_mut()) {
            engine.on_connected(me, now);
        }
    }

    /// Names of the members node `i` sees, in roster order.
    pub(super) fn roster(&mut self, i: usize) -> Vec<String> {
        self.engine(i).members().expect("in a party").into_iter().map(|m| m.name).collect()
    }

    /// (seq, from, text) of the live and replayed chat node `i` was shown, in the order shown.
    pub(super) fn chat(&self, i: usize) -> Vec<(u64, String, String)> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::Chat { seq, from, text, .. } => Some((*seq, from.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }
}
