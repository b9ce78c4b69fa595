//! What the user does in the overlay (buttons, keys, drags), carried out in one place: the
//! overlay's own state changes here, and the inputs for the session go out through the outbox.

use bevy::prelude::*;
use libp2p::PeerId;
use partyline_protocol::voice::Pose;
use partyline_protocol::wire::Presence;

use super::model::{Panels, Party, ToastKind, Toasts};
use super::{Chat, Drawer, Outbox, Ptt, SettingsFile};
use crate::net::VoiceControl;
use crate::session::Input;
use crate::voice::VoiceMode;

/// Radar scale: the radar's radius is this many metres.
pub(crate) const RADAR_METRES: f32 = 20.0;

#[derive(Message, Component, Clone, Debug, PartialEq)]
pub(crate) enum Act {
    ToggleMute,
    ToggleDeafen,
    Open(Drawer),
    /// Change a member's volume by this many percent.
    Volume {
        peer: PeerId,
        step: i32,
    },
    /// Place a member at this point of the radar (metres, x right, y ahead); `None` re-centres.
    Place {
        peer: PeerId,
        at: Option<Vec2>,
    },
    /// Every placed member back in the centre.
    CentreAll,
    PttKey(bool),
    Mode(VoiceMode),
    SendChat,
    CopyLink,
    Host,
    Leave,
    /// Next anchor (corner or edge) for the window.
    NextAnchor,
    Opacity(f32),
    Scale(f32),
    /// Another microphone or speakers: `default`, `none` or a device's name. Saved, and used at once.
    Input(String),
    Output(String),
    /// Wait for the next key pressed in the overlay to become this key (again: stop waiting).
    Rebind(KeyRole),
    /// The key pressed for it (`None`: Escape, keep the old one).
    SetKey {
        role: KeyRole,
        spec: Option<String>,
    },
    /// A button of a plugin's panel pressed, or an input submitted (`value`).
    Plugin {
        plugin: String,
        id: String,
        value: Option<String>,
    },
    /// Join the party of the link from outside (true), or stay (false).
    AnswerLink(bool),
    /// Share the path typed into a plugin's panel with it, or not.
    AnswerPath(bool),
    /// Allow a plugin all it asks for.
    GrantPlugin(String),
    /// Put off what a plugin asks for (it asks again next start).
    DismissAsk(String),
    /// Show this plugin's panel in the drawer.
    ShowPanel(String),
    /// Start typing into a plugin's input (which holds `value`).
    EditInput {
        plugin: String,
        id: String,
        value: String,
    },
}

/// The plugin input being typed into, and what was typed.
#[derive(Resource, Default, Clone, Debug, PartialEq, Eq)]
pub(crate) struct PluginDraft {
    pub(crate) at: Option<(String, String)>,
    pub(crate) text: String,
}

/// The overlay's two global keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyRole {
    PushToTalk,
    Overlay,
}

/// Which key the settings panel waits for, if any.
#[derive(Resource, Default, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rebinding(pub(crate) Option<KeyRole>);

