//! Nodes in this process: rosters converge, chat has one order for everyone, history and the
//! party itself survive restarts of members and of the host; a member's flood of plugin messages
//! for a plugin host that stopped reading costs plugin messages only.

use std::path::Path;
use std::time::Duration;

use partyline::{Node, NodeEvent, Path as ConnPath};
use partyline_protocol::{InviteTerms, JoinLink};
use tokio::sync::mpsc;
use tokio::time::timeout;

struct Peer {
    node: Node,
    events: mpsc::Receiver<NodeEvent>,
    seen: Vec<NodeEvent>,
}

impl Peer {
    async fn start(home: &Path, name: &str) -> Self {
        partyline_tests::init_logs();
        let config = partyline_tests::loopback_config(home, name);
        let (node, events) = Node::start(config).await.expect("node starts");
        Self { node, events, seen: Vec::new() }
    }

    async fn host(home: &Path, name: &str) -> (Self, JoinLink) {
        let peer = Self::start(home, name).await;
        peer.node.host(false).await.unwrap();
        let link = peer.node.invite(InviteTerms::default()).await.unwrap();
        (peer, link)
    }

    async fn join(home: &Path, name: &str, link: &JoinLink) -> Self {
        let mut peer = Self::start(home, name).await;
        peer.node.join(link.clone()).await.unwrap();
        peer.wait("joined", |e| matches!(e, NodeEvent::Joined { .. })).await;
        peer
    }

    /// Waits for an event matching `pred` (among those not yet seen).
    async fn wait(&mut self, what: &str, pred: impl Fn(&NodeEvent) -> bool) -> NodeEvent {
        let result = timeout(Duration::from_secs(15), async {
            loop {
                let event = self.events.recv().await.expect("node running");
                self.seen.push(event.clone());
                if pred(&event) {
                    return event;
                }
            }
        })
        .await;
        result.unwrap_or_else(|_| panic!("no {what} within 15 s; seen: {:#?}", self.seen))
    }

    /// Reads events until `n` live (not replayed) chat messages were seen.
    async fn wait_chat(&mut self, n: usize) {
        while self.chat(false).len() < n {
            self.wait("chat", |e| matches!(e, NodeEvent::Chat { .. })).await;
        }
    }

