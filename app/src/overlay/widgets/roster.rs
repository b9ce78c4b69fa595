//! Who is in the party: a speaking light per member, the owner's star, how we reach them, and
//! (for others) their volume; above them, a link from outside asking to move to its party.

use bevy::prelude::*;

use super::{Slot, button, redraw, row};
use crate::events::Path;
use crate::overlay::Party;
use crate::overlay::actions::Act;
use crate::overlay::model::Status;
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop, Fonts};
use partyline_protocol::wire::Presence;

pub(crate) struct RosterPlugin;

impl Plugin for RosterPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, draw.after(crate::overlay::actions::carry_out));
    }
}

/// A member's speaking light; tests find it by the member's name.
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpeakingLight {
    pub(crate) name: String,
    pub(crate) on: bool,
}

fn draw(
    mut commands: Commands,
    slots: Query<(Entity, &Slot)>,
    new: Query<(), Added<Slot>>,
    party: Res<Party>,
    backdrop: Res<Backdrop>,
    fonts: Res<Fonts>,
) {
    if !(party.is_changed() || backdrop.is_changed() || !new.is_empty()) {
        return;
    }
    let b = *backdrop;
    redraw(&mut commands, &slots, Slot::Roster, |s| {
        if let Some((id, owner)) = &party.offer {
            s.spawn((theme::panel(b), Probe("link-offer".into()))).with_children(|p| {
                p.spawn(theme::bold(&fonts, "A link asks you to join another party", 12.0, theme::WARN));
                p.spawn(theme::text(format!("party …{id}, owner …{owner}"), 11.0, theme::DIM));
                p.spawn(row()).with_children(|r| {
                    r.spawn(button("Join", Act::AnswerLink(true), false, b));
                    r.spawn(button("Stay", Act::AnswerLink(false), false, b));
                });
            });
        }
        s.spawn((theme::panel(b), Probe("roster".into()))).with_children(|p| {
            if party.status == Status::Idle {
                p.spawn(theme::text("Not in a party.", 13.0, theme::DIM));
                p.spawn(button("Host a party", Act::Host, false, b));
                return;
            }
            for m in &party.members {
                p.spawn(row()).with_children(|r| {
                    let (dot, color) =
                        if m.speaking { ("●", theme::SPEAKING) } else { ("○", theme::DIM) };
                    let mut light = r.spawn((
                        theme::text(dot, 14.0, color),
                        SpeakingLight { name: m.name.clone(), on: m.speaking },
                    ));
                    if m.speaking {
                        light.insert(Probe(format!("speaking:{}", m.name)));
                    }
                    let name_color = if m.presence == Presence::Online { theme::TEXT } else { theme::DIM };
                    r.spawn((
                        theme::bold(&fonts, m.name.clone(), 14.0, name_color),
                        Probe(format!("member:{}", m.name)),
                    ));
                    let mut tags = Vec::new();
                    if m.owner {
                        tags.push("★");
                    }
                    if m.me {
                        tags.push("you");
                    }
                    match m.presence {
                        Presence::Muted => tags.push("muted"),
                        Presence::Away => tags.push("away"),
                        Presence::Online => {}
                    }
                    match m.path {
                        _ if m.me => {}
                        Path::Relayed => tags.push("relayed"),
                        Path::Offline => tags.push("offline"),
                        Path::Direct => {}
                    }
                    if !tags.is_empty() {
                        r.spawn(theme::text(tags.join(" · "), 11.0, theme::DIM));
                    }
                    if !m.me {
                        r.spawn(Node { flex_grow: 1.0, ..default() });
                        r.spawn(button("−", Act::Volume { peer: m.peer, step: -10 }, false, b));
                        r.spawn(theme::text(
                            format!("{:>3}%", (m.volume * 100.0).round()),
                            11.0,
                            theme::TEXT,
                        ));
                        r.spawn(button("+", Act::Volume { peer: m.peer, step: 10 }, false, b));
                    }
                });
            }
        });
    });
}
