//! The overlay's logic in a headless Bevy app (`MinimalPlugins`, `app.update()`): events in
//! through the inbox, acts in as messages, inputs out through the outbox.

use std::sync::Mutex;
use std::sync::mpsc as std_mpsc;

use bevy::prelude::*;
use libp2p::PeerId;
use partyline_protocol::PartyId;
use partyline_protocol::voice::Pose;
use partyline_protocol::wire::Presence;
use tokio::sync::mpsc;

use super::actions::{Act, KeyRole, Rebinding};
use super::probe::Probe;
use super::theme::{Backdrop, Fonts};
use super::widgets::{self, RadarMoved, Slot};
use super::*;
use crate::events::{MemberInfo, MemberPose, NodeEvent, Path};
use crate::net::VoiceControl;
use crate::voice::VoiceMode;

struct Harness {
    app: App,
    events: std_mpsc::SyncSender<FrontMsg>,
    inputs: mpsc::Receiver<Input>,
}

impl Harness {
    fn new(mode: VoiceMode) -> Self {
        let (events, inbox) = std_mpsc::sync_channel(64);
        let (outbox, inputs) = mpsc::channel(64);
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .insert_resource(Inbox(Mutex::new(inbox)))
            .insert_resource(Outbox(outbox))
            .add_plugins(OverlayPlugin)
            .insert_resource(Ptt::new(mode))
            .insert_resource(Backdrop(0.8))
            .insert_resource(Fonts { bold: Handle::default() })
            .add_plugins((widgets::RadarPlugin, widgets::RosterPlugin));
        app.world_mut().spawn((Slot::Roster, Node::default()));
        app.world_mut().spawn((Slot::Drawer(Drawer::Radar), Node::default()));
        Self { app, events, inputs }
    }

    fn event(&mut self, event: NodeEvent) {
        self.events.send(FrontMsg::Event(event)).unwrap();
    }

    fn act(&mut self, act: Act) {
        self.app.world_mut().write_message(act);
    }

    fn update(&mut self) -> Vec<Input> {
        self.app.update();
        std::iter::from_fn(|| self.inputs.try_recv().ok()).collect()
    }

    fn lights(&mut self) -> Vec<(String, bool)> {
        let world = self.app.world_mut();
        let mut q = world.query::<&widgets::SpeakingLight>();
        let mut lights: Vec<_> = q.iter(world).map(|l| (l.name.clone(), l.on)).collect();
        lights.sort();
        lights
    }
}

pub(super) fn member(name: &str, me: bool) -> MemberInfo {
    MemberInfo {
        peer: PeerId::random(),
        name: name.into(),
        presence: Presence::Online,
        owner: me,
        me,
        path: Path::Direct,
    }
}

fn joined(members: &[MemberInfo]) -> NodeEvent {
    NodeEvent::Joined { party: PartyId([7; 16]), members: members.to_vec() }
}

#[test]
fn roster_and_speaking_lights_follow_the_events() {
    let mut h = Harness::new(VoiceMode::VoiceActivation);
    let (me, bob, cat) = (member("me", true), member("bob", false), member("cat", false));
    h.event(joined(&[bob.clone(), me.clone()]));
    h.update();
    assert_eq!(h.lights(), vec![("bob".into(), false), ("me".into(), false)]);
    h.event(NodeEvent::MemberJoined { peer: cat.peer, name: "cat".into() });
    h.event(NodeEvent::Speaking { peer: bob.peer, name: "bob".into(), on: true });
    h.update();
    assert_eq!(h.lights(), vec![("bob".into(), true), ("cat".into(), false), ("me".into(), false)]);
    let party = h.app.world().resource::<Party>();
    assert_eq!(party.members[0].name, "me", "me first");
    h.event(NodeEvent::Speaking { peer: bob.peer, name: "bob".into(), on: false });
    h.event(NodeEvent::MemberLeft {
        peer: cat.peer,
        name: "cat".into(),
        reason: partyline_protocol::wire::LeaveReason::Left,
    });
    h.update();
    assert_eq!(h.lights(), vec![("bob".into(), false), ("me".into(), false)]);
    let toasts: Vec<String> =
        h.app.world().resource::<Toasts>().items.iter().map(|t| t.text.clone()).collect();
    assert!(
        toasts.contains(&"cat joined".to_owned()) && toasts.contains(&"cat left".to_owned()),
        "{toasts:?}"
    );
    h.event(NodeEvent::Left);
    h.update();
    assert!(h.lights().is_empty());
}