/// Buttons carry an [`Act`]; clicking one performs it. (A click observed as an event, not
/// polled from `Interaction`: a press and release in the same frame still count.)
pub(crate) fn click_buttons(click: On<Pointer<Click>>, buttons: Query<&Act>, mut acts: MessageWriter<Act>) {
    if let Ok(act) = buttons.get(click.entity) {
        acts.write(act.clone());
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn carry_out(
    mut acts: MessageReader<Act>,
    time: Res<Time>,
    outbox: Option<Res<Outbox>>,
    mut party: ResMut<Party>,
    mut chat: ResMut<Chat>,
    mut toasts: ResMut<Toasts>,
    mut drawer: ResMut<Drawer>,
    mut ptt: ResMut<Ptt>,
    mut file: Option<ResMut<SettingsFile>>,
    mut rebinding: ResMut<Rebinding>,
    mut draft: ResMut<PluginDraft>,
    mut panels: ResMut<Panels>,
    mut clipboard: Option<ResMut<bevy::clipboard::Clipboard>>,
) {
    let now = time.elapsed();
    let mut inputs = Vec::new();
    for act in acts.read() {
        match act {
            // The buttons change when the voice engine says so (its `VoiceState`).
            Act::ToggleMute => {
                let presence = if party.muted { Presence::Online } else { Presence::Muted };
                inputs.push(Input::Presence(presence));
            }
            Act::ToggleDeafen => inputs.push(Input::Voice(VoiceControl::Deafened(!party.deafened))),
            Act::Open(which) => {
                let next = if *drawer == *which { Drawer::None } else { *which };
                *drawer = next;
                chat.set_open(next == Drawer::Chat);
            }
            Act::Volume { peer, step } => {
                if let Some(m) = party.member_mut(peer) {
                    let percent = ((m.volume * 100.0).round() as i32 + step).clamp(0, 200);
                    m.volume = percent as f32 / 100.0;
                    let control = VoiceControl::Volume { name: m.name.clone(), volume: m.volume };
                    inputs.push(Input::Voice(control));
                }
            }
            Act::Place { peer, at } => {
                if let Some(m) = party.member_mut(peer) {
                    m.placed = at.map(|p| p.clamp_length_max(RADAR_METRES));
                    // Heard from a listener at the origin facing -z: ahead is -z, right is +x.
                    let pose = m.placed.map(|p| Pose { x: p.x, y: 0.0, z: -p.y, yaw: 0.0 });
                    inputs.push(Input::Voice(VoiceControl::Place { name: m.name.clone(), pose }));
                }
            }
            Act::CentreAll => {
                for m in &mut party.members {
                    if m.placed.take().is_some() {
                        inputs.push(Input::Voice(VoiceControl::Place { name: m.name.clone(), pose: None }));
                    }
                }
            }
            Act::PttKey(down) => {
                let control = if *down { ptt.press() } else { ptt.release() };
                inputs.extend(control.map(Input::Voice));
            }
            Act::Mode(mode) => {
                inputs.push(Input::Voice(ptt.set_mode(*mode)));
                if let Some(file) = &mut file {
                    file.settings.voice.mode = *mode;
                    save(file, &mut toasts, now);
                }
            }
            Act::SendChat => {
                let text = std::mem::take(&mut chat.draft);
                if !text.trim().is_empty() {
                    inputs.push(Input::Chat(text));
                }
            }
            Act::CopyLink => match (&party.link, &mut clipboard) {
                (Some(link), Some(clipboard)) => match clipboard.set_text(link.clone()) {
                    Ok(()) => toasts.push(now, ToastKind::Info, "Link copied"),
                    Err(e) => toasts.push(now, ToastKind::Error, format!("Cannot copy the link: {e:?}")),
                },
                (Some(_), None) => toasts.push(now, ToastKind::Error, "No clipboard here"),
                (None, _) => toasts.push(now, ToastKind::Info, "Only the party's owner has a link"),
            },
            Act::Host => inputs.push(Input::Host),
            Act::AnswerLink(yes) => inputs.push(if *yes { Input::AcceptLink } else { Input::DeclineLink }),
            Act::AnswerPath(yes) => inputs.push(Input::AnswerPath(*yes)),
            Act::Leave => inputs.push(Input::Leave),
            Act::Input(name) | Act::Output(name) => {
                let output = matches!(act, Act::Output(_));
                if let Some(file) = &mut file {
                    let voice = &mut file.settings.voice;
                    *(if output { &mut voice.output } else { &mut voice.input }) = name.clone();
                    save(file, &mut toasts, now);
                }
                let control = if output { VoiceControl::Output } else { VoiceControl::Input };
                inputs.push(Input::Voice(control(name.clone())));
            }
            Act::Rebind(role) => {
                let waiting = (rebinding.0 != Some(*role)).then_some(*role);
                rebinding.set_if_neq(Rebinding(waiting));
            }
            Act::SetKey { role, spec } => {
                rebinding.set_if_neq(Rebinding(None));
                if let (Some(spec), Some(file)) = (spec, &mut file) {
                    let overlay = &mut file.settings.overlay;
                    match role {
                        KeyRole::PushToTalk => overlay.ptt_key = spec.clone(),
                        KeyRole::Overlay => overlay.interact_key = spec.clone(),
                    }
                    save(file, &mut toasts, now);
                }
            }
            Act::Plugin { plugin, id, value } => {
                draft.set_if_neq(PluginDraft::default());
                let input =
                    Input::PluginAction { plugin: plugin.clone(), id: id.clone(), value: value.clone() };
                inputs.push(input);
            }
            Act::GrantPlugin(plugin) => {
                inputs.push(Input::GrantPlugin { plugin: plugin.clone(), permissions: None });
            }
            Act::DismissAsk(plugin) => {
                panels.asks.remove(plugin);
            }
            Act::ShowPanel(plugin) => panels.shown = Some(plugin.clone()),
            Act::EditInput { plugin, id, value } => {
                *draft = PluginDraft { at: Some((plugin.clone(), id.clone())), text: value.clone() };
            }
            Act::NextAnchor | Act::Opacity(_) | Act::Scale(_) => {
                if let Some(file) = &mut file {
                    adjust_overlay(act, &mut file.settings.overlay);
                    save(file, &mut toasts, now);
                }
            }
        }
    }
    if let Some(outbox) = outbox {
        for input in inputs {
            outbox.send(input, &mut toasts, now);
        }
    }
}

fn adjust_overlay(act: &Act, overlay: &mut crate::config::OverlaySettings) {
    match act {
        Act::NextAnchor => overlay.anchor = overlay.anchor.next(),
        Act::Opacity(d) => overlay.opacity = (overlay.opacity + d).clamp(0.2, 1.0),
        Act::Scale(d) => overlay.scale = (overlay.scale + d).clamp(0.75, 2.0),
        _ => {}
    }
}

pub(super) fn save(file: &SettingsFile, toasts: &mut Toasts, now: std::time::Duration) {
    if let Err(e) = file.settings.save(&file.path) {
        toasts.push(now, ToastKind::Error, format!("{e:#}"));
    }
}
