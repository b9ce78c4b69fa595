//! Content that members share (games, files, folders), addressed by BLAKE3 hashes.
//!
//! A piece of content is one file or one folder (its top entry). Its bytes are the bytes of its
//! files, one after another in manifest order, cut into pieces of `piece_size` (the last one
//! shorter). Each piece has its BLAKE3 hash; the list of those hashes hashes to `pieces_root`; the
//! [`Manifest`] (names, sizes, modes, symlinks, piece size, `pieces_root`) hashes to the
//! [`ContentId`]. So a content id pins every byte: a receiver checks the manifest against the id,
//! the piece list against the manifest, and each piece against its hash before writing it as good.
//!
//! [`Manifest::check`] refuses manifests that could write outside the folder they are unpacked
//! into: absolute paths, `..`, symlinks whose target leaves the content or passes through another
//! symlink, entries under a file or symlink, duplicate or unsorted paths, special mode bits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Content format version: the first byte of an encoded manifest.
pub const CONTENT_VERSION: u8 = 1;
/// Smallest piece; pieces grow (powers of two) so that a piece list stays short.
pub const MIN_PIECE: u32 = 1 << 20;
pub const MAX_PIECE: u32 = 16 << 20;
/// Pieces in one piece list at most (at 16 MiB each: 1 TiB of content).
pub const MAX_PIECES: u64 = 1 << 16;
/// The piece count a piece size is chosen for (more only at the largest piece size).
const TARGET_PIECES: u64 = 1 << 14;
pub const MAX_ENTRIES: usize = 200_000;
pub const MAX_PATH_LEN: usize = 4096;
pub const MAX_COMPONENT_LEN: usize = 255;
/// Largest encoded manifest.
pub const MAX_MANIFEST_LEN: usize = 32 << 20;
/// The mode bits a manifest may carry: permissions only (no set-id, no sticky bit).
pub const MODE_BITS: u32 = 0o777;

const ID_CONTEXT: &str = "partyline 2026 content manifest v1";
const PIECES_CONTEXT: &str = "partyline 2026 content piece list v1";

pub type PieceHash = [u8; 32];

/// The BLAKE3 hash of an encoded manifest: names a piece of content everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    /// The first 12 hex digits, for people.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.short())
    }
}

impl FromStr for ContentId {
    type Err = ContentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.trim().as_bytes())
            .map_err(|_| ContentError::BadId(s.chars().take(80).collect()))?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| ContentError::BadId(s.chars().take(80).collect()))?;
        Ok(Self(bytes))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    Dir {
        mode: u32,
    },
    File {
        size: u64,
        mode: u32,
    },
    /// A relative link that stays inside the content.
    Symlink {
        target: String,
    },
}

/// One file, folder or symlink; `path` is relative to the folder the content is unpacked into,
/// `/`-separated, and starts with the content's top entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub piece_size: u32,
    /// The hash of the piece list ([`piece_list_root`]).
    #[serde(with = "serde_bytes")]
    pub pieces_root: [u8; 32],
    /// Sorted by path (bytewise); the first is the top entry, which all others are under.
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("not a content id (64 hex digits): {0:?}")]
    BadId(String),
    #[error("the manifest is {0} bytes, more than allowed")]
    Oversize(usize),
    #[error("the manifest does not match its content id")]
    WrongId,
    #[error("unknown content format version {0}")]
    UnknownVersion(u8),
    #[error("malformed manifest: {0}")]
    Malformed(String),
    #[error("the manifest is empty")]
    Empty,
    #[error("too many entries ({0})")]
    TooManyEntries(usize),
    #[error("piece size {0} is not a power of two between 1 MiB and 16 MiB")]
    PieceSize(u32),
    #[error("too many pieces ({0})")]
    TooManyPieces(u64),
    #[error("{path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("{path:?}: the symlink points outside the content or through another symlink ({target:?})")]
    SymlinkEscapes { path: String, target: String },
    #[error("{path:?}: mode {mode:o} has bits other than permissions")]
    BadMode { path: String, mode: u32 },
    #[error("the piece list does not match the manifest")]
    WrongPieces,
}

fn bad(path: &str, why: &'static str) -> ContentError {
    ContentError::BadPath { path: path.chars().take(200).collect(), why }
}