#[test]
fn a_link_from_outside_is_asked_about_and_answered_from_the_roster() {
    let mut h = Harness::new(VoiceMode::VoiceActivation);
    h.event(joined(&[member("me", true)]));
    h.update();
    let asked = |h: &mut Harness| {
        let world = h.app.world_mut();
        world.query::<&Probe>().iter(world).any(|p| p.0 == "link-offer")
    };
    assert!(!asked(&mut h));
    h.event(NodeEvent::LinkOffered { party: PartyId([7; 16]), owner: PeerId::random() });
    assert!(h.update().is_empty(), "an offered link did anything by itself");
    assert!(asked(&mut h), "no Join / Stay for the link");
    h.act(Act::AnswerLink(false));
    assert_eq!(h.update(), vec![Input::DeclineLink]);
    h.act(Act::AnswerLink(true));
    assert_eq!(h.update(), vec![Input::AcceptLink]);
    h.event(NodeEvent::LinkOfferClosed { joining: true });
    h.update();
    assert!(!asked(&mut h), "the question stayed after its answer");
}

#[test]
fn push_to_talk_key_sends_one_down_and_one_up() {
    let mut h = Harness::new(VoiceMode::PushToTalk);
    h.act(Act::PttKey(true));
    h.act(Act::PttKey(true));
    assert_eq!(h.update(), vec![Input::Voice(VoiceControl::Key(true))]);
    assert!(h.app.world().resource::<Ptt>().keyed());
    h.act(Act::PttKey(false));
    assert_eq!(h.update(), vec![Input::Voice(VoiceControl::Key(false))]);
    h.act(Act::Mode(VoiceMode::PushToTalkLatch));
    h.act(Act::PttKey(true));
    h.act(Act::PttKey(false));
    let inputs = h.update();
    assert_eq!(inputs[0], Input::Voice(VoiceControl::Mode(VoiceMode::PushToTalkLatch)));
    assert!(h.app.world().resource::<Ptt>().keyed(), "latched after a press and release");
}

#[test]
fn dropping_a_member_on_the_radar_places_their_voice() {
    let mut h = Harness::new(VoiceMode::VoiceActivation);
    let (me, bob) = (member("me", true), member("bob", false));
    h.event(joined(&[me, bob.clone()]));
    h.update();
    // The right edge of the radar, level with you: 20 m to your right.
    h.app.world_mut().write_message(RadarMoved { peer: bob.peer, at: Vec2::new(160.0, 80.0) });
    let inputs = h.update();
    let [Input::Voice(VoiceControl::Place { name, pose: Some(pose) })] = inputs.as_slice() else {
        panic!("{inputs:?}")
    };
    assert_eq!(name, "bob");
    assert!((pose.x - actions::RADAR_METRES).abs() < 1e-3 && pose.z.abs() < 1e-3, "{pose:?}");
    // Top centre: straight ahead (the listener faces -z).
    h.app.world_mut().write_message(RadarMoved { peer: bob.peer, at: Vec2::new(80.0, 0.0) });
    let inputs = h.update();
    assert!(
        matches!(&inputs[..], [Input::Voice(VoiceControl::Place { pose: Some(p), .. })] if p.z < -19.9 && p.x.abs() < 1e-3)
    );
    h.act(Act::CentreAll);
    assert_eq!(h.update(), vec![Input::Voice(VoiceControl::Place { name: "bob".into(), pose: None })]);
    assert_eq!(h.app.world().resource::<Party>().members[1].placed, None);
}

