//! Screenshots on request (local IPC): the window drawn into a PNG, and beside it
//! `<png>.json` with where each text and each named region ([`Probe`]) is, in pixels, and the
//! number of frames drawn so far, so that tests, benchmarks and bug reports can check what is on
//! screen and how often it is drawn.

use std::path::PathBuf;

use bevy::diagnostic::FrameCount;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::ui::{ComputedNode, UiGlobalTransform};
use bevy::window::RequestRedraw;
use serde_json::json;

#[derive(Message, Debug, Clone)]
pub(crate) struct TakeScreenshot(pub(crate) PathBuf);

/// A region tests look for by name, e.g. `speaking:alice`, `qr`, `on-air`.
#[derive(Component, Debug, Clone)]
pub(crate) struct Probe(pub(crate) String);

/// Frames to let layout settle after a request before capturing.
const SETTLE_FRAMES: u32 = 3;
/// Frames to keep drawing after capturing, while the image is read back and saved.
const SAVE_FRAMES: u32 = 10;

#[derive(Resource, Default)]
struct Pending {
    path: Option<PathBuf>,
    frames: u32,
}

pub(crate) struct ProbePlugin;

impl Plugin for ProbePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Pending>().add_systems(Last, capture);
    }
}

fn capture(
    mut requests: MessageReader<TakeScreenshot>,
    mut pending: ResMut<Pending>,
    mut commands: Commands,
    texts: Query<(&Text, &ComputedNode, &UiGlobalTransform, &InheritedVisibility)>,
    probes: Query<(&Probe, &ComputedNode, &UiGlobalTransform, &InheritedVisibility)>,
    mut redraw: MessageWriter<RequestRedraw>,
    frame: Option<Res<FrameCount>>,
) {
    if let Some(TakeScreenshot(path)) = requests.read().last() {
        pending.path = Some(path.clone());
        pending.frames = SETTLE_FRAMES + SAVE_FRAMES;
    }
    if pending.frames == 0 {
        return;
    }
    pending.frames -= 1;
    redraw.write(RequestRedraw);
    if pending.frames != SAVE_FRAMES {
        return;
    }
    let Some(path) = pending.path.take() else { return };
    let rect = |node: &ComputedNode, at: &UiGlobalTransform| {
        let size = node.size();
        let min = at.translation - size / 2.0;
        json!([min.x.round(), min.y.round(), size.x.round(), size.y.round()])
    };
    let texts: Vec<_> = texts
        .iter()
        .filter(|(t, _, _, v)| v.get() && !t.0.is_empty())
        .map(|(t, n, at, _)| json!({"text": t.0, "rect": rect(n, at)}))
        .collect();
    let regions: Vec<_> = probes
        .iter()
        .filter(|(_, _, _, v)| v.get())
        .map(|(p, n, at, _)| json!({"name": p.0, "rect": rect(n, at)}))
        .collect();
    let frame = frame.map(|f| f.0);
    let layout = json!({"texts": texts, "regions": regions, "frame": frame});
    let json_path = PathBuf::from(format!("{}.json", path.display()));
    if let Err(e) = std::fs::write(&json_path, layout.to_string()) {
        tracing::warn!("cannot write {}: {e}", json_path.display());
    }
    commands
        .spawn(Screenshot::primary_window())
        .observe(move |shot: On<ScreenshotCaptured>| save(&shot.image, &path));
}

/// Writes the PNG beside its final name, then renames it: readers never see half a file.
fn save(image: &Image, path: &std::path::Path) {
    let tmp = path.with_extension("partial.png");
    let result = image
        .clone()
        .try_into_dynamic()
        .map_err(|e| e.to_string())
        .and_then(|img| img.to_rgba8().save(&tmp).map_err(|e| e.to_string()))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
    if let Err(e) = result {
        tracing::warn!("cannot save the screenshot {}: {e}", path.display());
    }
}
