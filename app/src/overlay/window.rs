//! The overlay's window: transparent, borderless, always on top, never focused when it appears,
//! anchored to a corner or edge of the primary monitor, click-through unless interactive.
//! Click-through is the window's X11 input shape: winit sets it empty when the cursor hit test
//! is off and back to the whole window when it is on. Staying on top and out of the game's
//! focus under a window manager is [`super::x11`]'s: the window is created hidden for it.

use bevy::prelude::*;
use bevy::window::{
    CompositeAlphaMode, CursorOptions, Monitor, PrimaryMonitor, PrimaryWindow, WindowLevel, WindowMoved,
    WindowPlugin, WindowPosition, WindowResolution,
};

use super::theme::Backdrop;
use super::x11::{X11Plugin, XLink};
use super::{Interactive, SettingsFile, Toasts};
use crate::config::{Anchor, OverlaySettings};

pub(crate) fn plugin(settings: &OverlaySettings) -> WindowPlugin {
    WindowPlugin {
        primary_window: Some(Window {
            title: "Partyline".into(),
            name: Some("partyline-overlay".into()),
            transparent: true,
            decorations: false,
            resizable: false,
            focused: false,
            visible: false,
            skip_taskbar: true,
            window_level: WindowLevel::AlwaysOnTop,
            resolution: WindowResolution::new(settings.size[0], settings.size[1])
                .with_scale_factor_override(1.0),
            position: WindowPosition::At(IVec2::new(settings.margin[0], settings.margin[1])),
            composite_alpha_mode: CompositeAlphaMode::PreMultiplied,
            ..default()
        }),
        primary_cursor_options: Some(CursorOptions { hit_test: false, ..default() }),
        ..default()
    }
}

pub(crate) struct OverlayWindowPlugin;

impl Plugin for OverlayWindowPlugin {
    fn build(&self, app: &mut App) {
        let opacity = app.world().get_resource::<SettingsFile>().map_or(0.8, |f| f.settings.overlay.opacity);
        app.insert_resource(Backdrop(opacity))
            .add_plugins(X11Plugin)
            .add_systems(Update, (apply_interactive, remember_moves, place, apply_looks).chain());
    }
}

/// Moves the window with the pointer, as a title bar would: by hand under X11 (no window manager
/// moves an override-redirect window), else handed to the window manager.
pub(crate) fn start_move(
    _: On<Pointer<Press>>,
    link: Option<ResMut<XLink>>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
) {
    match link {
        Some(mut link) => link.start_drag(),
        None => {
            if let Ok(mut window) = windows.single_mut() {
                window.start_drag_move();
            }
        }
    }
}

/// Wherever the player moved the window becomes its margin from its anchor, saved once the window
/// has been still for a second.
fn remember_moves(
    mut moved: MessageReader<WindowMoved>,
    primary: Query<(), With<PrimaryWindow>>,
    monitors: Query<&Monitor, With<PrimaryMonitor>>,
    file: Option<ResMut<SettingsFile>>,
    mut toasts: ResMut<Toasts>,
    time: Res<Time>,
    mut save_at: Local<Option<std::time::Duration>>,
) {
    let (Some(mut file), Ok(monitor)) = (file, monitors.single()) else { return };
    let now = time.elapsed();
    if let Some(m) = moved.read().filter(|m| primary.contains(m.window)).last() {
        let o = &file.settings.overlay;
        let margin = margin_for(o.anchor, m.position, UVec2::from(o.size), screen(monitor)).to_array();
        if margin != o.margin {
            file.settings.overlay.margin = margin;
            *save_at = Some(now + std::time::Duration::from_secs(1));
        }
    }
    if save_at.is_some_and(|at| now >= at) {
        *save_at = None;
        super::actions::save(&file, &mut toasts, now);
    }
}

/// Interactive: the window takes the pointer, and the keyboard (to type in chat, or set a key)
/// at once. Not interactive: clicks go through to the game, and the keyboard goes back to it.
fn apply_interactive(
    interactive: Res<Interactive>,
    mut link: Option<ResMut<XLink>>,
    mut windows: Query<(&mut CursorOptions, &mut Window), With<PrimaryWindow>>,
) {
    if !interactive.is_changed() {
        return;
    }
    for (mut cursor, mut window) in &mut windows {
        cursor.hit_test = interactive.0;
        match (&mut link, interactive.0) {
            (Some(link), true) => link.take_focus(),
            (Some(link), false) => link.give_back(),
            (None, true) => window.focused = true,
            (None, false) => {}
        }
    }
}

