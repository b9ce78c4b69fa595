//! Party chat: the last lines, and a line to type into while the overlay is interactive
//! (Enter sends, Escape closes).

use bevy::input::ButtonState;
use bevy::input::keyboard::KeyboardInput;
use bevy::prelude::*;

use super::{Slot, Typed, button, drawer_needs_drawing, redraw, type_key};
use crate::overlay::actions::Act;
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop, Fonts};
use crate::overlay::{Chat, Drawer, Interactive};

/// Lines shown; the rest are kept for later.
const SHOWN: usize = 8;
/// Longest chat message, as the party protocol allows.
const MAX_DRAFT: usize = 1000;

pub(crate) struct ChatPlugin;

impl Plugin for ChatPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            Update,
            (
                type_in.before(crate::overlay::actions::carry_out),
                draw.after(crate::overlay::actions::carry_out),
            ),
        );
    }
}

fn type_in(
    mut keys: MessageReader<KeyboardInput>,
    drawer: Res<Drawer>,
    interactive: Res<Interactive>,
    mut chat: ResMut<Chat>,
    mut acts: MessageWriter<Act>,
) {
    if *drawer != Drawer::Chat || !interactive.0 {
        keys.clear();
        return;
    }
    for key in keys.read().filter(|k| k.state == ButtonState::Pressed) {
        match type_key(key, &mut chat.draft, MAX_DRAFT) {
            Typed::Enter => drop(acts.write(Act::SendChat)),
            Typed::Escape => drop(acts.write(Act::Open(Drawer::Chat))),
            Typed::Edited => {}
        }
    }
}

fn draw(
    mut commands: Commands,
    slots: Query<(Entity, &Slot)>,
    chat: Res<Chat>,
    drawer: Res<Drawer>,
    interactive: Res<Interactive>,
    backdrop: Res<Backdrop>,
    fonts: Res<Fonts>,
) {
    let changed =
        chat.is_changed() || drawer.is_changed() || interactive.is_changed() || backdrop.is_changed();
    if !drawer_needs_drawing(&mut commands, &slots, *drawer, Drawer::Chat, changed) {
        return;
    }
    let b = *backdrop;
    redraw(&mut commands, &slots, Slot::Drawer(Drawer::Chat), |s| {
        s.spawn((theme::panel(b), Probe("chat".into()))).with_children(|p| {
            if chat.lines.is_empty() {
                p.spawn(theme::text("No messages yet.", 12.0, theme::DIM));
            }
            let skip = chat.lines.len().saturating_sub(SHOWN);
            for line in chat.lines.iter().skip(skip) {
                p.spawn(Node { flex_direction: FlexDirection::Row, column_gap: Val::Px(4.0), ..default() })
                    .with_children(|r| {
                        let color = if line.mine { theme::ACCENT } else { theme::TEXT };
                        r.spawn(theme::bold(&fonts, format!("{}:", line.from), 12.0, color));
                        r.spawn(theme::text(line.text.clone(), 12.0, theme::TEXT));
                    });
            }
            let prompt = if interactive.0 {
                format!("> {}▏", chat.draft)
            } else {
                "(press the overlay key to type)".to_owned()
            };
            p.spawn(Node { flex_direction: FlexDirection::Row, column_gap: Val::Px(4.0), ..default() })
                .with_children(|r| {
                    r.spawn((theme::text(prompt, 12.0, theme::DIM), Probe("chat-draft".into())));
                    if interactive.0 {
                        r.spawn(button("Send", Act::SendChat, false, b));
                    }
                });
        });
    });
}