    /// (seq, from, text) of chat events seen, live or replayed from history.
    fn chat(&self, history: bool) -> Vec<(u64, String, String)> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                NodeEvent::Chat { seq, from, text, history: h, .. } if *h == history => {
                    Some((*seq, from.clone(), text.clone()))
                }
                _ => None,
            })
            .collect()
    }

    async fn stop(self) {
        self.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rosters_converge_chat_has_one_order_and_history_survives_restarts() {
    let homes: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut alice, link) = Peer::host(homes[0].path(), "alice").await;
    let mut bob = Peer::join(homes[1].path(), "bob", &link).await;
    let mut carol = Peer::join(homes[2].path(), "carol", &link).await;

    // Rosters converge, and every member reaches every other one: a full mesh.
    for peer in [&alice, &bob, &carol] {
        timeout(Duration::from_secs(10), async {
            loop {
                let members = peer.node.members().await.unwrap();
                let connected = members.iter().filter(|m| !m.me && m.path == ConnPath::Direct).count();
                if members.len() == 3 && connected == 2 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("three members, each connected to the other two");
    }

    // Everyone talks at once; everyone sees the same order.
    for i in 0..5 {
        let (a, b, c) = tokio::join!(
            alice.node.chat(format!("alice {i}")),
            bob.node.chat(format!("bob {i}")),
            carol.node.chat(format!("carol {i}")),
        );
        a.and(b).and(c).unwrap();
    }
    for peer in [&mut alice, &mut bob, &mut carol] {
        peer.wait_chat(15).await;
    }
    let order = alice.chat(false);
    assert_eq!(order.iter().map(|m| m.0).collect::<Vec<_>>(), (1..=15).collect::<Vec<_>>());
    assert_eq!(bob.chat(false), order, "bob's order differs");
    assert_eq!(carol.chat(false), order, "carol's order differs");
    for who in ["alice", "bob", "carol"] {
        let mine: Vec<&str> = order.iter().filter(|m| m.1 == who).map(|m| m.2.as_str()).collect();
        let expected: Vec<String> = (0..5).map(|i| format!("{who} {i}")).collect();
        assert_eq!(mine, expected, "{who}'s own messages keep their order");
    }

    // Carol restarts; meanwhile alice says something. Carol's stored history comes back, then
    // what she missed.
    carol.node.leave().await.unwrap();
    carol.stop().await;
    alice.wait("carol leaves", |e| matches!(e, NodeEvent::MemberLeft { name, .. } if name == "carol")).await;
    alice.node.chat("while you were away").await.unwrap();
    let mut carol = Peer::join(homes[2].path(), "carol", &link).await;
    carol.wait("the missed message", |e| matches!(e, NodeEvent::Chat { seq: 16, .. })).await;
    assert_eq!(carol.chat(true), order, "carol's stored history is shown again after a restart");
    assert_eq!(carol.chat(false), vec![(16, "alice".to_owned(), "while you were away".to_owned())]);

    // The host restarts: same party, same history; members notice, wait, and come back by themselves.
    alice.stop().await;
    bob.wait("host leaves", |e| matches!(e, NodeEvent::MemberLeft { name, .. } if name == "alice")).await;
    bob.wait("reconnecting", |e| matches!(e, NodeEvent::Reconnecting { .. })).await;
    let mut alice = Peer::start(homes[0].path(), "alice").await;
    let party = alice.node.host(false).await.unwrap();
    assert_eq!(party, link.party_id(), "the host resumes the same party");
    alice.wait("history", |e| matches!(e, NodeEvent::Chat { seq: 16, .. })).await;
    assert_eq!(alice.chat(true).len(), 16);
    bob.wait("host back", |e| matches!(e, NodeEvent::MemberJoined { name, .. } if name == "alice")).await;
    alice.wait("bob back", |e| matches!(e, NodeEvent::MemberJoined { name, .. } if name == "bob")).await;
    bob.node.chat("welcome back").await.unwrap();
    let back = alice.wait("bob's chat", |e| matches!(e, NodeEvent::Chat { history: false, .. })).await;
    assert!(matches!(back, NodeEvent::Chat { seq: 17, ref text, .. } if text == "welcome back"), "{back:?}");

    for peer in [alice, bob, carol] {
        peer.stop().await;
    }
}

/// A plugin host that stops reading (a stuck plugin, a flood from a member) costs plugin messages,
/// never the node's own events: members' plugin messages have a queue of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_plugin_messages_for_a_stuck_plugin_host_leaves_the_nodes_events_alone() {
    let homes: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut alice, link) = Peer::host(homes[0].path(), "alice").await;
    let mut plugin_queue = alice.node.plugin_messages().expect("the plugin queue, not read from now on");
    let bob = Peer::join(homes[1].path(), "bob", &link).await;
    alice.wait("bob", |e| matches!(e, NodeEvent::MemberJoined { name, .. } if name == "bob")).await;

    // bob sends at his budget's pace (a burst of 100, then 50 a second) for 6 s: about 400 messages
    // that alice's node takes in, for a queue of 256 that nobody reads.
    let alice_id = alice.node.peer_id();
    let sent = 100 + 6 * 50;
    for i in 0..sent {
        bob.node.plugin_message(Some(alice_id), "file-transfer".into(), vec![7; 512]).await.unwrap();
        if i >= 100 {
            tokio::time::sleep(Duration::from_millis(21)).await;
        }
    }
    bob.node.chat("still heard").await.unwrap();
    alice
        .wait(
            "bob's chat after the flood",
            |e| matches!(e, NodeEvent::Chat { text, .. } if text == "still heard"),
        )
        .await;

    let stats = alice.node.stats().await.unwrap();
    println!(
        "plugin flood: {sent} sent, {} over budget, {} lost at the full plugin queue, {} node events lost",
        stats.dropped_rate_limited, stats.plugin_messages_lost, stats.events_lost
    );
    assert!(
        stats.plugin_messages_lost > 0,
        "the plugin queue filled up and counted what it dropped: {stats:?}"
    );
    assert_eq!(stats.events_lost, 0, "the node's own events were not crowded out");
    let mut queued = 0;
    while let Ok(message) = plugin_queue.try_recv() {
        assert!(matches!(message, NodeEvent::PluginMessage { peer, .. } if peer == bob.node.peer_id()));
        queued += 1;
    }
    assert_eq!(queued, 256, "the plugin queue is bounded");
    let unsent = bob.node.stats().await.unwrap().dropped_outbound;
    let accounted = queued + stats.plugin_messages_lost + stats.dropped_rate_limited + unsent;
    assert_eq!(accounted, sent, "every message is accounted for");
    bob.stop().await;
    alice.stop().await;
}
