//! What the transfer engine remembers, in SQLite (`transfers.sqlite3` in the data directory):
//! every piece of content this Partyline shares, is downloading or has downloaded, with its
//! manifest and piece list, where it is on disk, and for downloads which pieces were verified and
//! written (a bitmap: a restart checks those pieces on disk again before trusting them).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use partyline_protocol::ContentId;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS content (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    manifest BLOB,
    pieces BLOB,
    root TEXT,
    fingerprint BLOB,
    have BLOB,
    plugin TEXT,
    label TEXT NOT NULL DEFAULT '',
    error TEXT,
    updated_ms INTEGER NOT NULL
);
";

/// Where a piece of content is in its life: the `state` column, `ContentInfo::state`, and
/// `"state"` in `partyline transfers --json`, named by its serde derive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A user's own files, shared where they are.
    Shared,
    Downloading,
    /// Downloaded, verified, waiting in the transfer folder to be placed.
    Stored,
    /// Downloaded and moved into the library or downloads.
    Placed,
    Failed,
}

impl State {
    fn name(self) -> String {
        crate::choice::name(&self)
    }

    /// A state the database does not know (written by a later version) counts as failed.
    fn parse(s: &str) -> Self {
        crate::choice::parse(s).unwrap_or(Self::Failed)
    }

    /// Whether the content is whole on disk (and can be served).
    pub(crate) fn whole(self) -> bool {
        matches!(self, Self::Shared | Self::Stored | Self::Placed)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) id: ContentId,
    pub(crate) name: String,
    pub(crate) state: State,
    pub(crate) manifest: Option<Vec<u8>>,
    pub(crate) pieces: Option<Vec<u8>>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) have: Option<Vec<u8>>,
    pub(crate) plugin: Option<String>,
    pub(crate) label: String,
    pub(crate) error: Option<String>,
}

pub(crate) struct Db {
    db: Connection,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn path_text(p: &Path) -> Result<&str> {
    p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))
}

const COLUMNS: &str = "id, name, state, manifest, pieces, root, have, plugin, label, error";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let id: Vec<u8> = r.get(0)?;
    let id = ContentId(id.try_into().unwrap_or([0; 32]));
    let state: String = r.get(2)?;
    let root: Option<String> = r.get(5)?;
    Ok(Row {
        id,
        name: r.get(1)?,
        state: State::parse(&state),
        manifest: r.get(3)?,
        pieces: r.get(4)?,
        root: root.map(PathBuf::from),
        have: r.get(6)?,
        plugin: r.get(7)?,
        label: r.get(8)?,
        error: r.get(9)?,
    })
}

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let db = crate::paths::private_database(path)?;
        // The bitmaps are hints a restart verifies; the rest may lose its last moments to a
        // power cut (WAL keeps it consistent).
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(SCHEMA).context("cannot set up the transfers database")?;
        Ok(Self { db })
    }

    pub(crate) fn all(&self) -> Result<Vec<Row>> {
        let mut stmt = self.db.prepare(&format!("SELECT {COLUMNS} FROM content ORDER BY updated_ms"))?;
        let rows = stmt.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub(crate) fn get(&self, id: &ContentId) -> Result<Option<Row>> {
        Ok(self
            .db
            .query_row(&format!("SELECT {COLUMNS} FROM content WHERE id = ?1"), params![&id.0[..]], row)
            .optional()?)
    }

    /// Content shared from `root`/`name` that looked like `fingerprint` when it was hashed.
    pub(crate) fn shared_at(&self, root: &Path, name: &str, fingerprint: &[u8]) -> Result<Option<Row>> {
        Ok(self
            .db
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM content WHERE state = 'shared' AND root = ?1 AND name = ?2 AND fingerprint = ?3"
                ),
                params![path_text(root)?, name, fingerprint],
                row,
            )
            .optional()?)
    }

    /// Records a user's files as shared content (replacing what was known of the same id).
    pub(crate) fn put_shared(
        &mut self,
        id: &ContentId,
        name: &str,
        manifest: &[u8],
        pieces: &[u8],
        root: &Path,
        fingerprint: &[u8],
    ) -> Result<()> {
        self.db.execute(
            "INSERT INTO content (id, name, state, manifest, pieces, root, fingerprint, updated_ms)
             VALUES (?1, ?2, 'shared', ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET state = 'shared', manifest = excluded.manifest,
                pieces = excluded.pieces, root = excluded.root, fingerprint = excluded.fingerprint,
                have = NULL, error = NULL, updated_ms = excluded.updated_ms",
            params![&id.0[..], name, manifest, pieces, path_text(root)?, fingerprint, now_ms()],
        )?;
        Ok(())
    }

    /// Starts (or restarts) downloading `id` for `plugin`; false if it is whole here already.
    pub(crate) fn start_download(
        &mut self,
        id: &ContentId,
        label: &str,
        plugin: Option<&str>,
    ) -> Result<bool> {
        if self.get(id)?.is_some_and(|r| r.state.whole()) {
            return Ok(false);
        }
        self.db.execute(
            "INSERT INTO content (id, name, state, plugin, label, updated_ms)
             VALUES (?1, ?2, 'downloading', ?3, ?2, ?4)
             ON CONFLICT (id) DO UPDATE SET state = 'downloading', plugin = excluded.plugin,
                label = excluded.label, error = NULL, updated_ms = excluded.updated_ms",
            params![&id.0[..], label, plugin, now_ms()],
        )?;
        Ok(true)
    }

    /// The manifest and piece list of a download, checked, and where it is being written.
    pub(crate) fn set_manifest(
        &mut self,
        id: &ContentId,
        name: &str,
        manifest: &[u8],
        pieces: &[u8],
        root: &Path,
    ) -> Result<()> {
        self.db.execute(
            "UPDATE content SET name = ?2, manifest = ?3, pieces = ?4, root = ?5, updated_ms = ?6 WHERE id = ?1",
            params![&id.0[..], name, manifest, pieces, path_text(root)?, now_ms()],
        )?;
        Ok(())
    }

    /// The pieces verified and synced to disk so far.
    pub(crate) fn set_have(&mut self, id: &ContentId, have: &[u8]) -> Result<()> {
        self.db.execute("UPDATE content SET have = ?2 WHERE id = ?1", params![&id.0[..], have])?;
        Ok(())
    }

    pub(crate) fn set_state(&mut self, id: &ContentId, state: State, root: Option<&Path>) -> Result<()> {
        let root = root.map(path_text).transpose()?;
        self.db.execute(
            "UPDATE content SET state = ?2, root = COALESCE(?3, root), error = NULL, updated_ms = ?4 WHERE id = ?1",
            params![&id.0[..], state.name(), root, now_ms()],
        )?;
        Ok(())
    }

    pub(crate) fn fail(&mut self, id: &ContentId, error: &str) -> Result<()> {
        self.db.execute(
            "UPDATE content SET state = 'failed', error = ?2, updated_ms = ?3 WHERE id = ?1",
            params![&id.0[..], error, now_ms()],
        )?;
        Ok(())
    }
}

