//! Settings: voice mode, keys, devices, where the overlay sits and how it looks. Changes are
//! saved to the settings file at once; the mode applies at once, devices on the next start.

use bevy::prelude::*;

use super::header::mode_label;
use super::{Slot, button, drawer_needs_drawing, redraw, row};
use crate::overlay::actions::Act;
use crate::overlay::model::Status;
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop};
use crate::overlay::{Drawer, Party, Ptt, SettingsFile};
use crate::voice::VoiceMode;

pub(crate) struct SettingsPlugin;

impl Plugin for SettingsPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, draw.after(crate::overlay::actions::carry_out));
    }
}

#[allow(clippy::too_many_arguments)]
fn draw(
    mut commands: Commands,
    slots: Query<(Entity, &Slot)>,
    drawer: Res<Drawer>,
    file: Option<Res<SettingsFile>>,
    ptt: Res<Ptt>,
    party: Res<Party>,
    backdrop: Res<Backdrop>,
) {
    let file_changed = file.as_ref().is_some_and(|f| f.is_changed());
    let changed = drawer.is_changed()
        || file_changed
        || ptt.is_changed()
        || party.is_changed()
        || backdrop.is_changed();
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
            p.spawn(theme::text(format!("Push-to-talk key: {}", s.overlay.ptt_key), 12.0, theme::TEXT));
            p.spawn(theme::text(format!("Overlay key: {}", s.overlay.interact_key), 12.0, theme::TEXT));
            p.spawn(theme::text(format!("Microphone: {}", s.voice.input), 12.0, theme::TEXT));
            p.spawn(theme::text(format!("Speakers: {}", s.voice.output), 12.0, theme::TEXT));
            p.spawn(row()).with_children(|r| {
                r.spawn(theme::text("Position", 12.0, theme::DIM));
                r.spawn(button(s.overlay.anchor.clone(), Act::NextAnchor, false, b));
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
            p.spawn(theme::text(format!("Keys, devices: edit {}", file.path.display()), 9.0, theme::DIM));
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
