//! Settings: voice mode, keys, devices, where the overlay sits and how it looks. Changes are
//! saved to the settings file and apply at once. The devices are listed (off the frame, on a
//! thread) each time the panel opens; a key is set by pressing it while the panel waits for it.

use std::sync::{Arc, Mutex};

use bevy::input::ButtonState;
use bevy::input::keyboard::KeyboardInput;
use bevy::prelude::*;

use super::header::mode_label;
use super::{Slot, button, drawer_needs_drawing, redraw, row};
use crate::overlay::actions::{Act, KeyRole, Rebinding};
use crate::overlay::model::Status;
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop};
use crate::overlay::{Drawer, Party, Ptt, SettingsFile, Waker};
use crate::voice::VoiceMode;

pub(crate) struct SettingsPlugin;

impl Plugin for SettingsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Devices>().add_systems(
            Update,
            (
                (press_key, list_devices).before(crate::overlay::actions::carry_out),
                draw.after(crate::overlay::actions::carry_out),
            ),
        );
    }
}

/// The audio devices there are, as last listed.
#[derive(Resource, Default)]
pub(crate) struct Devices {
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// A listing under way: the thread puts its result here.
    pending: Option<Arc<Mutex<Option<Listed>>>>,
}

/// Input and output device names.
type Listed = (Vec<String>, Vec<String>);

/// Lists the devices on a thread when the panel opens (listing can take a moment, and the
/// device set changes as headsets come and go); takes the result when it is there.
fn list_devices(drawer: Res<Drawer>, mut devices: ResMut<Devices>, waker: Option<Res<Waker>>) {
    if drawer.is_changed() && *drawer == Drawer::Settings && devices.pending.is_none() {
        let slot = Arc::new(Mutex::new(None));
        let (done, waker) = (slot.clone(), waker.map(|w| w.clone()));
        let listing = std::thread::Builder::new().name("partyline-devices".into()).spawn(move || {
            let listed = crate::voice::list_devices().unwrap_or_default();
            *done.lock().unwrap_or_else(|p| p.into_inner()) = Some(listed);
            if let Some(waker) = waker {
                waker.wake();
            }
        });
        if listing.is_ok() {
            devices.bypass_change_detection().pending = Some(slot);
        }
    }
    let listed = devices.pending.as_ref().and_then(|slot| slot.lock().ok()?.take());
    if let Some((inputs, outputs)) = listed {
        *devices = Devices { inputs, outputs, pending: None };
    }
}

/// While the panel waits for a key, the next one pressed becomes it (Escape: keep the old one).
fn press_key(
    mut keys: MessageReader<KeyboardInput>,
    held: Option<Res<ButtonInput<KeyCode>>>,
    rebinding: Res<Rebinding>,
    mut acts: MessageWriter<Act>,
) {
    let Some(role) = rebinding.0 else {
        keys.clear();
        return;
    };
    let held = |codes: [KeyCode; 2]| held.as_ref().is_some_and(|h| h.any_pressed(codes));
    for key in keys.read().filter(|k| k.state == ButtonState::Pressed) {
        let spec = match key.key_code {
            KeyCode::Escape => None,
            code => {
                let ctrl = held([KeyCode::ControlLeft, KeyCode::ControlRight]);
                let shift = held([KeyCode::ShiftLeft, KeyCode::ShiftRight]);
                let alt = held([KeyCode::AltLeft, KeyCode::AltRight]);
                match crate::overlay::hotkeys::spec_for(code, ctrl, shift, alt) {
                    Some(spec) => Some(spec),
                    None => continue,
                }
            }
        };
        acts.write(Act::SetKey { role, spec });
        return;
    }
}

/// The choices for a device: the system's default, each device, none; and the current one, even
/// if it is not plugged in now.
fn choices(devices: &[String], current: &str) -> Vec<String> {
    let mut all: Vec<String> = std::iter::once("default".to_owned())
        .chain(devices.iter().cloned())
        .chain(std::iter::once("none".to_owned()))
        .collect();
    if !all.iter().any(|d| d == current) {
        all.insert(1, current.to_owned());
    }
    all
}

/// The choice `step` away from `current`, wrapping around.
fn step(choices: &[String], current: &str, step: isize) -> String {
    let at = choices.iter().position(|c| c == current).unwrap_or(0) as isize;
    choices[(at + step).rem_euclid(choices.len() as isize) as usize].clone()
}

/// What the panel shows besides the settings file.
#[derive(bevy::ecs::system::SystemParam)]
struct Shown<'w> {
    ptt: Res<'w, Ptt>,
    party: Res<'w, Party>,
    backdrop: Res<'w, Backdrop>,
    devices: Res<'w, Devices>,
    rebinding: Res<'w, Rebinding>,
}

