use super::*;
use crate::overlay::tests::member as info;

#[test]
fn the_plugin_drawer_shows_the_chosen_panel_else_the_first() {
    let panel = |title: &str| PluginPanel { name: title.into(), title: title.into(), elements: vec![] };
    let mut panels = Panels::default();
    assert_eq!(panels.shown(), None);
    panels.panels.insert("game-store".into(), panel("Games"));
    panels.panels.insert("file-transfer".into(), panel("Files"));
    assert_eq!(panels.shown().map(String::as_str), Some("file-transfer"));
    panels.shown = Some("game-store".into());
    assert_eq!(panels.shown().map(String::as_str), Some("game-store"));
    // A chosen plugin that no longer shows anything falls back to the first.
    panels.shown = Some("gone".into());
    assert_eq!(panels.shown().map(String::as_str), Some("file-transfer"));
}

#[test]
fn toasts_are_bounded_and_expire() {
    let mut t = Toasts::default();
    for i in 0..10 {
        t.push(Duration::from_secs(i), ToastKind::Info, format!("t{i}"));
    }
    assert_eq!(t.items.len(), TOASTS);
    assert_eq!(t.items[0].text, "t6");
    // t6..t9 expire at 11..14 s.
    assert_eq!(t.expire(Duration::from_secs(12)), Some(Duration::from_secs(13)));
    assert_eq!(t.items.len(), 2);
    assert_eq!(t.expire(Duration::from_secs(100)), None);
}

/// The view, owned, for folding events into.
#[derive(Default)]
struct Fold {
    party: Party,
    chat: Chat,
    toasts: Toasts,
    positions: GamePositions,
    panels: Panels,
}

impl Fold {
    fn absorb(&mut self, e: &NodeEvent) -> Touched {
        let view = View {
            party: &mut self.party,
            chat: &mut self.chat,
            toasts: &mut self.toasts,
            positions: &mut self.positions,
            panels: &mut self.panels,
        };
        absorb(e, Duration::ZERO, view)
    }
}

fn joined(members: &[&MemberInfo]) -> NodeEvent {
    let members = members.iter().map(|m| (*m).clone()).collect();
    NodeEvent::Joined { party: partyline_protocol::PartyId([1; 16]), members }
}

#[test]
fn chat_counts_unread_only_while_closed_and_not_mine_or_history() {
    let mut f = Fold::default();
    let (me, bob) = (info("me", true), info("bob", false));
    f.absorb(&joined(&[&me, &bob]));
    let line = |peer: PeerId, history: bool| NodeEvent::Chat {
        seq: 1,
        peer,
        from: "x".into(),
        text: "hi".into(),
        ts_ms: 0,
        history,
    };
    for e in [line(bob.peer, false), line(bob.peer, true), line(me.peer, false)] {
        f.absorb(&e);
    }
    assert_eq!(f.chat.unread, 1);
    assert!(f.chat.lines[2].mine);
    f.chat.set_open(true);
    assert_eq!(f.chat.unread, 0);
    f.absorb(&line(bob.peer, false));
    assert_eq!(f.chat.unread, 0);
    for _ in 0..CHAT_LINES + 5 {
        f.absorb(&line(bob.peer, false));
    }
    assert_eq!(f.chat.lines.len(), CHAT_LINES);
}

#[test]
fn events_touch_only_what_they_change() {
    let mut f = Fold::default();
    let (me, bob) = (info("me", true), info("bob", false));
    let joined = f.absorb(&joined(&[&me, &bob]));
    assert!(joined.party && joined.toasts && !joined.chat && !joined.positions);
    let speaking = NodeEvent::Speaking { peer: bob.peer, name: "bob".into(), on: true };
    assert_eq!(f.absorb(&speaking), Touched { party: true, ..Touched::default() });
    // The same again, statistics, addresses: nothing to redraw.
    assert_eq!(f.absorb(&speaking), Touched::default());
    let stats = NodeEvent::VoiceStats(crate::events::VoiceStats::default());
    assert_eq!(f.absorb(&stats), Touched::default());
    assert_eq!(f.absorb(&NodeEvent::Listening { addrs: Vec::new() }), Touched::default());
}

#[test]
fn game_positions_are_relative_to_where_i_stand_and_face() {
    let mut f = Fold::default();
    let (me, bob, carl) = (info("me", true), info("bob", false), info("carl", false));
    f.absorb(&joined(&[&me, &bob, &carl]));
    let pose = |x, z, yaw_deg: f32| Pose { x, y: 0.0, z, yaw: yaw_deg.to_radians() };
    let at = |peer: PeerId, pose| MemberPose { peer, name: String::new(), pose };
    // I stand at (10, 10) facing -z: bob 10 m ahead, carl 5 m to my right.
    let report = |me_yaw: f32| NodeEvent::Positions {
        me: Some(pose(10.0, 10.0, me_yaw)),
        members: vec![at(bob.peer, pose(10.0, 0.0, 0.0)), at(carl.peer, pose(15.0, 10.0, 0.0))],
    };
    assert_eq!(f.absorb(&report(0.0)), Touched { positions: true, ..Touched::default() });
    let near = |a: Option<Vec2>, b: Vec2| a.is_some_and(|a| a.distance(b) < 1e-4);
    assert!(near(f.positions.of(&bob.peer), Vec2::new(0.0, 10.0)), "{:?}", f.positions);
    assert!(near(f.positions.of(&carl.peer), Vec2::new(5.0, 0.0)), "{:?}", f.positions);
    // Turned 90 degrees left (facing -x): bob is on my right now, carl behind me.
    f.absorb(&report(90.0));
    assert!(near(f.positions.of(&bob.peer), Vec2::new(10.0, 0.0)), "{:?}", f.positions);
    assert!(near(f.positions.of(&carl.peer), Vec2::new(0.0, -5.0)), "{:?}", f.positions);
    assert_eq!(f.absorb(&report(90.0)), Touched::default());
    // Leaving forgets them.
    f.absorb(&NodeEvent::Left);
    assert_eq!(f.positions, GamePositions::default());
}