#[test]
fn the_radar_shows_where_the_game_puts_members_and_only_the_others_can_be_dragged() {
    let mut h = Harness::new(VoiceMode::VoiceActivation);
    let (me, bob, carl) = (member("me", true), member("bob", false), member("carl", false));
    h.event(joined(&[me, bob.clone(), carl]));
    h.act(Act::Open(Drawer::Radar));
    h.update();
    let pose = |x, z| Pose { x, y: 0.0, z, yaw: 0.0 };
    // Bob's game puts him 10 m ahead of me; carl's says nothing.
    h.event(NodeEvent::Positions {
        me: Some(pose(0.0, 0.0)),
        members: vec![MemberPose { peer: bob.peer, name: "bob".into(), pose: pose(0.0, -10.0) }],
    });
    h.update();
    let world = h.app.world_mut();
    let mut dots = world.query::<(&Probe, &Node, Has<widgets::RadarDot>)>();
    let dots: Vec<(String, Val, Val, bool)> =
        dots.iter(world).map(|(p, n, drag)| (p.0.clone(), n.left, n.top, drag)).collect();
    let dot = |name: &str| dots.iter().find(|d| d.0 == format!("dot:{name}")).cloned();
    // The radar is 160 px for 20 m each way: 10 m ahead is 40 px above its centre (80, 80), and
    // the dot (16 px) is placed by its corner.
    assert_eq!(dot("bob"), Some(("dot:bob".into(), Val::Px(72.0), Val::Px(32.0), false)), "{dots:?}");
    assert!(dot("carl").is_some_and(|d| d.3), "carl can be dragged: {dots:?}");
}

#[test]
fn volume_steps_are_clamped_and_mute_goes_out_as_presence() {
    let mut h = Harness::new(VoiceMode::VoiceActivation);
    let (me, bob) = (member("me", true), member("bob", false));
    h.event(joined(&[me, bob.clone()]));
    h.update();
    for _ in 0..15 {
        h.act(Act::Volume { peer: bob.peer, step: 10 });
    }
    let inputs = h.update();
    assert_eq!(inputs.last(), Some(&Input::Voice(VoiceControl::Volume { name: "bob".into(), volume: 2.0 })));
    h.act(Act::ToggleMute);
    assert_eq!(h.update(), vec![Input::Presence(Presence::Muted)]);
    // The button shows what the voice engine says, not the click.
    assert!(!h.app.world().resource::<Party>().muted);
    h.event(NodeEvent::VoiceState { muted: true, deafened: false });
    h.update();
    assert!(h.app.world().resource::<Party>().muted);
    h.act(Act::ToggleMute);
    h.act(Act::ToggleDeafen);
    assert_eq!(
        h.update(),
        vec![Input::Presence(Presence::Online), Input::Voice(VoiceControl::Deafened(true))]
    );
    h.act(Act::Open(Drawer::Chat));
    h.update();
    assert!(h.app.world().resource::<Chat>().open);
}

#[test]
fn keys_and_devices_are_chosen_in_the_settings_panel_saved_and_used() {
    use bevy::input::ButtonState;
    use bevy::input::keyboard::{Key, KeyboardInput};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    let mut h = Harness::new(VoiceMode::PushToTalk);
    h.app
        .insert_resource(SettingsFile { settings: Settings::default(), path: path.clone() })
        .add_message::<KeyboardInput>()
        .add_plugins(widgets::SettingsPlugin);
    let press = |h: &mut Harness, key_code| {
        let (logical_key, state, text, repeat) = (
            Key::Unidentified(bevy::input::keyboard::NativeKey::Unidentified),
            ButtonState::Pressed,
            None,
            false,
        );
        let window = Entity::PLACEHOLDER;
        h.app.world_mut().write_message(KeyboardInput { key_code, logical_key, state, text, repeat, window });
    };
    let saved = || Settings::load_or_create(&path).unwrap();

    // Keys pressed while nothing waits for one change nothing.
    press(&mut h, KeyCode::F7);
    h.update();
    h.act(Act::Rebind(KeyRole::PushToTalk));
    h.update();
    assert_eq!(*h.app.world().resource::<Rebinding>(), Rebinding(Some(KeyRole::PushToTalk)));
    // A modifier alone is not a key; the next key is.
    press(&mut h, KeyCode::ShiftLeft);
    press(&mut h, KeyCode::F8);
    h.update();
    assert_eq!(saved().overlay.ptt_key, "F8");
    assert_eq!(*h.app.world().resource::<Rebinding>(), Rebinding(None));
    // Escape keeps the key there was.
    h.act(Act::Rebind(KeyRole::Overlay));
    h.update();
    press(&mut h, KeyCode::Escape);
    h.update();
    assert_eq!(saved().overlay.interact_key, Settings::default().overlay.interact_key);
    assert_eq!(*h.app.world().resource::<Rebinding>(), Rebinding(None));

    // Another microphone: saved, and the voice engine told at once.
    h.act(Act::Input("none".into()));
    assert_eq!(h.update(), vec![Input::Voice(VoiceControl::Input("none".into()))]);
    h.act(Act::Output("USB Headset".into()));
    assert_eq!(h.update(), vec![Input::Voice(VoiceControl::Output("USB Headset".into()))]);
    let voice = saved().voice;
    assert_eq!((voice.input.as_str(), voice.output.as_str()), ("none", "USB Headset"));
}