fn draw(
    mut commands: Commands,
    slots: Query<(Entity, &Slot)>,
    drawer: Res<Drawer>,
    file: Option<Res<SettingsFile>>,
    shown: Shown,
) {
    let Shown { ptt, party, backdrop, devices, rebinding } = shown;
    let file_changed = file.as_ref().is_some_and(|f| f.is_changed());
    let changed = drawer.is_changed()
        || file_changed
        || ptt.is_changed()
        || party.is_changed()
        || backdrop.is_changed()
        || devices.is_changed()
        || rebinding.is_changed();
    if !drawer_needs_drawing(&mut commands, &slots, *drawer, Drawer::Settings, changed) {
        return;
    }
    let Some(file) = file else { return };
    let (s, b, mode) = (&file.settings, *backdrop, ptt.mode());
    redraw(&mut commands, &slots, Slot::Drawer(Drawer::Settings), |slot| {
        slot.spawn((theme::panel(b), Probe("settings".into()))).with_children(|p| {
            p.spawn(theme::text("Settings", 14.0, theme::TEXT));
            p.spawn(row()).with_children(|r| {
                r.spawn(theme::text("Voice", 12.0, theme::DIM));
                for m in [VoiceMode::VoiceActivation, VoiceMode::PushToTalk, VoiceMode::PushToTalkLatch] {
                    r.spawn(button(short(m), Act::Mode(m), m == mode, b));
                }
            });
            p.spawn(theme::text(format!("Mode: {}", mode_label(mode)), 11.0, theme::DIM));
            for (role, label, spec) in [
                (KeyRole::PushToTalk, "Push-to-talk key", &s.overlay.ptt_key),
                (KeyRole::Overlay, "Overlay key", &s.overlay.interact_key),
            ] {
                p.spawn(row()).with_children(|r| {
                    r.spawn(theme::text(label, 12.0, theme::DIM));
                    let waiting = rebinding.0 == Some(role);
                    let shown = if waiting { "press a key… (Esc: keep)".to_owned() } else { spec.clone() };
                    r.spawn(button(shown, Act::Rebind(role), waiting, b));
                });
            }
            for (label, list, current, act) in [
                ("Microphone", &devices.inputs, &s.voice.input, Act::Input as fn(String) -> Act),
                ("Speakers", &devices.outputs, &s.voice.output, Act::Output),
            ] {
                let all = choices(list, current);
                p.spawn(row()).with_children(|r| {
                    r.spawn(theme::text(label, 12.0, theme::DIM));
                    r.spawn(button("◀", act(step(&all, current, -1)), false, b));
                    r.spawn((
                        theme::text(current.clone(), 12.0, theme::TEXT),
                        Probe(format!("device:{label}")),
                    ));
                    r.spawn(button("▶", act(step(&all, current, 1)), false, b));
                });
            }
            p.spawn(row()).with_children(|r| {
                r.spawn(theme::text("Position", 12.0, theme::DIM));
                r.spawn(button(s.overlay.anchor.to_string(), Act::NextAnchor, false, b));
            });
            p.spawn(row()).with_children(|r| {
                r.spawn(theme::text("Opacity", 12.0, theme::DIM));
                r.spawn(button("−", Act::Opacity(-0.1), false, b));
                r.spawn(theme::text(format!("{:.0}%", s.overlay.opacity * 100.0), 12.0, theme::TEXT));
                r.spawn(button("+", Act::Opacity(0.1), false, b));
                r.spawn(theme::text("Size", 12.0, theme::DIM));
                r.spawn(button("−", Act::Scale(-0.1), false, b));
                r.spawn(theme::text(format!("{:.0}%", s.overlay.scale * 100.0), 12.0, theme::TEXT));
                r.spawn(button("+", Act::Scale(0.1), false, b));
            });
            p.spawn(theme::text(format!("Saved in {}", file.path.display()), 9.0, theme::DIM));
            if party.status != Status::Idle {
                p.spawn(button("Leave the party", Act::Leave, false, b));
            }
        });
    });
}

fn short(mode: VoiceMode) -> &'static str {
    match mode {
        VoiceMode::VoiceActivation => "Voice",
        VoiceMode::PushToTalk => "PTT",
        VoiceMode::PushToTalkLatch => "Latch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choices_wrap_around_and_keep_an_unplugged_one() {
        let listed = vec!["USB Headset".to_owned(), "HDMI".to_owned()];
        let all = choices(&listed, "default");
        assert_eq!(all, ["default", "USB Headset", "HDMI", "none"]);
        assert_eq!(step(&all, "default", 1), "USB Headset");
        assert_eq!(step(&all, "default", -1), "none");
        assert_eq!(step(&all, "none", 1), "default");
        let all = choices(&listed, "Old Mic");
        assert_eq!(all[1], "Old Mic", "{all:?}");
        assert_eq!(step(&all, "Old Mic", 1), "USB Headset");
    }
}
