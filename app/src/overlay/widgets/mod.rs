//! The widgets, one Bevy plugin each. Every widget owns a slot in the layout and redraws it
//! only when what it shows has changed: nothing is redrawn while nothing happens.

mod chat;
mod header;
mod invite;
mod plugins;
mod radar;
mod roster;
mod settings;
mod toasts;

use bevy::prelude::*;

use super::actions::{self, Act};
use super::probe::Probe;
use super::theme::{self, Backdrop};
#[cfg(test)]
pub(crate) use plugins::PluginsPlugin;
#[cfg(test)]
pub(crate) use radar::{Dot as RadarDot, RadarMoved, RadarPlugin};
#[cfg(test)]
pub(crate) use roster::{RosterPlugin, SpeakingLight};
#[cfg(test)]
pub(crate) use settings::SettingsPlugin;

pub(crate) struct WidgetsPlugin;

impl Plugin for WidgetsPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, layout).add_observer(actions::click_buttons).add_plugins((
            header::HeaderPlugin,
            roster::RosterPlugin,
            chat::ChatPlugin,
            invite::InvitePlugin,
            radar::RadarPlugin,
            plugins::PluginsPlugin,
            settings::SettingsPlugin,
            toasts::ToastsPlugin,
        ));
    }
}

/// Where each widget draws.
#[derive(Component, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Slot {
    Header,
    Roster,
    Drawer(super::Drawer),
    Toasts,
}

fn layout(mut commands: Commands) {
    commands.spawn(Camera2d);
    let column = Node {
        width: Val::Percent(100.0),
        height: Val::Percent(100.0),
        flex_direction: FlexDirection::Column,
        padding: UiRect::all(Val::Px(4.0)),
        row_gap: Val::Px(4.0),
        ..default()
    };
    let slot = |s: Slot| (s, Node { flex_direction: FlexDirection::Column, ..default() });
    use super::Drawer as D;
    commands.spawn((column, Probe("root".into()))).with_children(|root| {
        for s in [Slot::Header, Slot::Roster] {
            root.spawn(slot(s));
        }
        for d in [D::Chat, D::Invite, D::Radar, D::Plugins, D::Settings] {
            root.spawn(slot(Slot::Drawer(d)));
        }
        root.spawn((
            Slot::Toasts,
            Node {
                position_type: PositionType::Absolute,
                bottom: Val::Px(4.0),
                left: Val::Px(4.0),
                right: Val::Px(4.0),
                flex_direction: FlexDirection::Column,
                row_gap: Val::Px(3.0),
                ..default()
            },
        ));
    });
}

/// Empties a slot and fills it again.
pub(crate) fn redraw(
    commands: &mut Commands,
    slots: &Query<(Entity, &Slot)>,
    which: Slot,
    fill: impl FnOnce(&mut ChildSpawnerCommands),
) {
    if let Some((entity, _)) = slots.iter().find(|(_, s)| **s == which) {
        commands.entity(entity).despawn_related::<Children>().with_children(fill);
    }
}

/// A small button that performs `act` when pressed.
pub(crate) fn button(label: impl Into<String>, act: Act, active: bool, backdrop: Backdrop) -> impl Bundle {
    (
        Button,
        act,
        Node {
            padding: UiRect::axes(Val::Px(6.0), Val::Px(2.0)),
            border_radius: BorderRadius::all(Val::Px(4.0)),
            justify_content: JustifyContent::Center,
            ..default()
        },
        backdrop.button(active),
        // The label lets the pointer through, so the button itself is what is clicked.
        children![(theme::text(label, 12.0, theme::TEXT), Pickable::IGNORE)],
    )
}

/// What a key pressed while typing into a line did.
pub(crate) enum Typed {
    Enter,
    Escape,
    /// The line changed (Backspace, or text typed; text that would pass `max` bytes is dropped).
    Edited,
}

/// Applies a pressed key to `line`, at most `max` bytes; Enter and Escape are left to the caller.
pub(crate) fn type_key(key: &bevy::input::keyboard::KeyboardInput, line: &mut String, max: usize) -> Typed {
    use bevy::input::keyboard::Key;
    match &key.logical_key {
        Key::Enter => return Typed::Enter,
        Key::Escape => return Typed::Escape,
        Key::Backspace => drop(line.pop()),
        _ => {
            if let Some(text) = &key.text
                && line.len() + text.len() <= max
            {
                line.extend(text.chars().filter(|c| !c.is_control()));
            }
        }
    }
    Typed::Edited
}

/// A row of children, centred vertically.
pub(crate) fn row() -> Node {
    Node {
        flex_direction: FlexDirection::Row,
        align_items: AlignItems::Center,
        column_gap: Val::Px(5.0),
        ..default()
    }
}

/// Whether drawer `which` must be drawn now: something changed (`changed`) and it is the open
/// drawer. A drawer that is not open is emptied.
pub(crate) fn drawer_needs_drawing(
    commands: &mut Commands,
    slots: &Query<(Entity, &Slot)>,
    open: super::Drawer,
    which: super::Drawer,
    changed: bool,
) -> bool {
    if changed && open != which {
        redraw(commands, slots, Slot::Drawer(which), |_| {});
    }
    changed && open == which
}
