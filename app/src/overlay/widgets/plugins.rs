//! What plugins ask to be allowed (Allow grants it all, remembered; the plugin restarts with it),
//! and plugins' panels, one at a time under a row of tabs, drawn from what each plugin declared
//! (texts, buttons, inputs, lists, progress bars, QR codes, images). Buttons and submitted inputs go back to the plugin as actions; an
//! input is typed into after clicking it, while the overlay is interactive (Enter submits,
//! Escape stops typing).

use bevy::asset::RenderAssetUsages;
use bevy::input::ButtonState;
use bevy::input::keyboard::KeyboardInput;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};

use super::invite::qr_image;
use super::{Slot, Typed, button, drawer_needs_drawing, redraw, row, type_key};
use crate::events::PanelElement;
use crate::overlay::actions::{Act, PluginDraft};
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop, Fonts};
use crate::overlay::{Drawer, Interactive, Panels};

/// Longest text typed into a plugin's input.
const MAX_INPUT: usize = 500;

pub(crate) struct PluginsPlugin;

impl Plugin for PluginsPlugin {
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
    mut draft: ResMut<PluginDraft>,
    mut acts: MessageWriter<Act>,
) {
    if *drawer != Drawer::Plugins || !interactive.0 || draft.at.is_none() {
        keys.clear();
        return;
    }
    for key in keys.read().filter(|k| k.state == ButtonState::Pressed) {
        match type_key(key, &mut draft.text, MAX_INPUT) {
            Typed::Enter => {
                if let Some((plugin, id)) = draft.at.clone() {
                    acts.write(Act::Plugin { plugin, id, value: Some(draft.text.clone()) });
                }
            }
            Typed::Escape => *draft = PluginDraft::default(),
            Typed::Edited => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn draw(
    mut commands: Commands,
    slots: Query<(Entity, &Slot)>,
    panels: Res<Panels>,
    drawer: Res<Drawer>,
    draft: Res<PluginDraft>,
    backdrop: Res<Backdrop>,
    fonts: Res<Fonts>,
    mut images: Option<ResMut<Assets<Image>>>,
) {
    let changed = panels.is_changed() || drawer.is_changed() || draft.is_changed() || backdrop.is_changed();
    if !drawer_needs_drawing(&mut commands, &slots, *drawer, Drawer::Plugins, changed) {
        return;
    }
    let b = *backdrop;
    redraw(&mut commands, &slots, Slot::Drawer(Drawer::Plugins), |s| {
        // Drawn by the host, above every plugin's panel: nothing a plugin draws looks like it.
        if let Some((name, path)) = &panels.path_ask {
            s.spawn((theme::panel(b), Probe("path-ask".into()))).with_children(|p| {
                p.spawn(theme::bold(&fonts, format!("Share this with {name}?"), 12.0, theme::WARN));
                p.spawn(theme::text(path.clone(), 12.0, theme::TEXT));
                p.spawn(theme::text("It may read and send all that is there.", 11.0, theme::DIM));
                p.spawn(row()).with_children(|r| {
                    r.spawn(button("Share", Act::AnswerPath(true), false, b));
                    r.spawn(button("Don't share", Act::AnswerPath(false), false, b));
                });
            });
        }
        for (plugin, (name, permissions)) in &panels.asks {
            s.spawn((theme::panel(b), Probe(format!("asks:{plugin}")))).with_children(|p| {
                p.spawn(theme::bold(&fonts, format!("{name} asks to use"), 12.0, theme::WARN));
                p.spawn(theme::text(permissions.join(", "), 12.0, theme::TEXT));
                p.spawn(row()).with_children(|r| {
                    r.spawn(button("Allow", Act::GrantPlugin(plugin.clone()), false, b));
                    r.spawn(button("Not now", Act::DismissAsk(plugin.clone()), false, b));
                });
            });
        }
        if panels.panels.is_empty() && panels.asks.is_empty() {
            s.spawn(theme::panel(b)).with_children(|p| {
                p.spawn(theme::text("No plugin shows anything.", 12.0, theme::DIM));
            });
        }
        // One panel at a time, chosen by its tab.
        if panels.panels.len() > 1 {
            s.spawn(row()).with_children(|r| {
                for (plugin, panel) in &panels.panels {
                    let on = panels.shown() == Some(plugin);
                    r.spawn((
                        button(panel.name.clone(), Act::ShowPanel(plugin.clone()), on, b),
                        Probe(format!("tab:{plugin}")),
                    ));
                }
            });
        }
        let shown = panels.shown().and_then(|p| panels.panels.get_key_value(p));
        if let Some((plugin, panel)) = shown {
            s.spawn((theme::panel(b), Probe(format!("plugin:{plugin}")))).with_children(|p| {
                // The installed name heads the panel; what the plugin calls it comes under it.
                p.spawn(theme::bold(&fonts, panel.name.clone(), 13.0, theme::TEXT));
                if panel.title != panel.name && !panel.title.is_empty() {
                    p.spawn(theme::text(panel.title.clone(), 12.0, theme::DIM));
                }
                for element in &panel.elements {
                    element_ui(p, plugin, element, &draft, b, &fonts, &mut images);
                }
            });
        }
    });
}

fn element_ui(
    p: &mut ChildSpawnerCommands,
    plugin: &str,
    element: &PanelElement,
    draft: &PluginDraft,
    b: Backdrop,
    fonts: &Fonts,
    images: &mut Option<ResMut<Assets<Image>>>,
) {
    let act =
        |id: &str, value: Option<String>| Act::Plugin { plugin: plugin.to_owned(), id: id.to_owned(), value };
    match element {
        PanelElement::Text(text) => drop(p.spawn(theme::text(text.clone(), 12.0, theme::TEXT))),
        PanelElement::Heading(text) => drop(p.spawn(theme::bold(fonts, text.clone(), 12.0, theme::ACCENT))),
        PanelElement::Button { id, label } => drop(p.spawn(button(label.clone(), act(id, None), false, b))),
        PanelElement::Input { id, placeholder, value } => {
            let typing = draft.at.as_ref().is_some_and(|(pl, i)| pl == plugin && i == id);
            let shown = match (typing, value.is_empty()) {
                (true, _) => format!("{}▏", draft.text),
                (false, true) => placeholder.clone(),
                (false, false) => value.clone(),
            };
            p.spawn(row()).with_children(|r| {
                let edit = Act::EditInput { plugin: plugin.to_owned(), id: id.clone(), value: value.clone() };
                r.spawn(button(shown, edit, typing, b));
                if typing {
                    r.spawn(button("OK", act(id, Some(draft.text.clone())), false, b));
                }
            });
        }
        PanelElement::Items(items) => {
            for item in items {
                p.spawn(theme::text(format!("• {item}"), 12.0, theme::TEXT));
            }
        }
        PanelElement::Progress { label, done, total } => {
            let share = if *total == 0 { 0.0 } else { (*done as f32 / *total as f32).clamp(0.0, 1.0) };
            p.spawn(theme::text(format!("{label} {:.0}%", share * 100.0), 11.0, theme::DIM));
            p.spawn((
                Node { width: Val::Px(240.0), height: Val::Px(6.0), ..default() },
                BackgroundColor(Color::srgba(1.0, 1.0, 1.0, 0.15)),
                Probe(format!("progress:{plugin}:{label}")),
            ))
            .with_children(|bar| {
                bar.spawn((
                    Node { width: Val::Percent(share * 100.0), height: Val::Percent(100.0), ..default() },
                    BackgroundColor(theme::SPEAKING),
                ));
            });
        }
        PanelElement::Qr(text) => {
            if let (Some(image), Some(images)) = (qr_image(text), images.as_mut()) {
                let size = Node { width: Val::Px(150.0), height: Val::Px(150.0), ..default() };
                p.spawn((ImageNode::new(images.add(image)), size, Probe(format!("qr:{plugin}"))));
            }
        }
        PanelElement::Image { width, height, rgba } => {
            let Some(images) = images.as_mut() else { return };
            let extent = Extent3d { width: *width, height: *height, depth_or_array_layers: 1 };
            let image = Image::new(
                extent,
                TextureDimension::D2,
                rgba.clone(),
                TextureFormat::Rgba8UnormSrgb,
                RenderAssetUsages::default(),
            );
            let size = Node { width: Val::Px(*width as f32), height: Val::Px(*height as f32), ..default() };
            p.spawn((ImageNode::new(images.add(image)), size));
        }
    }
}
