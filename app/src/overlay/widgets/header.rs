//! The header: the on-air indicator (what the microphone does right now) and the buttons.

use bevy::prelude::*;

use super::{Slot, button, redraw, row};
use crate::overlay::actions::Act;
use crate::overlay::model::Status;
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop};
use crate::overlay::window::start_move;
use crate::overlay::{Chat, Drawer, Interactive, Party, Ptt};
use crate::voice::VoiceMode;

pub(crate) struct HeaderPlugin;

impl Plugin for HeaderPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, draw.after(crate::overlay::actions::carry_out));
    }
}

/// What the indicator says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Air {
    /// Sending voice (or the key holds the microphone open).
    Talking,
    Muted,
    /// Chat only: no voice.
    Off,
    /// Ready: the microphone opens with the key or the voice.
    Ready(VoiceMode),
}

pub(crate) fn air(party: &Party, ptt: &Ptt) -> Air {
    let talking = party.me().is_some_and(|m| m.speaking);
    if !party.voice {
        Air::Off
    } else if party.muted || party.deafened {
        Air::Muted
    } else if talking || ptt.keyed() {
        Air::Talking
    } else {
        Air::Ready(ptt.mode())
    }
}

#[allow(clippy::too_many_arguments)]
fn draw(
    mut commands: Commands,
    slots: Query<(Entity, &Slot)>,
    new: Query<(), Added<Slot>>,
    party: Res<Party>,
    ptt: Res<Ptt>,
    chat: Res<Chat>,
    drawer: Res<Drawer>,
    interactive: Res<Interactive>,
    backdrop: Res<Backdrop>,
) {
    let changed = party.is_changed() || ptt.is_changed() || chat.is_changed() || drawer.is_changed();
    if !(changed || interactive.is_changed() || backdrop.is_changed() || !new.is_empty()) {
        return;
    }
    let b = *backdrop;
    let (label, color) = match air(&party, &ptt) {
        Air::Talking => ("● ON AIR".to_owned(), theme::ON_AIR),
        Air::Muted => ("✕ MUTED".to_owned(), theme::WARN),
        Air::Off => ("○ chat only".to_owned(), theme::DIM),
        Air::Ready(mode) => (format!("○ {}", mode_label(mode)), theme::DIM),
    };
    let status = match party.status {
        Status::Idle => "not in a party".to_owned(),
        Status::InParty => format!("{} in party", party.members.len()),
        Status::Reconnecting(n) => format!("reconnecting ({n})"),
    };
    let unread = if chat.unread > 0 { format!("Chat {}", chat.unread) } else { "Chat".to_owned() };
    let (voice, muted, deafened) = (party.voice, party.muted, party.deafened);
    let (open, editing) = (*drawer, interactive.0);
    redraw(&mut commands, &slots, Slot::Header, |h| {
        h.spawn((theme::panel(b), Probe("header".into()))).with_children(|p| {
            p.spawn(row()).with_children(|r| {
                r.spawn((theme::text(label, 14.0, color), Probe("on-air".into())));
                r.spawn(theme::text(status, 12.0, theme::DIM));
                if editing {
                    // Grab to move the window.
                    r.spawn((theme::text("↔ move", 11.0, theme::ACCENT), Probe("move".into())))
                        .observe(start_move);
                }
            });
            p.spawn(row()).with_children(|r| {
                if voice {
                    r.spawn(button(if muted { "Unmute" } else { "Mute" }, Act::ToggleMute, muted, b));
                    r.spawn(button(
                        if deafened { "Undeafen" } else { "Deafen" },
                        Act::ToggleDeafen,
                        deafened,
                        b,
                    ));
                }
                r.spawn((
                    button(unread, Act::Open(Drawer::Chat), open == Drawer::Chat, b),
                    Probe("chat-button".into()),
                ));
                r.spawn(button("Link", Act::Open(Drawer::Invite), open == Drawer::Invite, b));
                r.spawn(button("Radar", Act::Open(Drawer::Radar), open == Drawer::Radar, b));
                // Plugins' panels.
                r.spawn(button("▦", Act::Open(Drawer::Plugins), open == Drawer::Plugins, b));
                r.spawn(button("⚙", Act::Open(Drawer::Settings), open == Drawer::Settings, b));
            });
        });
    });
}

pub(crate) fn mode_label(mode: VoiceMode) -> &'static str {
    match mode {
        VoiceMode::VoiceActivation => "voice activation",
        VoiceMode::PushToTalk => "push-to-talk",
        VoiceMode::PushToTalkLatch => "push-to-talk latch",
    }
}
