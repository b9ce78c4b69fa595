//! The thread that writes one download: a piece is written into its files only if it matched
//! its hash (checked by the worker that read it). About once a second it saves the bitmap of good pieces, without
//! waiting for the disk: the bitmap is what a restart checks first (it verifies those pieces
//! on disk before trusting them), and the end of the download syncs everything before the
//! content is moved into place.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libp2p::PeerId;
use partyline_protocol::ContentId;
use tokio::sync::{mpsc, oneshot};

use super::db::{Bitmap, Db};
use super::disk::Tree;

/// Pieces waiting to be checked and written (memory stays bounded whatever the content's size).
const QUEUE: usize = 8;
/// How often the bitmap of good pieces is saved.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// A piece as it came from a provider, and whether it matched its hash (checked where it was
/// read, so that hashing and writing run on different cores).
pub(crate) struct Piece {
    pub(crate) index: u64,
    pub(crate) from: PeerId,
    pub(crate) bytes: Vec<u8>,
    pub(crate) matches: bool,
}

#[derive(Debug)]
pub(crate) enum Written {
    Good(u64),
    /// The bytes from `from` were not what the hash says.
    Bad {
        index: u64,
        from: PeerId,
    },
    /// The disk refused (full, gone): the download stops here.
    Failed(String),
}

pub(crate) enum ToWriter {
    Piece(Piece),
    /// All pieces are in: sync, save, finish the tree (modes, symlinks), answer.
    Finish(oneshot::Sender<Result<()>>),
}

pub(crate) struct Writer {
    pub(crate) tx: mpsc::Sender<ToWriter>,
    pub(crate) results: mpsc::Receiver<Written>,
    /// Piece buffers, given back once written, so that pulling pieces allocates (and the kernel
    /// zeroes) nothing new.
    pub(crate) buffers: Buffers,
}

/// Spare piece buffers, at most [`SPARE`].
#[derive(Clone, Default)]
pub(crate) struct Buffers(Arc<Mutex<Vec<Vec<u8>>>>);

const SPARE: usize = QUEUE * 2;

impl Buffers {
    /// A buffer of `len` bytes (contents unspecified).
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    fn give(&self, buf: Vec<u8>) {
        let mut spare = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE {
            spare.push(buf);
        }
    }
}

/// Starts the writer of `id` into `tree`, starting from the good pieces in `have`.
pub(crate) fn spawn(id: ContentId, tree: Tree, have: Bitmap, db_path: PathBuf) -> Result<Writer> {
    let db = Db::open(&db_path)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (results_tx, results) = mpsc::channel(QUEUE * 8);
    let buffers = Buffers::default();
    let pool = buffers.clone();
    std::thread::Builder::new()
        .name(format!("write {}", id.short()))
        .spawn(move || run(id, &tree, have, db, &pool, rx, &results_tx))
        .context("cannot start a writer thread")?;
    Ok(Writer { tx, results, buffers })
}

#[allow(clippy::too_many_arguments)]
fn run(
    id: ContentId,
    tree: &Tree,
    mut have: Bitmap,
    mut db: Db,
    buffers: &Buffers,
    mut rx: mpsc::Receiver<ToWriter>,
    results: &mpsc::Sender<Written>,
) {
    let mut files = tree.writer();
    let mut saved = have.clone();
    let mut last_save = Instant::now();
    while let Some(message) = rx.blocking_recv() {
        match message {
            ToWriter::Piece(piece) => {
                let result = if !piece.matches {
                    Written::Bad { index: piece.index, from: piece.from }
                } else {
                    match tree.write_piece(&mut files, piece.index, &piece.bytes) {
                        Ok(()) => {
                            have.set(piece.index, true);
                            Written::Good(piece.index)
                        }
                        Err(e) => Written::Failed(write_error(&e, tree)),
                    }
                };
                buffers.give(piece.bytes);
                let failed = matches!(result, Written::Failed(_));
                if results.blocking_send(result).is_err() || failed {
                    break;
                }
            }
            ToWriter::Finish(reply) => {
                drop(std::mem::replace(&mut files, tree.writer()));
                let result = tree
                    .sync()
                    .context("cannot sync the download to disk")
                    .and_then(|()| db.set_have(&id, have.bytes()))
                    .and_then(|()| tree.finish());
                let _ = reply.send(result);
                return;
            }
        }
        if have != saved && last_save.elapsed() >= SAVE_EVERY {
            if let Err(e) = db.set_have(&id, have.bytes()) {
                let _ = results.blocking_send(Written::Failed(format!("{e:#}")));
                return;
            }
            saved = have.clone();
            last_save = Instant::now();
        }
    }
    // Stopped (cancelled, or the node is going away): keep what is good.
    if have != saved {
        let _ = db.set_have(&id, have.bytes());
    }
}

fn write_error(e: &std::io::Error, tree: &Tree) -> String {
    if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        format!("the disk is full ({}); free some space and get it again to resume", tree.root().display())
    } else {
        format!("cannot write into {}: {e}", tree.root().display())
    }
}
