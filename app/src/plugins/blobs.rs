//! The `blobs` host functions: plugins share, download and place content through the transfer
//! engine. A plugin may share only paths the user handed it (see `blob_access::Handed`) or games in the
//! library, and list only what it downloaded and the library; content goes only into the library
//! and downloads. Slow work
//! (hashing, moving) answers later as a `blob` event in the plugin's queue.

use std::path::PathBuf;

use partyline_protocol::ContentId;

use super::bindings::partyline::plugin::blobs::{self, Destination};
use super::bindings::partyline::plugin::types::Content;
use super::blob_access::{BlobAccess, content};
use super::host_api::HostState;
use super::permission::Permission;
use crate::transfer::{ContentInfo, State};

fn parse_id(id: &str) -> Result<ContentId, String> {
    id.parse().map_err(|e| format!("{e}"))
}

impl HostState {
    fn blobs(&mut self) -> Result<&mut BlobAccess, String> {
        self.allow(&Permission::Blobs)?;
        self.blob_access.as_mut().ok_or_else(|| "transfers are not available here".to_owned())
    }
}

impl blobs::Host for HostState {
    fn share(&mut self, path: String) -> Result<u64, String> {
        let access = self.blobs()?;
        let path = PathBuf::from(&path).canonicalize().map_err(|e| format!("cannot find {path}: {e}"))?;
        // Games in the library are there to be shared; what members sent the user (downloads) is
        // shared only once the user hands it over, as anything else here.
        if !(access.handed.covers(&path) || path.starts_with(&access.library)) {
            return Err(format!(
                "{} was not handed to this plugin: share it with a command (/share PATH) or type it into the panel",
                path.display()
            ));
        }
        let transfers = access.transfers.clone();
        access.later(async move { transfers.share(path).await.map(|c| content(&c)) })
    }

    fn get(&mut self, id: String, label: String) -> Result<(), String> {
        let plugin = self.plugin.clone();
        let access = self.blobs()?;
        let id = parse_id(&id)?;
        let label: String = label.chars().take(200).collect();
        let transfers = access.transfers.clone();
        access.now(async move { transfers.get(id, label, Some(plugin)).await })
    }

    fn cancel(&mut self, id: String) -> Result<(), String> {
        let access = self.blobs()?;
        let id = parse_id(&id)?;
        let transfers = access.transfers.clone();
        access.now(async move { transfers.cancel(id).await })
    }

    fn place(&mut self, id: String, to: Destination) -> Result<u64, String> {
        let access = self.blobs()?;
        let id = parse_id(&id)?;
        let dest = match to {
            Destination::Library => access.library.clone(),
            Destination::Downloads => access.downloads.clone(),
        };
        let transfers = access.transfers.clone();
        access.later(async move {
            transfers.place(id, dest).await?;
            let list = transfers.list().await?;
            let placed = list.into_iter().find(|c| c.id == id);
            placed.map(|c| content(&c)).ok_or_else(|| anyhow::anyhow!("placed content vanished"))
        })
    }

    /// What this plugin downloaded, and the games in the library: not what came to the user
    /// through other plugins (files members sent), nor what the user shared by hand.
    fn inspect(&mut self, id: String, member: String) -> Result<u64, String> {
        let access = self.blobs()?;
        let id = parse_id(&id)?;
        let peer: libp2p::PeerId = member.parse().map_err(|e| format!("{member:?} is not a peer id: {e}"))?;
        let transfers = access.transfers.clone();
        access.later(async move {
            let manifest = transfers.inspect(id, peer).await?;
            // Not here: no path.
            Ok(Content {
                id: id.to_string(),
                name: manifest.name().to_owned(),
                size: manifest.total(),
                files: manifest.files().count() as u64,
                path: None,
            })
        })
    }

    fn list(&mut self) -> Result<Vec<Content>, String> {
        let plugin = self.plugin.clone();
        let access = self.blobs()?;
        let transfers = access.transfers.clone();
        let library = access.library.clone();
        let list = access.now(async move { transfers.list().await })?;
        let visible = |c: &&ContentInfo| {
            c.plugin.as_deref() == Some(plugin.as_str())
                || c.path.as_ref().is_some_and(|p| p.starts_with(&library))
        };
        Ok(list.iter().filter(|c| c.state != State::Failed).filter(visible).map(content).collect())
    }
}
