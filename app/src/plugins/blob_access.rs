//! What a plugin's `blobs` calls reach: the transfer engine, the paths the user handed it, and
//! the library and downloads folders; slow work runs on the runtime and answers later.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::bindings::partyline::plugin::types::{BlobAnswer, Content, Event};
use super::fetch::Deliver;
use crate::transfer::{ContentInfo, Transfers};

/// Shares and places one plugin may have under way.
const IN_FLIGHT: usize = 4;

/// Paths the user handed to a plugin (a path typed into its panel, or given to a command like
/// `/share PATH`): the plugin may share what is under them. Written by the plugin host, read by
/// the plugin's calls.
#[derive(Clone, Default)]
pub(crate) struct Handed(Arc<Mutex<Vec<PathBuf>>>);

impl Handed {
    /// Hands `path` (if it exists) to the plugin.
    pub(crate) fn hand(&self, path: &Path) {
        if let Ok(path) = path.canonicalize() {
            let mut handed = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if !handed.contains(&path) {
                handed.push(path);
            }
        }
    }

    /// Whether `path` (canonical) is one handed over, or inside one.
    pub(crate) fn covers(&self, path: &Path) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|h| path.starts_with(h))
    }
}

/// What a plugin's `blobs` calls reach.
pub(crate) struct BlobAccess {
    pub(crate) transfers: Transfers,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) handed: Handed,
    pub(crate) library: PathBuf,
    pub(crate) downloads: PathBuf,
    pub(crate) deliver: Deliver,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    next: u64,
}

impl BlobAccess {
    pub(crate) fn new(
        transfers: Transfers,
        runtime: tokio::runtime::Handle,
        handed: Handed,
        dirs: &crate::paths::Dirs,
        deliver: Deliver,
    ) -> Self {
        Self {
            transfers,
            runtime,
            handed,
            library: dirs.library(),
            downloads: dirs.downloads(),
            deliver,
            in_flight: Arc::default(),
            next: 0,
        }
    }

    /// Runs `work` on the runtime; its outcome comes back as a `blob` event with the returned id.
    pub(super) fn later(
        &mut self,
        work: impl Future<Output = anyhow::Result<Content>> + Send + 'static,
    ) -> Result<u64, String> {
        use std::sync::atomic::Ordering;
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(format!("at most {IN_FLIGHT} shares and places at once"));
        }
        self.next += 1;
        let (request, deliver, in_flight) = (self.next, self.deliver.clone(), self.in_flight.clone());
        self.runtime.spawn(async move {
            let outcome = work.await.map_err(|e| format!("{e:#}"));
            in_flight.fetch_sub(1, Ordering::AcqRel);
            deliver(Event::Blob(BlobAnswer { request, outcome }));
        });
        Ok(request)
    }

    /// Waits for a quick answer from the engine (these calls do not wait on disks or peers).
    pub(super) fn now<T>(&self, work: impl Future<Output = anyhow::Result<T>>) -> Result<T, String> {
        self.runtime.block_on(work).map_err(|e| format!("{e:#}"))
    }
}

pub(crate) fn content(info: &ContentInfo) -> Content {
    Content {
        id: info.id.to_string(),
        name: info.name.clone(),
        size: info.total,
        files: info.files,
        path: info.path.as_ref().map(|p| p.display().to_string()),
    }
}