#[test]
fn plugin_panels_are_drawn_and_their_buttons_and_inputs_go_back_to_the_plugin() {
    use crate::events::PanelElement;
    let mut h = Harness::new(VoiceMode::VoiceActivation);
    h.app.add_message::<bevy::input::keyboard::KeyboardInput>().add_plugins(widgets::PluginsPlugin);
    h.app.world_mut().spawn((Slot::Drawer(Drawer::Plugins), Node::default()));
    let elements = vec![
        PanelElement::Heading("Library".into()),
        PanelElement::Button { id: "get".into(), label: "Get".into() },
        PanelElement::Input { id: "search".into(), placeholder: "Search".into(), value: String::new() },
        PanelElement::Progress { label: "Quake".into(), done: 1, total: 4 },
    ];
    // A title the plugin chooses comes under the name it was installed as, never in its place.
    let (name, title) = ("Game store".to_owned(), "Partyline security check".to_owned());
    let panel = NodeEvent::PluginPanel { plugin: "game-store".into(), name, title, elements };
    h.event(panel.clone());
    h.act(Act::Open(Drawer::Plugins));
    h.update();
    let world = h.app.world_mut();
    let mut texts = world.query::<&Text>();
    let texts: Vec<String> = texts.iter(world).map(|t| t.0.clone()).collect();
    let at = |s: &str| texts.iter().position(|t| t == s).unwrap_or_else(|| panic!("{s:?} in {texts:?}"));
    assert!(at("Game store") < at("Partyline security check"), "the name heads the panel: {texts:?}");
    let mut buttons = world.query::<&Act>();
    let acts: Vec<Act> = buttons.iter(world).cloned().collect();
    let get = Act::Plugin { plugin: "game-store".into(), id: "get".into(), value: None };
    assert!(acts.contains(&get), "{acts:?}");
    let mut probes = world.query::<(Entity, &Probe)>();
    assert!(probes.iter(world).any(|(_, p)| p.0 == "progress:game-store:Quake"));
    let drawn = |world: &mut World| {
        let mut probes = world.query::<(Entity, &Probe)>();
        probes.iter(world).find(|(_, p)| p.0 == "plugin:game-store").map(|(e, _)| e)
    };
    let before = drawn(h.app.world_mut());
    assert!(before.is_some());
    // The same panel again redraws nothing.
    h.event(panel);
    h.update();
    assert_eq!(drawn(h.app.world_mut()), before);

    h.act(get);
    assert_eq!(
        h.update(),
        vec![Input::PluginAction { plugin: "game-store".into(), id: "get".into(), value: None }]
    );
    h.act(Act::EditInput { plugin: "game-store".into(), id: "search".into(), value: "qua".into() });
    h.update();
    h.act(Act::Plugin { plugin: "game-store".into(), id: "search".into(), value: Some("quake".into()) });
    assert_eq!(
        h.update(),
        vec![Input::PluginAction {
            plugin: "game-store".into(),
            id: "search".into(),
            value: Some("quake".into())
        }]
    );
    assert_eq!(*h.app.world().resource::<super::actions::PluginDraft>(), Default::default());

    // A plugin asks for permissions: shown, and Allow grants them.
    let asks = |permissions: Vec<String>| NodeEvent::PluginAsks {
        plugin: "game-store".into(),
        name: "Game store".into(),
        permissions,
    };
    h.event(asks(vec!["storage".into(), "http:store.example.com".into()]));
    h.update();
    let world = h.app.world_mut();
    let mut probes = world.query::<&Probe>();
    assert!(probes.iter(world).any(|p| p.0 == "asks:game-store"));
    h.act(Act::GrantPlugin("game-store".into()));
    assert_eq!(h.update(), vec![Input::GrantPlugin { plugin: "game-store".into(), permissions: None }]);
    h.event(asks(Vec::new()));
    h.update();
    assert!(h.app.world().resource::<Panels>().asks.is_empty(), "nothing more asked");
}
