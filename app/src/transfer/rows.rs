//! What a row of the transfers database becomes: its manifest, its tree on disk, what it serves
//! to members, and what front ends are told of it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use partyline_protocol::content::{ContentId, Manifest, decode_piece_list};

use super::db::{Row, State};
use super::disk::Tree;
use super::serve::Served;
use crate::events::NodeEvent;

/// What is known of one piece of content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentInfo {
    pub id: ContentId,
    pub name: String,
    pub label: String,
    pub state: State,
    pub total: u64,
    pub files: u64,
    /// Where its top entry is (whole content), or is being written.
    pub path: Option<PathBuf>,
    /// The plugin that asked for the download.
    pub plugin: Option<String>,
    pub error: Option<String>,
}

pub(super) fn manifest_of(row: &Row) -> Result<Manifest> {
    let bytes = row.manifest.as_deref().context("no manifest yet")?;
    Ok(Manifest::decode(bytes, &row.id)?)
}

pub(super) fn tree_of(row: &Row) -> Result<Tree> {
    let root = row.root.clone().context("not on disk")?;
    Ok(Tree::new(root, manifest_of(row)?))
}

pub(super) fn served(row: &Row) -> Result<Served> {
    let tree = tree_of(row)?;
    let pieces = row.pieces.clone().context("no piece list")?;
    decode_piece_list(&pieces, tree.manifest())?;
    anyhow::ensure!(tree.top().exists(), "{} is gone", tree.top().display());
    Ok(Served { manifest: tree.manifest().encode(), pieces, tree })
}

pub(super) fn info(row: &Row) -> ContentInfo {
    let manifest = manifest_of(row).ok();
    ContentInfo {
        id: row.id,
        name: row.name.clone(),
        label: row.label.clone(),
        state: row.state,
        total: manifest.as_ref().map_or(0, Manifest::total),
        files: manifest.as_ref().map_or(0, |m| m.files().count() as u64),
        path: row.root.as_ref().map(|root| root.join(&row.name)),
        plugin: row.plugin.clone(),
        error: row.error.clone(),
    }
}

pub(super) fn shared_event(info: &ContentInfo) -> NodeEvent {
    NodeEvent::Shared {
        id: info.id,
        name: info.name.clone(),
        total: info.total,
        files: info.files,
        path: info.path.clone().unwrap_or_default(),
    }
}

pub(super) fn complete_event(row: &Row) -> NodeEvent {
    let info = info(row);
    NodeEvent::TransferComplete {
        id: row.id,
        name: info.name,
        label: info.label,
        total: info.total,
        files: info.files,
        path: info.path.unwrap_or_default(),
        plugin: info.plugin,
    }
}
