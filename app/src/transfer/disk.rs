//! Content on disk: a [`Tree`] is a manifest laid out under a folder, read piece by piece (to
//! hash or to serve) or written piece by piece (downloading). Downloads are unpacked into a
//! private `partial` folder, finished there (modes, symlinks, everything synced) and only then
//! renamed into place, so nothing half-written is ever seen under its final name.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use partyline_protocol::content::{EntryKind, Layout, Manifest};

/// Files kept open at once by one reader or writer.
const OPEN_FILES: usize = 64;

/// A manifest laid out under `root` (the folder its top entry is in).
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    root: PathBuf,
    manifest: Manifest,
    layout: Layout,
}

/// Open files of one tree, by entry index.
pub(crate) struct Files {
    open: HashMap<usize, File>,
    write: bool,
}

impl Tree {
    pub(crate) fn new(root: PathBuf, manifest: Manifest) -> Self {
        let layout = Layout::new(&manifest);
        Self { root, manifest, layout }
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where entry `entry` is (manifests are checked: its path stays under the root).
    pub(crate) fn path(&self, entry: usize) -> PathBuf {
        self.root.join(&self.manifest.entries[entry].path)
    }

    /// The top entry.
    pub(crate) fn top(&self) -> PathBuf {
        self.root.join(self.manifest.name())
    }

    pub(crate) fn reader(&self) -> Files {
        Files { open: HashMap::new(), write: false }
    }

    pub(crate) fn writer(&self) -> Files {
        Files { open: HashMap::new(), write: true }
    }

    fn file<'a>(&self, files: &'a mut Files, entry: usize) -> std::io::Result<&'a File> {
        if !files.open.contains_key(&entry) {
            if files.open.len() >= OPEN_FILES {
                files.open.clear();
            }
            let path = self.path(entry);
            // Never through a symlink: the tree is ours, a link in its place is not.
            let file = OpenOptions::new()
                .read(true)
                .write(files.write)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&path)?;
            files.open.insert(entry, file);
        }
        Ok(&files.open[&entry])
    }

    /// Reads piece `piece` into `buf` (resized to the piece's length).
    pub(crate) fn read_piece(&self, files: &mut Files, piece: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.resize(self.layout.piece_len(piece) as usize, 0);
        for s in self.layout.segments(piece) {
            let at = s.at as usize;
            self.file(files, s.entry)?.read_exact_at(&mut buf[at..at + s.len as usize], s.offset)?;
        }
        Ok(())
    }

    /// Writes piece `piece` (already verified) into its files.
    pub(crate) fn write_piece(&self, files: &mut Files, piece: u64, bytes: &[u8]) -> std::io::Result<()> {
        for s in self.layout.segments(piece) {
            let at = s.at as usize;
            self.file(files, s.entry)?.write_all_at(&bytes[at..at + s.len as usize], s.offset)?;
        }
        Ok(())
    }

    /// Syncs everything written under the tree to disk: one `syncfs` of its file system (one
    /// journal commit, where a game's thousands of small files would each cost one with fsync).
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        rustix::fs::syncfs(File::open(&self.root)?)?;
        Ok(())
    }

    /// Lays out folders and files (full length, space reserved) for writing. Files that already
    /// exist at their full length are kept; returns the entries (re)created, whose pieces must
    /// be fetched again.
    pub(crate) fn prepare(&self) -> Result<Vec<usize>> {
        let mut created = Vec::new();
        for (i, entry) in self.manifest.entries.iter().enumerate() {
            let path = self.path(i);
            match entry.kind {
                EntryKind::Dir { .. } => match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    _ => std::fs::create_dir(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                },
                EntryKind::File { size, .. } => {
                    let kept = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size);
                    if !kept {
                        let file = OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(true)
                            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                            .open(&path)
                            .with_context(|| format!("cannot create {}", path.display()))?;
                        reserve(&file, size)
                            .with_context(|| format!("cannot make room for {}", path.display()))?;
                        created.push(i);
                    }
                }
                // Made when everything else is written.
                EntryKind::Symlink { .. } => {}
            }
        }
        Ok(created)
    }

    /// After the last piece: modes (never writable by others, nor set-id: see [`safe_mode`]),
    /// symlinks, and everything synced to disk.
    pub(crate) fn finish(&self) -> Result<()> {
        // Deepest first, so a read-only folder is locked only after what is inside it.
        for (i, entry) in self.manifest.entries.iter().enumerate().rev() {
            let path = self.path(i);
            match &entry.kind {
                EntryKind::File { mode, .. } => {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(safe_mode(*mode)))
                        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
                }
                EntryKind::Symlink { target } => {
                    let _ = std::fs::remove_file(&path);
                    std::os::unix::fs::symlink(target, &path)
                        .with_context(|| format!("cannot make the symlink {}", path.display()))?;
                }
                EntryKind::Dir { mode } => {
                    // Owner keeps write access until the content is moved into place.
                    std::fs::set_permissions(
                        &path,
                        std::fs::Permissions::from_mode(safe_mode(*mode) | 0o700),
                    )?;
                }
            }
        }
        self.sync().context("cannot sync the download to disk")
    }

    /// Gives folders their own modes (after the content is in place).
    pub(crate) fn seal(&self) -> Result<()> {
        for (i, entry) in self.manifest.entries.iter().enumerate().rev() {
            if let EntryKind::Dir { mode } = entry.kind {
                std::fs::set_permissions(self.path(i), std::fs::Permissions::from_mode(safe_mode(mode)))?;
            }
        }
        Ok(())
    }

    /// Bytes of the files not yet laid out at their full length: what a download still needs
    /// from the disk.
    pub(crate) fn missing_bytes(&self) -> u64 {
        self.manifest
            .files()
            .enumerate()
            .filter(|(_, (e, size))| {
                !std::fs::symlink_metadata(self.root.join(&e.path))
                    .is_ok_and(|m| m.is_file() && m.len() == *size)
            })
            .map(|(_, (_, size))| size)
            .sum()
    }

    /// Whether the files still look as they did (same sizes): content that changed under us is
    /// not served.
    pub(crate) fn intact(&self, entries: impl Iterator<Item = usize>) -> bool {
        entries.into_iter().all(|i| {
            match (&self.manifest.entries[i].kind, std::fs::symlink_metadata(self.path(i))) {
                (EntryKind::File { size, .. }, Ok(m)) => m.is_file() && m.len() == *size,
                _ => false,
            }
        })
    }
}