/// Keeps the window at its anchor: when the settings change, and once the monitor is known.
fn place(
    file: Option<Res<SettingsFile>>,
    monitors: Query<&Monitor, With<PrimaryMonitor>>,
    new_monitor: Query<(), Added<PrimaryMonitor>>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
) {
    let Some(file) = file else { return };
    if !file.is_changed() && new_monitor.is_empty() {
        return;
    }
    let (Ok(monitor), Ok(mut window)) = (monitors.single(), windows.single_mut()) else { return };
    let o = &file.settings.overlay;
    let at = anchored(o.anchor, IVec2::from(o.margin), UVec2::from(o.size), screen(monitor));
    if window.position != WindowPosition::At(at) {
        window.position = WindowPosition::At(at);
    }
    if window.resolution.physical_width() != o.size[0] || window.resolution.physical_height() != o.size[1] {
        window.resolution.set_physical_resolution(o.size[0], o.size[1]);
    }
}

fn apply_looks(file: Option<Res<SettingsFile>>, mut backdrop: ResMut<Backdrop>, mut scale: ResMut<UiScale>) {
    let Some(file) = file.filter(|f| f.is_changed()) else { return };
    let o = &file.settings.overlay;
    if backdrop.0 != o.opacity {
        backdrop.0 = o.opacity;
    }
    if scale.0 != o.scale {
        scale.0 = o.scale;
    }
}

fn screen(monitor: &Monitor) -> IRect {
    let size = IVec2::new(monitor.physical_width as i32, monitor.physical_height as i32);
    IRect::from_corners(monitor.physical_position, monitor.physical_position + size)
}

/// Where the window's top-left corner goes for this anchor (a corner, an edge's middle),
/// `margin` pixels in from it.
pub(crate) fn anchored(anchor: Anchor, margin: IVec2, size: UVec2, screen: IRect) -> IVec2 {
    let size = size.as_ivec2();
    let (h, v) = anchor.sides();
    let along = |side: i32, lo: i32, hi: i32, len: i32, m: i32| match side {
        -1 => lo + m,
        1 => hi - len - m,
        _ => lo + (hi - lo - len) / 2 + m,
    };
    IVec2::new(
        along(h, screen.min.x, screen.max.x, size.x, margin.x),
        along(v, screen.min.y, screen.max.y, size.y, margin.y),
    )
}

/// The margin that puts the window's top-left corner at `at` for this anchor: the inverse of
/// [`anchored`].
pub(crate) fn margin_for(anchor: Anchor, at: IVec2, size: UVec2, screen: IRect) -> IVec2 {
    let size = size.as_ivec2();
    let (h, v) = anchor.sides();
    let along = |side: i32, lo: i32, hi: i32, len: i32, at: i32| match side {
        -1 => at - lo,
        1 => hi - len - at,
        _ => at - (lo + (hi - lo - len) / 2),
    };
    IVec2::new(
        along(h, screen.min.x, screen.max.x, size.x, at.x),
        along(v, screen.min.y, screen.max.y, size.y, at.y),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_place_the_window_inside_the_screen() {
        let screen = IRect::new(0, 0, 1920, 1080);
        let (m, s) = (IVec2::new(10, 20), UVec2::new(300, 400));
        assert_eq!(anchored(Anchor::TopLeft, m, s, screen), IVec2::new(10, 20));
        assert_eq!(anchored(Anchor::BottomRight, m, s, screen), IVec2::new(1920 - 300 - 10, 1080 - 400 - 20));
        assert_eq!(anchored(Anchor::Top, IVec2::ZERO, s, screen), IVec2::new(810, 0));
        assert_eq!(anchored(Anchor::Left, IVec2::ZERO, s, screen), IVec2::new(0, 340));
        // A second monitor to the right.
        let right = IRect::new(1920, 0, 3840, 1080);
        assert_eq!(anchored(Anchor::TopRight, IVec2::ZERO, s, right), IVec2::new(3840 - 300, 0));
    }

    #[test]
    fn a_moved_window_keeps_its_anchor_with_a_new_margin() {
        let screen = IRect::new(0, 0, 1920, 1080);
        let s = UVec2::new(300, 401);
        for anchor in Anchor::ALL {
            for at in [IVec2::new(0, 0), IVec2::new(777, 333), IVec2::new(1620, 679)] {
                let margin = margin_for(anchor, at, s, screen);
                assert_eq!(anchored(anchor, margin, s, screen), at, "{anchor} {at}");
            }
        }
        // Dragged 100 px left and down from the top-right corner: 100 px in from the right.
        assert_eq!(margin_for(Anchor::TopRight, IVec2::new(1520, 100), s, screen), IVec2::new(100, 100));
    }
}