/// The piece size for `total` bytes of content.
pub fn piece_size_for(total: u64) -> u32 {
    let mut size = MIN_PIECE;
    while size < MAX_PIECE && total.div_ceil(u64::from(size)) > TARGET_PIECES {
        size *= 2;
    }
    size
}

/// The hash a piece list is known by.
pub fn piece_list_root(hashes: &[PieceHash]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(PIECES_CONTEXT);
    hasher.update(&(hashes.len() as u64).to_le_bytes());
    for h in hashes {
        hasher.update(h);
    }
    *hasher.finalize().as_bytes()
}

/// The hash of one piece's bytes.
pub fn piece_hash(bytes: &[u8]) -> PieceHash {
    *blake3::hash(bytes).as_bytes()
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CONTENT_VERSION];
        postcard::to_io(self, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    pub fn id(&self) -> ContentId {
        Self::id_of(&self.encode())
    }

    /// The content id of an encoded manifest (whatever the bytes are).
    pub fn id_of(encoded: &[u8]) -> ContentId {
        let mut hasher = blake3::Hasher::new_derive_key(ID_CONTEXT);
        hasher.update(encoded);
        ContentId(*hasher.finalize().as_bytes())
    }

    /// Decodes a manifest that must be the one `id` names, and checks it.
    pub fn decode(bytes: &[u8], id: &ContentId) -> Result<Self, ContentError> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ContentError::Oversize(bytes.len()));
        }
        if Self::id_of(bytes) != *id {
            return Err(ContentError::WrongId);
        }
        let (&version, body) = bytes.split_first().ok_or(ContentError::Empty)?;
        if version != CONTENT_VERSION {
            return Err(ContentError::UnknownVersion(version));
        }
        let (manifest, rest) = postcard::take_from_bytes::<Manifest>(body)
            .map_err(|e| ContentError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ContentError::Malformed(format!("{} bytes after the manifest", rest.len())));
        }
        manifest.check()?;
        Ok(manifest)
    }

    /// The top entry's name: what the content is called, and where it lands when unpacked.
    pub fn name(&self) -> &str {
        self.entries.first().map_or("", |e| e.path.as_str())
    }

    /// Bytes of all files together.
    pub fn total(&self) -> u64 {
        self.files().map(|(_, size)| size).sum()
    }

    /// Number of pieces.
    pub fn pieces(&self) -> u64 {
        self.total().div_ceil(u64::from(self.piece_size))
    }

    /// Files and their sizes, in content order.
    pub fn files(&self) -> impl Iterator<Item = (&Entry, u64)> {
        self.entries.iter().filter_map(|e| match e.kind {
            EntryKind::File { size, .. } => Some((e, size)),
            _ => None,
        })
    }

    /// Whether the content is one folder (rather than one file).
    pub fn is_dir(&self) -> bool {
        matches!(self.entries.first().map(|e| &e.kind), Some(EntryKind::Dir { .. }))
    }

    /// Refuses anything that could not be unpacked safely inside one folder.
    pub fn check(&self) -> Result<(), ContentError> {
        let Some(top) = self.entries.first() else { return Err(ContentError::Empty) };
        if self.entries.len() > MAX_ENTRIES {
            return Err(ContentError::TooManyEntries(self.entries.len()));
        }
        if !self.piece_size.is_power_of_two() || !(MIN_PIECE..=MAX_PIECE).contains(&self.piece_size) {
            return Err(ContentError::PieceSize(self.piece_size));
        }
        let total = self.files().try_fold(0u64, |sum, (_, size)| sum.checked_add(size));
        let pieces = total.map_or(u64::MAX, |t| t.div_ceil(u64::from(self.piece_size)));
        if pieces > MAX_PIECES {
            return Err(ContentError::TooManyPieces(pieces));
        }
        if top.path.contains('/') {
            return Err(bad(&top.path, "the top entry must be a single name"));
        }
        if matches!(top.kind, EntryKind::Symlink { .. }) {
            return Err(bad(&top.path, "the content cannot be a symlink"));
        }
        let mut previous: Option<&Entry> = None;
        for entry in &self.entries {
            check_path(&entry.path)?;
            if let Some(prev) = previous
                && entry.path.as_bytes() <= prev.path.as_bytes()
            {
                return Err(bad(&entry.path, "paths must be sorted and unique"));
            }
            if !std::ptr::eq(entry, top) {
                // Its parent must be a folder of this content (sorted order puts it before).
                let parent = entry
                    .path
                    .rsplit_once('/')
                    .map(|(p, _)| p)
                    .ok_or_else(|| bad(&entry.path, "everything must be inside the top entry"))?;
                let parent_kind = self
                    .entries
                    .binary_search_by(|e| e.path.as_bytes().cmp(parent.as_bytes()))
                    .map(|i| &self.entries[i].kind);
                if !matches!(parent_kind, Ok(EntryKind::Dir { .. })) {
                    return Err(bad(&entry.path, "its parent is not a folder of the content"));
                }
            }
            match &entry.kind {
                EntryKind::Dir { mode } | EntryKind::File { mode, .. } if mode & !MODE_BITS != 0 => {
                    return Err(ContentError::BadMode { path: entry.path.clone(), mode: *mode });
                }
                EntryKind::Symlink { target } => self.check_symlink(&entry.path, target)?,
                _ => {}
            }
            previous = Some(entry);
        }
        Ok(())
    }

    /// A symlink's target, resolved from the link's folder one name at a time, must stay inside
    /// the top entry and must not pass through another symlink (whose own target could move the
    /// `..` that follows it anywhere).
    fn check_symlink(&self, path: &str, target: &str) -> Result<(), ContentError> {
        let escapes = || ContentError::SymlinkEscapes { path: path.to_owned(), target: target.to_owned() };
        if target.is_empty() || target.starts_with('/') || target.contains('\0') || target.contains('\\') {
            return Err(escapes());
        }
        if target.len() > MAX_PATH_LEN {
            return Err(bad(path, "the symlink's target is too long"));
        }
        let mut at: Vec<&str> = path.split('/').collect();
        at.pop();
        let parts: Vec<&str> = target.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        for (i, part) in parts.iter().enumerate() {
            if *part == ".." {
                // Never above the top entry.
                if at.len() <= 1 {
                    return Err(escapes());
                }
                at.pop();
            } else {
                at.push(part);
            }
            let last = i + 1 == parts.len();
            if !last && self.kind_of(&at.join("/")).is_some_and(|k| matches!(k, EntryKind::Symlink { .. })) {
                return Err(escapes());
            }
        }
        if at.is_empty() {
            return Err(escapes());
        }
        Ok(())
    }

    fn kind_of(&self, path: &str) -> Option<&EntryKind> {
        self.entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.entries[i].kind)
    }
}

