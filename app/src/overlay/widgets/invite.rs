//! The party's link: as text, a button that copies it, and a QR code a phone can scan.

use bevy::asset::RenderAssetUsages;
use bevy::image::ImageSampler;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};

use super::{Slot, button, drawer_needs_drawing, redraw};
use crate::overlay::actions::Act;
use crate::overlay::probe::Probe;
use crate::overlay::theme::{self, Backdrop};
use crate::overlay::{Drawer, Party};

/// Quiet zone around the code, in modules, as scanners expect.
const QUIET: usize = 4;
/// Pixels per module.
const SCALE: usize = 3;

pub(crate) struct InvitePlugin;

impl Plugin for InvitePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, draw.after(crate::overlay::actions::carry_out));
    }
}

fn draw(
    mut commands: Commands,
    slots: Query<(Entity, &Slot)>,
    party: Res<Party>,
    drawer: Res<Drawer>,
    backdrop: Res<Backdrop>,
    mut images: ResMut<Assets<Image>>,
    mut shown: Local<Option<(String, Handle<Image>)>>,
) {
    let changed = party.is_changed() || drawer.is_changed() || backdrop.is_changed();
    if !drawer_needs_drawing(&mut commands, &slots, *drawer, Drawer::Invite, changed) {
        return;
    }
    let b = *backdrop;
    // The code is made again only when the link changes.
    let qr = party.link.as_ref().and_then(|link| match &*shown {
        Some((l, handle)) if l == link => Some(handle.clone()),
        _ => {
            let image = qr_image(link)?;
            let handle = images.add(image);
            *shown = Some((link.clone(), handle.clone()));
            Some(handle)
        }
    });
    redraw(&mut commands, &slots, Slot::Drawer(Drawer::Invite), |s| {
        s.spawn((theme::panel(b), Probe("invite".into()))).with_children(|p| match (&party.link, qr) {
            (Some(link), Some(qr)) => {
                p.spawn(theme::text("Invite friends: share this link", 12.0, theme::TEXT));
                p.spawn((
                    theme::text(link.clone(), 9.0, theme::DIM),
                    Node { max_width: Val::Px(300.0), ..default() },
                ));
                p.spawn(button("Copy link", Act::CopyLink, false, b));
                p.spawn((
                    ImageNode::new(qr),
                    Node { width: Val::Px(180.0), height: Val::Px(180.0), ..default() },
                    Probe("qr".into()),
                ));
            }
            _ => {
                p.spawn(theme::text("Only the party's owner can invite.", 12.0, theme::DIM));
            }
        });
    });
}

/// The link as a QR code: black modules on white, with the quiet zone. `None` if it is too
/// long for a QR code.
pub(crate) fn qr_image(text: &str) -> Option<Image> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L).ok()?;
    let modules = code.width();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side * 4];
    for (i, color) in code.to_colors().into_iter().enumerate() {
        if color != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = ((i % modules + QUIET) * SCALE, (i / modules + QUIET) * SCALE);
        for y in my..my + SCALE {
            for x in mx..mx + SCALE {
                let o = (y * side + x) * 4;
                pixels[o..o + 3].fill(0);
            }
        }
    }
    let size = Extent3d { width: side as u32, height: side as u32, depth_or_array_layers: 1 };
    let mut image = Image::new(
        size,
        TextureDimension::D2,
        pixels,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    );
    image.sampler = ImageSampler::nearest();
    Some(image)
}
