//! Toasts: members joining and leaving, errors; a few at a time, gone after a few seconds.

use bevy::prelude::*;

use super::{Slot, redraw};
use crate::overlay::Toasts;
use crate::overlay::model::ToastKind;
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop};

pub(crate) struct ToastsPlugin;

impl Plugin for ToastsPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, draw.after(crate::overlay::actions::carry_out));
    }
}

fn draw(mut commands: Commands, slots: Query<(Entity, &Slot)>, toasts: Res<Toasts>, backdrop: Res<Backdrop>) {
    if !(toasts.is_changed() || backdrop.is_changed()) {
        return;
    }
    let b = *backdrop;
    redraw(&mut commands, &slots, Slot::Toasts, |s| {
        for toast in &toasts.items {
            let (color, name) = match toast.kind {
                ToastKind::Info => (theme::TEXT, "toast"),
                ToastKind::Error => (theme::WARN, "toast-error"),
            };
            s.spawn((theme::panel(b), Probe(name.into()))).with_children(|p| {
                p.spawn(theme::text(toast.text.clone(), 12.0, color));
            });
        }
    });
}