/// One relative path: `/`-separated names, none empty, `.` or `..`, no NUL or backslash.
fn check_path(path: &str) -> Result<(), ContentError> {
    if path.is_empty() {
        return Err(bad(path, "empty path"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(bad(path, "path too long"));
    }
    if path.starts_with('/') {
        return Err(bad(path, "absolute path"));
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(bad(path, "NUL or backslash in the path"));
    }
    for part in path.split('/') {
        match part {
            "" => return Err(bad(path, "empty name in the path")),
            "." | ".." => return Err(bad(path, "`.` or `..` in the path")),
            p if p.len() > MAX_COMPONENT_LEN => return Err(bad(path, "name too long")),
            _ => {}
        }
    }
    Ok(())
}

/// Where content bytes live: for each file (its index among the manifest's entries) the offset
/// of its first byte in the content. Maps pieces to the file ranges they cover.
#[derive(Clone, Debug)]
pub struct Layout {
    piece_size: u64,
    total: u64,
    /// (entry index, start offset in the content, size), files only, in order.
    files: Vec<(usize, u64, u64)>,
}

/// Part of a piece that lies in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of the file's entry in the manifest.
    pub entry: usize,
    /// Offset in the file.
    pub offset: u64,
    pub len: u64,
    /// Offset in the piece.
    pub at: u64,
}

impl Layout {
    pub fn new(manifest: &Manifest) -> Self {
        let mut files = Vec::new();
        let mut start = 0u64;
        for (i, e) in manifest.entries.iter().enumerate() {
            if let EntryKind::File { size, .. } = e.kind {
                files.push((i, start, size));
                start += size;
            }
        }
        Self { piece_size: u64::from(manifest.piece_size), total: start, files }
    }

    pub fn pieces(&self) -> u64 {
        self.total.div_ceil(self.piece_size)
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes in piece `piece` (the last one may be short; past the end, 0).
    pub fn piece_len(&self, piece: u64) -> u64 {
        let start = piece.saturating_mul(self.piece_size);
        self.total.saturating_sub(start).min(self.piece_size)
    }

    /// The file ranges piece `piece` covers, in order.
    pub fn segments(&self, piece: u64) -> Vec<Segment> {
        let start = piece.saturating_mul(self.piece_size);
        let end = start + self.piece_len(piece);
        let mut out = Vec::new();
        // The first file that ends after `start`.
        let first = self.files.partition_point(|&(_, s, size)| s + size <= start);
        for &(entry, s, size) in &self.files[first..] {
            if s >= end {
                break;
            }
            if size == 0 {
                continue;
            }
            let from = start.max(s);
            let to = end.min(s + size);
            out.push(Segment { entry, offset: from - s, len: to - from, at: from - start });
        }
        out
    }

    /// The pieces file `entry` has bytes in.
    pub fn pieces_of(&self, entry: usize) -> std::ops::Range<u64> {
        match self.files.iter().find(|f| f.0 == entry) {
            Some(&(_, s, size)) if size > 0 => s / self.piece_size..(s + size).div_ceil(self.piece_size),
            _ => 0..0,
        }
    }
}

/// A piece list as it travels: 32 bytes per piece.
pub fn encode_piece_list(hashes: &[PieceHash]) -> Vec<u8> {
    hashes.concat()
}

/// Decodes the piece list of `manifest`, which must hash to its `pieces_root`.
pub fn decode_piece_list(bytes: &[u8], manifest: &Manifest) -> Result<Vec<PieceHash>, ContentError> {
    let expected = usize::try_from(manifest.pieces()).map_err(|_| ContentError::WrongPieces)?;
    if bytes.len() != expected * 32 {
        return Err(ContentError::WrongPieces);
    }
    let hashes: Vec<PieceHash> =
        bytes.chunks_exact(32).map(|c| c.try_into().expect("chunks of 32")).collect();
    if piece_list_root(&hashes) != manifest.pieces_root {
        return Err(ContentError::WrongPieces);
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> Entry {
        Entry { path: path.into(), kind: EntryKind::Dir { mode: 0o755 } }
    }
    fn file(path: &str, size: u64) -> Entry {
        Entry { path: path.into(), kind: EntryKind::File { size, mode: 0o644 } }
    }
    fn link(path: &str, target: &str) -> Entry {
        Entry { path: path.into(), kind: EntryKind::Symlink { target: target.into() } }
    }
    fn manifest(entries: Vec<Entry>) -> Manifest {
        Manifest { piece_size: MIN_PIECE, pieces_root: [0; 32], entries }
    }

    #[test]
    fn a_sound_tree_passes_and_round_trips_through_its_id() {
        let m = manifest(vec![
            dir("game"),
            dir("game/bin"),
            file("game/bin/run", 10),
            link("game/bin/up", "../bin/run"),
            link("game/latest", "bin/run"),
            file("game/readme", 3),
        ]);
        m.check().unwrap();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes, &m.id()).unwrap(), m);
        let mut other = m.id();
        other.0[0] ^= 1;
        assert_eq!(Manifest::decode(&bytes, &other), Err(ContentError::WrongId));
        assert_eq!(m.name(), "game");
        assert_eq!(m.total(), 13);
        assert!(m.is_dir());
    }

    #[test]
    fn paths_that_leave_the_folder_are_refused() {
        let cases = [
            vec![dir("game"), file("game/../etc", 1)],
            vec![dir("/game")],
            vec![dir("game"), file("/etc/passwd", 1)],
            vec![dir("game"), file("game//x", 1)],
            vec![dir("game"), file("game/./x", 1)],
            vec![dir("game"), file("other/x", 1)],
            vec![file("game", 1), file("game/x", 1)],
            vec![dir("game"), link("game/l", "x"), file("game/l/x", 1)],
            vec![dir("game"), file("game/b", 1), file("game/a", 1)],
            vec![dir("game"), file("game/a", 1), file("game/a", 1)],
            vec![dir("game"), file("game/a\\..\\b", 1)],
            vec![dir("a/b")],
            vec![link("game", ".")],
            vec![],
        ];
        for entries in cases {
            let m = manifest(entries.clone());
            assert!(m.check().is_err(), "{entries:?}");
        }
    }

    #[test]
    fn symlinks_that_escape_are_refused() {
        for target in ["../x", "../../etc/passwd", "/etc/passwd", "a/../../..", "", "a/../../../game"] {
            let m = manifest(vec![dir("game"), link("game/l", target)]);
            assert!(
                matches!(m.check(), Err(ContentError::SymlinkEscapes { .. })),
                "{target}: {:?}",
                m.check()
            );
        }
        // `up` is the folder itself, so `up/..` would leave it: through another symlink, refused.
        let m = manifest(vec![dir("game"), link("game/l", "up/../x"), link("game/up", ".")]);
        assert!(matches!(m.check(), Err(ContentError::SymlinkEscapes { .. })));
        // Inside: fine.
        let m = manifest(vec![dir("game"), dir("game/d"), link("game/d/l", "../d/./x")]);
        m.check().unwrap();
    }

    #[test]
    fn special_mode_bits_are_refused() {
        let m = manifest(vec![
            dir("game"),
            Entry { path: "game/x".into(), kind: EntryKind::File { size: 1, mode: 0o4755 } },
        ]);
        assert!(matches!(m.check(), Err(ContentError::BadMode { .. })));
    }

    #[test]
    fn pieces_map_onto_files_across_their_boundaries() {
        let ps = u64::from(MIN_PIECE);
        let m = manifest(vec![
            dir("g"),
            file("g/a", ps + 10),
            file("g/b", 0),
            file("g/c", 5),
            file("g/d", ps * 2),
        ]);
        let layout = Layout::new(&m);
        assert_eq!(layout.pieces(), 4);
        assert_eq!(layout.segments(0), vec![Segment { entry: 1, offset: 0, len: ps, at: 0 }]);
        assert_eq!(
            layout.segments(1),
            vec![
                Segment { entry: 1, offset: ps, len: 10, at: 0 },
                Segment { entry: 3, offset: 0, len: 5, at: 10 },
                Segment { entry: 4, offset: 0, len: ps - 15, at: 15 },
            ]
        );
        assert_eq!(layout.piece_len(3), 15);
        assert_eq!(layout.segments(3), vec![Segment { entry: 4, offset: 2 * ps - 15, len: 15, at: 0 }]);
        assert_eq!(layout.pieces_of(4), 1..4);
        assert_eq!(layout.pieces_of(2), 0..0);
    }

    #[test]
    fn piece_lists_must_match_the_manifest() {
        let hashes = vec![piece_hash(b"one"), piece_hash(b"two")];
        let mut m = manifest(vec![file("f", u64::from(MIN_PIECE) + 1)]);
        m.pieces_root = piece_list_root(&hashes);
        let bytes = encode_piece_list(&hashes);
        assert_eq!(decode_piece_list(&bytes, &m).unwrap(), hashes);
        let mut wrong = bytes.clone();
        wrong[5] ^= 1;
        assert_eq!(decode_piece_list(&wrong, &m), Err(ContentError::WrongPieces));
        assert_eq!(decode_piece_list(&bytes[..32], &m), Err(ContentError::WrongPieces));
    }

    #[test]
    fn piece_sizes_grow_with_the_content() {
        assert_eq!(piece_size_for(0), MIN_PIECE);
        assert_eq!(piece_size_for(4 << 30), MIN_PIECE);
        assert_eq!(piece_size_for(64 << 30), 4 << 20);
        assert_eq!(piece_size_for(1 << 50), MAX_PIECE);
    }

    #[test]
    fn ids_parse_from_hex() {
        let id = manifest(vec![dir("g")]).id();
        assert_eq!(id.to_string().parse::<ContentId>().unwrap(), id);
        assert!("xyz".parse::<ContentId>().is_err());
        assert!("00".parse::<ContentId>().is_err());
    }
}
