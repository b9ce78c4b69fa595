//! Looks: the bundled font (with the symbol glyphs the widgets use), colours that read over
//! bright and dark game scenes (light text with a dark outline on a dark translucent backdrop),
//! and small builders for the recurring pieces.

use bevy::prelude::*;
use bevy::text::FontSize;

/// DejaVu Sans: Latin, Greek, Cyrillic and the symbols used here (● ◉ ★ ⚙ ✕ ▲ ▼ ⧉).
const REGULAR: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");

pub(crate) const TEXT: Color = Color::srgb(0.96, 0.97, 1.0);
pub(crate) const DIM: Color = Color::srgb(0.70, 0.73, 0.80);
pub(crate) const SPEAKING: Color = Color::srgb(0.20, 0.90, 0.40);
pub(crate) const ON_AIR: Color = Color::srgb(0.95, 0.20, 0.25);
pub(crate) const WARN: Color = Color::srgb(1.0, 0.75, 0.20);
pub(crate) const ACCENT: Color = Color::srgb(0.35, 0.60, 1.0);
/// The outline drawn under every text: keeps it readable over white snow and black caves.
pub(crate) const OUTLINE: Color = Color::srgba(0.0, 0.0, 0.0, 0.9);

#[derive(Resource, Clone)]
pub(crate) struct Fonts {
    pub(crate) bold: Handle<Font>,
}

/// The backdrop of panels, scaled by the user's opacity setting.
#[derive(Resource, Clone, Copy)]
pub(crate) struct Backdrop(pub(crate) f32);

impl Backdrop {
    pub(crate) fn panel(self) -> BackgroundColor {
        BackgroundColor(Color::srgba(0.05, 0.06, 0.09, 0.78 * self.0))
    }

    pub(crate) fn button(self, active: bool) -> BackgroundColor {
        let base =
            if active { Color::srgba(0.25, 0.45, 0.85, 0.9) } else { Color::srgba(0.2, 0.22, 0.28, 0.85) };
        BackgroundColor(base.with_alpha(base.alpha() * self.0.max(0.6)))
    }
}

pub(crate) struct ThemePlugin;

impl Plugin for ThemePlugin {
    fn build(&self, app: &mut App) {
        let mut fonts = app.world_mut().resource_mut::<Assets<Font>>();
        // Replacing the default font makes every text use ours, with no handle to pass around.
        let _ = fonts.insert(&Handle::<Font>::default(), Font::from_bytes(REGULAR.to_vec()));
        let bold = fonts.add(Font::from_bytes(BOLD.to_vec()));
        app.insert_resource(Fonts { bold });
    }
}

/// Text of this size and colour, outlined.
pub(crate) fn text(value: impl Into<String>, size: f32, color: Color) -> impl Bundle {
    (
        Text::new(value),
        TextFont { font_size: FontSize::Px(size), ..default() },
        TextColor(color),
        TextShadow { offset: Vec2::new(1.0, 1.0), color: OUTLINE },
    )
}

/// Bold text (names, headings), outlined.
pub(crate) fn bold(fonts: &Fonts, value: impl Into<String>, size: f32, color: Color) -> impl Bundle {
    (
        Text::new(value),
        TextFont { font: fonts.bold.clone().into(), font_size: FontSize::Px(size), ..default() },
        TextColor(color),
        TextShadow { offset: Vec2::new(1.0, 1.0), color: OUTLINE },
    )
}

/// A rounded panel with the backdrop.
pub(crate) fn panel(backdrop: Backdrop) -> impl Bundle {
    (
        Node {
            flex_direction: FlexDirection::Column,
            padding: UiRect::all(Val::Px(6.0)),
            row_gap: Val::Px(3.0),
            border_radius: BorderRadius::all(Val::Px(6.0)),
            ..default()
        },
        backdrop.panel(),
    )
}
