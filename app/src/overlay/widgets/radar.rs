//! The radar: you in the middle facing up, members around you. Members whose games report where
//! they stand are shown there (ringed, not draggable: their voices come from there). The others
//! can be dragged to place their voices (left, right, ahead, behind); "Centre everyone" puts them
//! all back in the middle of your head.

use bevy::prelude::*;
use libp2p::PeerId;

use super::{Slot, button, drawer_needs_drawing, redraw};
use crate::overlay::actions::{Act, RADAR_METRES};
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop};
use crate::overlay::{Drawer, GamePositions, Party};

/// The radar's side, pixels.
const SIDE: f32 = 160.0;
const DOT: f32 = 16.0;

/// A member's dot was dropped here: pixels from the radar's top-left corner to the dot's centre.
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub(crate) struct RadarMoved {
    pub(crate) peer: PeerId,
    pub(crate) at: Vec2,
}

/// A dot that can be dragged: a member placed by hand.
#[derive(Component)]
pub(crate) struct Dot(PeerId);

pub(crate) struct RadarPlugin;

impl Plugin for RadarPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<RadarMoved>().add_systems(
            Update,
            (
                place.before(crate::overlay::actions::carry_out),
                draw.after(crate::overlay::actions::carry_out),
            ),
        );
    }
}

/// Radar pixels to metres: x to the right, y ahead (up on the radar).
pub(crate) fn to_metres(at: Vec2) -> Vec2 {
    let half = SIDE / 2.0;
    Vec2::new((at.x - half) / half, (half - at.y) / half) * RADAR_METRES
}

fn to_pixels(m: Vec2) -> Vec2 {
    let half = SIDE / 2.0;
    Vec2::new(half + m.x / RADAR_METRES * half, half - m.y / RADAR_METRES * half)
}

/// Dropped dots become placements.
pub(crate) fn place(mut moved: MessageReader<RadarMoved>, mut acts: MessageWriter<Act>) {
    for m in moved.read() {
        acts.write(Act::Place { peer: m.peer, at: Some(to_metres(m.at)) });
    }
}

fn draw(
    mut commands: Commands,
    slots: Query<(Entity, &Slot)>,
    party: Res<Party>,
    positions: Res<GamePositions>,
    drawer: Res<Drawer>,
    backdrop: Res<Backdrop>,
) {
    let changed =
        party.is_changed() || positions.is_changed() || drawer.is_changed() || backdrop.is_changed();
    if !drawer_needs_drawing(&mut commands, &slots, *drawer, Drawer::Radar, changed) {
        return;
    }
    let b = *backdrop;
    redraw(&mut commands, &slots, Slot::Drawer(Drawer::Radar), |s| {
        s.spawn(theme::panel(b)).with_children(|p| {
            let caption = if positions.0.is_empty() {
                "Drag members to hear them from there"
            } else {
                "Ringed: where their game puts them"
            };
            p.spawn(theme::text(caption, 11.0, theme::DIM));
            p.spawn((
                Node {
                    width: Val::Px(SIDE),
                    height: Val::Px(SIDE),
                    border: UiRect::all(Val::Px(1.0)),
                    border_radius: BorderRadius::all(Val::Percent(50.0)),
                    ..default()
                },
                BorderColor::all(theme::DIM),
                BackgroundColor(Color::srgba(0.1, 0.2, 0.15, 0.4 * b.0)),
                Probe("radar".into()),
            ))
            .with_children(|radar| {
                let me = to_pixels(Vec2::ZERO);
                radar.spawn(dot_node(me, theme::ACCENT)).insert(Pickable::IGNORE);
                let others: Vec<_> = party.members.iter().filter(|m| !m.me).collect();
                for (i, m) in others.iter().enumerate() {
                    let color = if m.speaking { theme::SPEAKING } else { theme::TEXT };
                    let label = |d: &mut ChildSpawnerCommands| {
                        d.spawn((theme::text(initial(&m.name), 10.0, Color::BLACK), Pickable::IGNORE));
                    };
                    if let Some(at) = positions.of(&m.peer) {
                        // Farther than the radar reaches: on its rim, in their direction.
                        let at = at.clamp_length_max(RADAR_METRES);
                        radar
                            .spawn((dot_node(to_pixels(at), color), Probe(format!("dot:{}", m.name))))
                            .insert((BorderColor::all(theme::ACCENT), Pickable::IGNORE))
                            .with_children(label);
                        continue;
                    }
                    // Unplaced members wait on a ring near you, in roster order.
                    let angle = i as f32 / others.len().max(1) as f32 * std::f32::consts::TAU;
                    let at = m.placed.unwrap_or(Vec2::new(angle.sin(), angle.cos()) * RADAR_METRES * 0.25);
                    radar
                        .spawn((
                            dot_node(to_pixels(at), color),
                            Dot(m.peer),
                            Probe(format!("dot:{}", m.name)),
                        ))
                        .with_children(label)
                        .observe(drag)
                        .observe(drop);
                }
            });
            p.spawn(button("Centre everyone", Act::CentreAll, false, b));
        });
    });
}

fn initial(name: &str) -> String {
    name.chars().next().map(|c| c.to_uppercase().collect()).unwrap_or_default()
}

fn dot_node(centre: Vec2, color: Color) -> impl Bundle {
    (
        Node {
            position_type: PositionType::Absolute,
            left: Val::Px(centre.x - DOT / 2.0),
            top: Val::Px(centre.y - DOT / 2.0),
            width: Val::Px(DOT),
            height: Val::Px(DOT),
            border: UiRect::all(Val::Px(2.0)),
            border_radius: BorderRadius::all(Val::Percent(50.0)),
            justify_content: JustifyContent::Center,
            align_items: AlignItems::Center,
            ..default()
        },
        BackgroundColor(color),
    )
}

fn drag(mut event: On<Pointer<Drag>>, mut nodes: Query<&mut Node>, scale: Res<UiScale>) {
    event.propagate(false);
    let Ok(mut node) = nodes.get_mut(event.entity) else { return };
    if let (Val::Px(l), Val::Px(t)) = (node.left, node.top) {
        let (l, t) = (l + event.delta.x / scale.0, t + event.delta.y / scale.0);
        node.left = Val::Px(l.clamp(-DOT / 2.0, SIDE - DOT / 2.0));
        node.top = Val::Px(t.clamp(-DOT / 2.0, SIDE - DOT / 2.0));
    }
}

fn drop(event: On<Pointer<DragEnd>>, nodes: Query<(&Node, &Dot)>, mut moved: MessageWriter<RadarMoved>) {
    let Ok((node, dot)) = nodes.get(event.entity) else { return };
    if let (Val::Px(l), Val::Px(t)) = (node.left, node.top) {
        moved.write(RadarMoved { peer: dot.0, at: Vec2::new(l, t) + DOT / 2.0 });
    }
}