/// Which pieces of a download are verified and on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bitmap {
    bits: Vec<u8>,
    len: u64,
}

impl Bitmap {
    pub(crate) fn new(len: u64) -> Self {
        Self { bits: vec![0; len.div_ceil(8) as usize], len }
    }

    /// From saved bytes; anything that does not fit `len` pieces starts empty.
    pub(crate) fn from_bytes(bytes: Option<&[u8]>, len: u64) -> Self {
        match bytes {
            Some(b) if b.len() as u64 == len.div_ceil(8) => Self { bits: b.to_vec(), len },
            _ => Self::new(len),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bits
    }

    pub(crate) fn get(&self, i: u64) -> bool {
        i < self.len && self.bits[(i / 8) as usize] & (1 << (i % 8)) != 0
    }

    pub(crate) fn set(&mut self, i: u64, on: bool) {
        if i < self.len {
            let (byte, bit) = ((i / 8) as usize, 1u8 << (i % 8));
            if on {
                self.bits[byte] |= bit;
            } else {
                self.bits[byte] &= !bit;
            }
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.bits.iter().map(|b| u64::from(b.count_ones())).sum()
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn missing(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len).filter(|&i| !self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_remembered_with_their_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let id = ContentId([3; 32]);
        {
            let mut db = Db::open(&path).unwrap();
            assert!(db.start_download(&id, "Game", Some("game-store")).unwrap());
            db.set_manifest(&id, "game", b"m", b"p", dir.path()).unwrap();
            let mut have = Bitmap::new(10);
            have.set(3, true);
            have.set(9, true);
            db.set_have(&id, have.bytes()).unwrap();
        }
        let mut db = Db::open(&path).unwrap();
        let row = db.get(&id).unwrap().unwrap();
        assert_eq!((row.state, row.name.as_str(), row.label.as_str()), (State::Downloading, "game", "Game"));
        let have = Bitmap::from_bytes(row.have.as_deref(), 10);
        assert_eq!(have.missing().collect::<Vec<_>>(), [0, 1, 2, 4, 5, 6, 7, 8]);
        assert_eq!(have.count(), 2);
        db.set_state(&id, State::Stored, None).unwrap();
        assert!(!db.start_download(&id, "Game", None).unwrap(), "whole already");
        db.put_shared(&id, "game", b"m", b"p", dir.path(), b"fp").unwrap();
        assert!(db.shared_at(dir.path(), "game", b"fp").unwrap().is_some());
        assert!(db.shared_at(dir.path(), "game", b"other").unwrap().is_none());
    }
}
