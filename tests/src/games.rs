//! Generated games for the transfer tests and benchmarks: a folder of many files, as games are
//! (a few large ones, many tiny ones in nested folders, some in between, an empty file, an
//! executable, a symlink), filled with seeded bytes. Fast to make even in a debug build: each
//! file is a seeded 64 KiB block written again and again at shifting offsets, so no two pieces
//! of a file are alike.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use partyline_protocol::ContentId;

const BLOCK: usize = 64 * 1024;

/// A seeded block of bytes (xorshift64*).
fn block(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(BLOCK);
    while out.len() < BLOCK {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out
}

/// Writes `size` bytes made from `seed` to `path`.
pub fn write_file(path: &Path, size: u64, seed: u64) {
    let block = block(seed);
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
    let mut left = size;
    let mut chunk = 0u64;
    while left > 0 {
        let shift = (chunk.wrapping_mul(7919).wrapping_add(seed) % BLOCK as u64) as usize;
        let n = left.min(BLOCK as u64) as usize;
        let (a, b) = block.split_at(shift);
        let rotated = [b, a].concat();
        file.write_all(&rotated[..n]).expect("write");
        left -= n as u64;
        chunk += 1;
    }
    file.flush().expect("flush");
}

/// Makes the game `name` in `parent`: about `total` bytes in all, seeded by `seed`.
pub fn generate(parent: &Path, name: &str, total: u64, seed: u64) -> PathBuf {
    let root = parent.join(name);
    for dir in ["bin", "data/levels", "data/sound", "assets/textures/ui", "assets/scripts/ai"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    // Many tiny files (0 to 4 KiB).
    let mut used = 0u64;
    for i in 0..1500u64 {
        let size = (i * 2_654_435_761) % 4097;
        let dir = ["assets/textures/ui", "assets/scripts/ai", "data/levels"][(i % 3) as usize];
        write_file(&root.join(format!("{dir}/f{i:04}.dat")), size, seed ^ i);
        used += size;
    }
    std::fs::File::create(root.join("data/empty.cfg")).expect("empty file");
    // A third in medium files (1 to 8 MiB), the rest in three large ones.
    let mut medium = 0u64;
    let mut i = 0u64;
    while medium < total / 3 {
        let size = (1 << 20) + (i * 1_299_709 % (7 << 20));
        write_file(&root.join(format!("data/sound/track{i:03}.ogg")), size, seed ^ (1 << 32) ^ i);
        medium += size;
        i += 1;
    }
    let rest = total.saturating_sub(used + medium);
    for (j, part) in ["data/pack0.bin", "data/pack1.bin", "data/pack2.bin"].iter().enumerate() {
        write_file(&root.join(part), rest / 3 + j as u64, seed ^ (2 << 32) ^ j as u64);
    }
    write_file(&root.join("bin/game"), 300_000, seed ^ (3 << 32));
    std::fs::set_permissions(root.join("bin/game"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("bin/game", root.join("start")).expect("symlink");
    root
}

/// The content id of the file or folder at `path` (every byte read and hashed).
pub fn content_id(path: &Path) -> ContentId {
    partyline::transfer::describe(path).expect("describe").0.id()
}

/// Bytes of all files under `path`.
pub fn size_of(path: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(path).expect("stat");
    if meta.is_dir() {
        std::fs::read_dir(path).expect("list").map(|e| size_of(&e.expect("entry").path())).sum()
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}
