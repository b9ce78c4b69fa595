//! Turning a file or folder on disk into content: its manifest (names, sizes, modes, symlinks) and
//! the hash of every piece. A fingerprint of what the files look like (sizes, modification times,
//! inodes) lets a second share of the same unchanged folder skip the hashing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use partyline_protocol::content::{
    Entry, EntryKind, MAX_ENTRIES, MODE_BITS, Manifest, PieceHash, piece_hash, piece_list_root,
    piece_size_for,
};

use super::disk::Tree;

/// A file or folder made into content.
#[derive(Clone, Debug)]
pub(crate) struct Indexed {
    pub(crate) manifest: Manifest,
    pub(crate) pieces: Vec<PieceHash>,
    /// The folder the top entry is in.
    pub(crate) root: PathBuf,
    pub(crate) fingerprint: [u8; 32],
}

/// What the tree at `path` looks like, without reading any file.
pub(crate) struct Scan {
    pub(crate) root: PathBuf,
    pub(crate) entries: Vec<Entry>,
    pub(crate) fingerprint: [u8; 32],
}

/// Walks `path` (a file or a folder; a symlink given here is followed). Symlinks inside must
/// stay inside; other special files are refused.
pub(crate) fn scan(path: &Path) -> Result<Scan> {
    let path = path.canonicalize().with_context(|| format!("cannot find {}", path.display()))?;
    let name = utf8_name(&path)?;
    let root = path.parent().context("cannot share the root folder")?.to_owned();
    let mut entries = Vec::new();
    let mut stamps = blake3::Hasher::new();
    let mut stack = vec![(path.clone(), name)];
    while let Some((at, rel)) = stack.pop() {
        let meta = std::fs::symlink_metadata(&at).with_context(|| format!("cannot read {}", at.display()))?;
        stamps.update(rel.as_bytes());
        for n in
            [meta.len(), meta.mtime() as u64, meta.mtime_nsec() as u64, meta.ino(), u64::from(meta.mode())]
        {
            stamps.update(&n.to_le_bytes());
        }
        let mode = meta.permissions().mode() & MODE_BITS;
        let kind = if meta.is_dir() {
            for child in std::fs::read_dir(&at).with_context(|| format!("cannot list {}", at.display()))? {
                let child = child?.path();
                let child_name = utf8_name(&child)?;
                stack.push((child, format!("{rel}/{child_name}")));
            }
            EntryKind::Dir { mode }
        } else if meta.is_file() {
            EntryKind::File { size: meta.len(), mode }
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&at)?;
            let target = target
                .to_str()
                .with_context(|| format!("{}: the symlink's target is not UTF-8", at.display()))?;
            EntryKind::Symlink { target: target.to_owned() }
        } else {
            bail!("cannot share {}: not a file, folder or symlink", at.display());
        };
        entries.push(Entry { path: rel, kind });
        if entries.len() > MAX_ENTRIES {
            bail!("cannot share {}: more than {MAX_ENTRIES} files and folders", path.display());
        }
    }
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(Scan { root, entries, fingerprint: *stamps.finalize().as_bytes() })
}

fn utf8_name(path: &Path) -> Result<String> {
    let name = path.file_name().with_context(|| format!("{} has no name", path.display()))?;
    name.to_str()
        .map(str::to_owned)
        .with_context(|| format!("cannot share {}: its name is not UTF-8", path.display()))
}

/// Hashes every piece of a scanned tree; `progress(done, total)` after each piece.
pub(crate) fn hash(scan: Scan, mut progress: impl FnMut(u64, u64)) -> Result<Indexed> {
    let total: u64 = scan
        .entries
        .iter()
        .map(|e| match e.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    let mut manifest =
        Manifest { piece_size: piece_size_for(total), pieces_root: [0; 32], entries: scan.entries };
    // Symlinks that leave the content are found here, before any hashing.
    manifest.check().map_err(|e| anyhow::anyhow!("cannot share this: {e}"))?;
    let tree = Tree::new(scan.root.clone(), manifest.clone());
    let mut files = tree.reader();
    let mut pieces = Vec::with_capacity(tree.layout().pieces() as usize);
    let mut buf = Vec::new();
    let mut done = 0;
    for piece in 0..tree.layout().pieces() {
        tree.read_piece(&mut files, piece, &mut buf).with_context(|| {
            format!("cannot read {} (did it change while being shared?)", scan.root.display())
        })?;
        pieces.push(piece_hash(&buf));
        done += buf.len() as u64;
        progress(done, total);
    }
    manifest.pieces_root = piece_list_root(&pieces);
    Ok(Indexed { manifest, pieces, root: scan.root, fingerprint: scan.fingerprint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_becomes_the_same_content_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let game = dir.path().join("game");
        std::fs::create_dir_all(game.join("data")).unwrap();
        std::fs::write(game.join("data/big"), vec![7u8; 3 << 20]).unwrap();
        std::fs::write(game.join("readme"), b"hello").unwrap();
        std::fs::write(game.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("data/big", game.join("link")).unwrap();
        let a = hash(scan(&game).unwrap(), |_, _| {}).unwrap();
        let b = hash(scan(&game).unwrap(), |_, _| {}).unwrap();
        assert_eq!(a.manifest.id(), b.manifest.id());
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.manifest.name(), "game");
        assert_eq!(a.manifest.total(), (3 << 20) + 5);
        assert_eq!(a.pieces.len(), 4);
        let paths: Vec<&str> = a.manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["game", "game/data", "game/data/big", "game/empty", "game/link", "game/readme"]);

        std::fs::write(game.join("readme"), b"hellO").unwrap();
        let c = hash(scan(&game).unwrap(), |_, _| {}).unwrap();
        assert_ne!(c.manifest.id(), a.manifest.id(), "one byte changes the id");
    }

    #[test]
    fn links_out_of_the_folder_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let game = dir.path().join("game");
        std::fs::create_dir(&game).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", game.join("out")).unwrap();
        let e = hash(scan(&game).unwrap(), |_, _| {}).unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
    }
}
