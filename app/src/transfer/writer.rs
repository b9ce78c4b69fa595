//! The threads that write one download: each piece is checked against its hash, and only then
//! written into its files. Every second or so a second thread syncs the files written since
//! and then saves the bitmap of good pieces (the writer goes on meanwhile), so a download killed
//! at any point resumes from pieces that are really on disk.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libp2p::PeerId;
use partyline_protocol::ContentId;
use partyline_protocol::content::{PieceHash, piece_hash};
use tokio::sync::{mpsc, oneshot};

use super::db::{Bitmap, Db};
use super::disk::Tree;

/// Pieces waiting to be checked and written (memory stays bounded whatever the content's size).
const QUEUE: usize = 8;
/// How often good pieces are synced and saved.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Piece {
    pub(crate) index: u64,
    pub(crate) from: PeerId,
    pub(crate) bytes: Vec<u8>,
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

/// The bitmap to save once what was written is synced; `done` hears how it went.
struct Commit {
    have: Vec<u8>,
    done: Option<oneshot::Sender<Result<()>>>,
}

/// Starts the writer of `id` into `tree`, starting from the good pieces in `have`.
pub(crate) fn spawn(
    id: ContentId,
    tree: Tree,
    hashes: Vec<PieceHash>,
    have: Bitmap,
    db_path: PathBuf,
) -> Result<Writer> {
    let db = Db::open(&db_path)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (results_tx, results) = mpsc::channel(QUEUE * 8);
    // One commit waiting at most: the writer does not wait for the disk, it skips a turn.
    let (commits, to_sync) = std::sync::mpsc::sync_channel(1);
    let failed = Arc::new(Mutex::new(None));
    let buffers = Buffers::default();
    let (sync_tree, sync_failed) = (tree.clone(), failed.clone());
    std::thread::Builder::new()
        .name(format!("sync {}", id.short()))
        .spawn(move || sync(id, &sync_tree, db, &to_sync, &sync_failed))
        .context("cannot start a sync thread")?;
    let pool = buffers.clone();
    std::thread::Builder::new()
        .name(format!("write {}", id.short()))
        .spawn(move || run(&tree, &hashes, have, &commits, &failed, &pool, rx, &results_tx))
        .context("cannot start a writer thread")?;
    Ok(Writer { tx, results, buffers })
}

/// Syncs what the writer wrote and saves which pieces are good, off the writer's path.
fn sync(
    id: ContentId,
    tree: &Tree,
    mut db: Db,
    commits: &std::sync::mpsc::Receiver<Commit>,
    failed: &Mutex<Option<String>>,
) {
    for commit in commits {
        let result = tree.sync().context("cannot sync the download to disk");
        let result = result.and_then(|()| db.set_have(&id, &commit.have));
        if let Err(e) = &result {
            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{e:#}"));
        }
        if let Some(done) = commit.done {
            let _ = done.send(result);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    tree: &Tree,
    hashes: &[PieceHash],
    mut have: Bitmap,
    commits: &std::sync::mpsc::SyncSender<Commit>,
    failed: &Mutex<Option<String>>,
    buffers: &Buffers,
    mut rx: mpsc::Receiver<ToWriter>,
    results: &mpsc::Sender<Written>,
) {
    let mut files = tree.writer();
    let mut saved = have.clone();
    let mut last_commit = Instant::now();
    // Hands the syncer a commit and waits for it.
    let commit_now = |have: &Bitmap| -> Result<()> {
        let (done, result) = oneshot::channel();
        commits
            .send(Commit { have: have.bytes().to_vec(), done: Some(done) })
            .map_err(|_| anyhow::anyhow!("the sync thread stopped"))?;
        result.blocking_recv().map_err(|_| anyhow::anyhow!("the sync thread stopped"))?
    };
    while let Some(message) = rx.blocking_recv() {
        match message {
            ToWriter::Piece(piece) => {
                let good = hashes.get(piece.index as usize).is_some_and(|h| *h == piece_hash(&piece.bytes));
                let result = if !good {
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
                let result = commit_now(&have).and_then(|()| {
                    drop(std::mem::replace(&mut files, tree.writer()));
                    tree.finish()
                });
                let _ = reply.send(result);
                return;
            }
        }
        if let Some(why) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = results.blocking_send(Written::Failed(why));
            return;
        }
        if have != saved && last_commit.elapsed() >= COMMIT_EVERY {
            let commit = Commit { have: have.bytes().to_vec(), done: None };
            // The syncer still busy with the last one: try again after the next piece.
            if commits.try_send(commit).is_ok() {
                saved = have.clone();
                last_commit = Instant::now();
            }
        }
    }
    // Stopped (cancelled, or the node is going away): keep what is good.
    if have != saved {
        let _ = commit_now(&have);
    }
}

fn write_error(e: &std::io::Error, tree: &Tree) -> String {
    if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        format!("the disk is full ({}); free some space and get it again to resume", tree.root().display())
    } else {
        format!("cannot write into {}: {e}", tree.root().display())
    }
}