/// Reserves `size` bytes for `file` (so a full disk shows before the download, not during it);
/// file systems that cannot reserve get a sparse file of that length.
fn reserve(file: &File, size: u64) -> std::io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::NOSPC => Err(e.into()),
        Err(_) => file.set_len(size),
    }
}

/// Bytes free for this user on the file system of `dir` (or of its nearest existing parent).
pub(crate) fn free_space(dir: &Path) -> Result<u64> {
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    let stat = rustix::fs::statvfs(existing)
        .with_context(|| format!("cannot read free space of {}", existing.display()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Moves `from` to `to`, refusing to replace anything at `to`.
pub(crate) fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, rustix::fs::RenameFlags::NOREPLACE)
        .map_err(Into::into)
}

/// Puts the finished tree's top entry into folder `dest` under its own name, atomically: a rename
/// on the same file system, else a copy beside the destination renamed into place. Returns where
/// it is now.
pub(crate) fn place(tree: &Tree, dest: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let name = tree.manifest().name();
    let target = dest.join(name);
    if std::fs::symlink_metadata(&target).is_ok() {
        bail!("{} already exists; move it away or remove it first", target.display());
    }
    match rename_new(&tree.top(), &target) {
        Ok(()) => return Ok(target),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot move {} into {}", name, dest.display())),
    }
    let need = tree.layout().total();
    let free = free_space(dest)?;
    if free < need {
        bail!("not enough space in {}: {} needed, {} free", dest.display(), bytes(need), bytes(free));
    }
    let staging = tempfile::Builder::new()
        .prefix(".partyline-")
        .tempdir_in(dest)
        .with_context(|| format!("cannot write into {}", dest.display()))?;
    let copy = Tree::new(staging.path().to_owned(), tree.manifest().clone());
    copy.prepare()?;
    let (mut from, mut to) = (tree.reader(), copy.writer());
    let mut buf = Vec::new();
    for piece in 0..tree.layout().pieces() {
        tree.read_piece(&mut from, piece, &mut buf)?;
        copy.write_piece(&mut to, piece, &buf)?;
    }
    drop(to);
    copy.finish()?;
    rename_new(&copy.top(), &target)
        .with_context(|| format!("cannot move {} into {}", name, dest.display()))?;
    let _ = std::fs::remove_dir_all(tree.top());
    Ok(target)
}

/// `n` bytes for people: "512 B", "3.2 MiB", "4.0 GiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A mode from a manifest as it is given to what is downloaded: read and execute as sent, but
/// never writable by group or others, and no set-user-id, set-group-id or sticky bit, whatever
/// the sender's manifest says.
pub(crate) fn safe_mode(mode: u32) -> u32 {
    mode & 0o755
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::index;

    #[test]
    fn what_a_manifest_makes_writable_by_others_or_set_id_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let game = dir.path().join("src/game");
        std::fs::create_dir_all(game.join("shared")).unwrap();
        std::fs::write(game.join("shared/run"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(game.join("shared/run"), std::fs::Permissions::from_mode(0o6777)).unwrap();
        std::fs::set_permissions(game.join("shared"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let source = index::hash(index::scan(&game).unwrap(), |_, _| {}).unwrap();
        let partial = dir.path().join("partial");
        std::fs::create_dir(&partial).unwrap();
        let tree = Tree::new(partial.clone(), source.manifest.clone());
        tree.prepare().unwrap();
        let from = Tree::new(source.root.clone(), source.manifest.clone());
        let (mut r, mut w) = (from.reader(), tree.writer());
        let mut buf = Vec::new();
        for piece in 0..tree.layout().pieces() {
            from.read_piece(&mut r, piece, &mut buf).unwrap();
            tree.write_piece(&mut w, piece, &buf).unwrap();
        }
        drop(w);
        tree.finish().unwrap();
        tree.seal().unwrap();
        let mode = |p: &str| std::fs::metadata(partial.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("game/shared/run"), 0o755);
        assert_eq!(mode("game/shared"), 0o755);
    }

    #[test]
    fn a_tree_copied_piece_by_piece_is_the_same_content() {
        let dir = tempfile::tempdir().unwrap();
        let game = dir.path().join("src/game");
        std::fs::create_dir_all(game.join("bin")).unwrap();
        std::fs::write(game.join("bin/run"), (0..3_000_000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
        std::fs::set_permissions(game.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(game.join("tiny"), b"x").unwrap();
        std::os::unix::fs::symlink("bin/run", game.join("start")).unwrap();
        let source = index::hash(index::scan(&game).unwrap(), |_, _| {}).unwrap();

        let partial = dir.path().join("partial");
        std::fs::create_dir(&partial).unwrap();
        let tree = Tree::new(partial.clone(), source.manifest.clone());
        assert_eq!(tree.prepare().unwrap().len(), 2);
        assert!(tree.prepare().unwrap().is_empty(), "kept on a second prepare");
        let from = Tree::new(source.root.clone(), source.manifest.clone());
        let (mut r, mut w) = (from.reader(), tree.writer());
        let mut buf = Vec::new();
        for piece in (0..tree.layout().pieces()).rev() {
            from.read_piece(&mut r, piece, &mut buf).unwrap();
            tree.write_piece(&mut w, piece, &buf).unwrap();
        }
        drop(w);
        tree.finish().unwrap();
        let copy = index::hash(index::scan(&partial.join("game")).unwrap(), |_, _| {}).unwrap();
        assert_eq!(copy.manifest.id(), source.manifest.id());
        let mode = std::fs::metadata(partial.join("game/bin/run")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);

        let library = dir.path().join("library");
        let placed = place(&tree, &library).unwrap();
        assert_eq!(placed, library.join("game"));
        assert!(!partial.join("game").exists());
        let placed_tree = Tree::new(library.clone(), source.manifest.clone());
        placed_tree.seal().unwrap();
        // A second one with the same name is refused, and the first stays.
        std::fs::create_dir_all(partial.join("game")).unwrap();
        let e = place(&tree, &library).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e:#}");
        assert!(library.join("game/tiny").exists());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }
}
