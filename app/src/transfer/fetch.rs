//! One download: find the members who have the content, get its manifest and piece list (each
//! checked against the content id), then pull runs of pieces from every provider at once (over
//! a direct sealed channel where one can be opened, else the libp2p stream) into the writer,
//! which checks each piece before writing it. A provider whose piece does not match
//! its hash is dropped and its pieces go to the others; providers that leave are replaced by
//! asking the party again.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use libp2p::PeerId;
use partyline_protocol::blobs::{BlobAnswer, BlobRequest};
use partyline_protocol::content::{
    ContentId, MAX_MANIFEST_LEN, MAX_PIECES, Manifest, PieceHash, decode_piece_list,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::db::{Bitmap, Db};
use super::disk::{self, Tree};
use super::sched::Sched;
use super::worker::{Pipe, Provider, worker};
use super::writer::{self, ToWriter, Written};
use super::{BLOBS_PROTOCOL, Members, stream};
use crate::events::NodeEvent;

/// How long a member has to say whether it has the content.
const HAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a member has to show a manifest asked for before a download.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the party is asked again, for providers that joined or came back.
const REDISCOVER: Duration = Duration::from_secs(5);
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// While nothing moves, progress is said again this often.
const QUIET_PROGRESS: Duration = Duration::from_secs(5);
/// Kept free beyond what the download needs.
const SPACE_MARGIN: u64 = 16 << 20;

/// What every download needs from the engine.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) control: libp2p_stream::Control,
    pub(crate) members: Members,
    pub(crate) events: mpsc::Sender<NodeEvent>,
    /// `<transfers>/partial`: each download unpacks into a folder of its own there.
    pub(crate) partial: PathBuf,
    pub(crate) db_path: PathBuf,
    /// Ask providers for direct sealed channels (else pieces come over libp2p streams only).
    pub(crate) direct: bool,
}

pub(crate) struct Job {
    pub(crate) id: ContentId,
    pub(crate) label: String,
    /// The plugin that asked for it.
    pub(crate) plugin: Option<String>,
    pub(crate) saved: Option<Saved>,
}

/// What an earlier run of a download saved.
pub(crate) struct Saved {
    pub(crate) manifest: Vec<u8>,
    pub(crate) pieces: Vec<u8>,
    /// The good pieces' bitmap.
    pub(crate) have: Option<Vec<u8>>,
}

/// Downloads `job`; the finished tree (synced, modes and symlinks made) in its partial folder.
pub(crate) async fn run(ctx: Ctx, job: Job) -> Result<Tree> {
    let id = job.id;
    let mut dropped = HashSet::new();
    let mut report = Reporter::new(&ctx, &job);
    let (manifest, hashes, have) = match job.saved.as_ref().map(|s| restore(&id, s)) {
        Some(Ok(saved)) => saved,
        other => {
            if let Some(Err(e)) = other {
                tracing::warn!(content = %id, "saved download state unusable, starting over: {e:#}");
            }
            let (manifest, hashes) = learn(&ctx, &id, &mut dropped, &mut report).await?;
            let have = Bitmap::new(hashes.len() as u64);
            (manifest, hashes, have)
        }
    };
    report.name = manifest.name().to_owned();
    let root = ctx.partial.join(id.to_string());
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let tree = Tree::new(root.clone(), manifest.clone());
    let need = tree.missing_bytes();
    let free = disk::free_space(&root)?;
    if free < need + SPACE_MARGIN {
        bail!(
            "not enough space for {}: {} needed, {} free in {}",
            manifest.name(),
            disk::bytes(need),
            disk::bytes(free),
            root.display()
        );
    }
    let mut have = have;
    for entry in tree.prepare().map_err(|e| anyhow::anyhow!("{}", space_error(&e, &tree)))? {
        for piece in tree.layout().pieces_of(entry) {
            have.set(piece, false);
        }
    }
    if have.count() > 0 {
        let (checking, sums) = (tree.clone(), hashes.clone());
        let (checked, lost) = tokio::task::spawn_blocking(move || {
            let lost = verify_saved(&checking, &sums, &mut have);
            (have, lost)
        })
        .await?;
        have = checked;
        if lost > 0 {
            tracing::warn!(content = %id, lost, "pieces saved as good were not on disk; fetching them again");
        }
    }
    Db::open(&ctx.db_path)?.set_manifest(
        &id,
        manifest.name(),
        &manifest.encode(),
        &partyline_protocol::content::encode_piece_list(&hashes),
        &root,
    )?;
    pull(&ctx, id, &tree, hashes, have, dropped, &mut report).await?;
    Ok(tree)
}

fn space_error(e: &anyhow::Error, tree: &Tree) -> String {
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()))
    });
    if full {
        format!(
            "the disk is full ({}): {} needs {}",
            tree.root().display(),
            tree.manifest().name(),
            disk::bytes(tree.missing_bytes())
        )
    } else {
        format!("{e:#}")
    }
}

/// The pieces a saved bitmap names count only if the disk kept them (a machine that crashed may
/// have lost what was not yet synced): each is read back and checked. Returns how many were not.
fn verify_saved(tree: &Tree, hashes: &[PieceHash], have: &mut Bitmap) -> usize {
    let mut files = tree.reader();
    let mut buf = Vec::new();
    let mut lost = 0;
    for piece in 0..have.len() {
        if have.get(piece) {
            let kept = tree.read_piece(&mut files, piece, &mut buf).is_ok()
                && hashes
                    .get(piece as usize)
                    .is_some_and(|h| *h == partyline_protocol::content::piece_hash(&buf));
            if !kept {
                have.set(piece, false);
                lost += 1;
            }
        }
    }
    lost
}

fn restore(id: &ContentId, saved: &Saved) -> Result<(Manifest, Vec<PieceHash>, Bitmap)> {
    let manifest = Manifest::decode(&saved.manifest, id)?;
    let hashes = decode_piece_list(&saved.pieces, &manifest)?;
    let have = Bitmap::from_bytes(saved.have.as_deref(), hashes.len() as u64);
    Ok((manifest, hashes, have))
}

/// Progress events for one download, at most every [`PROGRESS_EVERY`].
struct Reporter {
    events: mpsc::Sender<NodeEvent>,
    id: ContentId,
    name: String,
    label: String,
    plugin: Option<String>,
    last: Option<Instant>,
    /// What the last event said (done, peers, direct).
    said: (u64, usize, usize),
}

impl Reporter {
    fn new(ctx: &Ctx, job: &Job) -> Self {
        Self {
            events: ctx.events.clone(),
            id: job.id,
            name: job.label.clone(),
            label: job.label.clone(),
            plugin: job.plugin.clone(),
            last: None,
            said: (u64::MAX, 0, 0),
        }
    }

    /// Says how far the download is: at most every [`PROGRESS_EVERY`], and when nothing changed
    /// only every few seconds, unless `force`d.
    fn progress(&mut self, done: u64, total: u64, (peers, direct): (usize, usize), force: bool) {
        let since = self.last.map_or(Duration::MAX, |t| t.elapsed());
        let same = self.said == (done, peers, direct);
        if !force && (since < PROGRESS_EVERY || (same && since < QUIET_PROGRESS)) {
            return;
        }
        self.last = Some(Instant::now());
        self.said = (done, peers, direct);
        let event = NodeEvent::Transfer {
            id: self.id,
            name: self.name.clone(),
            label: self.label.clone(),
            done,
            total,
            peers,
            direct,
            plugin: self.plugin.clone(),
        };
        // Progress is lossy: the next one says the same and more.
        let _ = self.events.try_send(event);
    }

    async fn dropped(&self, peer: PeerId, reason: String) {
        tracing::warn!(content = %self.id, %peer, "dropped a provider: {reason}");
        let _ = self.events.send(NodeEvent::TransferPeerDropped { id: self.id, peer, reason }).await;
    }
}

/// Asks every member but `skip` whether it has `id`; those who do.
async fn discover(ctx: &Ctx, id: ContentId, skip: &HashSet<PeerId>) -> Vec<PeerId> {
    let members: Vec<PeerId> =
        ctx.members.borrow().others().map(|m| m.info.peer).filter(|p| !skip.contains(p)).collect();
    let mut asks = JoinSet::new();
    for peer in members {
        let mut control = ctx.control.clone();
        asks.spawn(async move {
            let ask = async {
                let mut s = control.open_stream(peer, BLOBS_PROTOCOL).await.ok()?;
                stream::write(&mut s, &BlobRequest::Have { ids: vec![id] }.frame()).await.ok()?;
                match stream::read_answer(&mut s).await.ok()? {
                    BlobAnswer::Have(have) if have.first() == Some(&true) => Some(peer),
                    _ => None,
                }
            };
            tokio::time::timeout(HAVE_TIMEOUT, ask).await.ok().flatten()
        });
    }
    let mut found = Vec::new();
    while let Some(answer) = asks.join_next().await {
        if let Ok(Some(peer)) = answer {
            found.push(peer);
        }
    }
    found
}

/// The manifest and piece list, from the first provider that gives ones matching `id`.
async fn learn(
    ctx: &Ctx,
    id: &ContentId,
    dropped: &mut HashSet<PeerId>,
    report: &mut Reporter,
) -> Result<(Manifest, Vec<PieceHash>)> {
    loop {
        let providers = discover(ctx, *id, dropped).await;
        if providers.is_empty() {
            report.progress(0, 0, (0, 0), false);
            tokio::time::sleep(REDISCOVER).await;
            continue;
        }
        for peer in providers {
            match learn_from(ctx, id, peer).await {
                Ok(found) => return Ok(found),
                Err(e) => {
                    dropped.insert(peer);
                    report.dropped(peer, format!("{e:#}")).await;
                }
            }
        }
    }
}

async fn learn_from(ctx: &Ctx, id: &ContentId, peer: PeerId) -> Result<(Manifest, Vec<PieceHash>)> {
    let mut s = ctx.control.clone().open_stream(peer, BLOBS_PROTOCOL).await?;
    let manifest = manifest_on(&mut s, id).await?;
    let bytes =
        stream::fetch_body(&mut s, &BlobRequest::Pieces { id: *id }, (MAX_PIECES * 32) as usize).await?;
    let hashes = decode_piece_list(&bytes, &manifest).context("its piece list is bad")?;
    Ok((manifest, hashes))
}

async fn manifest_on(s: &mut libp2p::Stream, id: &ContentId) -> Result<Manifest> {
    let bytes = stream::fetch_body(s, &BlobRequest::Manifest { id: *id }, MAX_MANIFEST_LEN).await?;
    Manifest::decode(&bytes, id).context("its manifest is bad")
}

/// What content `id` is, as member `peer`'s manifest of it says (checked against the id, so it
/// cannot say otherwise): before anything of it is downloaded.
pub(crate) async fn inspect(ctx: &Ctx, id: ContentId, peer: PeerId) -> Result<Manifest> {
    anyhow::ensure!(ctx.members.borrow().is_other(&peer), "{peer} is not a member of this party");
    let mut control = ctx.control.clone();
    let ask = async move {
        let mut s = control.open_stream(peer, BLOBS_PROTOCOL).await?;
        manifest_on(&mut s, &id).await
    };
    tokio::time::timeout(INSPECT_TIMEOUT, ask).await.context("the member did not answer in time")?
}

/// Pulls every missing piece from every provider found, until all are written.
async fn pull(
    ctx: &Ctx,
    id: ContentId,
    tree: &Tree,
    hashes: Vec<PieceHash>,
    have: Bitmap,
    dropped: HashSet<PeerId>,
    report: &mut Reporter,
) -> Result<()> {
    let layout = tree.layout().clone();
    let total = layout.total();
    let mut done: u64 = have.missing().fold(total, |left, p| left - layout.piece_len(p));
    let sched = Arc::new(Mutex::new(Sched::new(&have, &layout, dropped)));
    let lock = |s: &Arc<Mutex<Sched>>| s.lock().unwrap_or_else(|e| e.into_inner()).done();
    let direct = |s: &Arc<Mutex<Sched>>| s.lock().unwrap_or_else(|e| e.into_inner()).direct.len();
    let hashes = Arc::new(hashes);
    let mut w = writer::spawn(id, tree.clone(), have, ctx.db_path.clone())?;
    let mut workers: JoinSet<(PeerId, Result<()>)> = JoinSet::new();
    let mut active: HashSet<PeerId> = HashSet::new();
    let mut looking: Option<tokio::task::JoinHandle<Vec<PeerId>>> = None;
    let mut last_look: Option<Instant> = None;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    while !lock(&sched) {
        tokio::select! {
            written = w.results.recv() => match written.context("the writer stopped")? {
                Written::Good(piece) => {
                    sched.lock().unwrap_or_else(|e| e.into_inner()).good(piece);
                    done += layout.piece_len(piece);
                    report.progress(done, total, (active.len(), direct(&sched)), false);
                }
                Written::Bad { index, from } => {
                    let first = {
                        let mut s = sched.lock().unwrap_or_else(|e| e.into_inner());
                        s.give_back(index);
                        s.drop_peer(from)
                    };
                    if first {
                        report.dropped(from, format!("piece {index} did not match its hash")).await;
                    }
                }
                Written::Failed(why) => bail!(why),
            },
            Some(ended) = workers.join_next() => {
                if let Ok((peer, result)) = ended {
                    active.remove(&peer);
                    if let Err(e) = result {
                        tracing::info!(content = %id, %peer, "provider stopped: {e:#}");
                    }
                }
            },
            found = wait_look(&mut looking) => {
                looking = None;
                for peer in found {
                    if active.insert(peer) {
                        let ips = if ctx.direct { ctx.members.borrow().ips(&peer).to_vec() } else { Vec::new() };
                        let provider = Provider { peer, ips, control: ctx.control.clone() };
                        let to = Pipe { tx: w.tx.clone(), buffers: w.buffers.clone(), hashes: hashes.clone() };
                        workers.spawn(worker(provider, id, sched.clone(), layout.clone(), to));
                    }
                }
            },
            _ = tick.tick() => {
                report.progress(done, total, (active.len(), direct(&sched)), false);
                let due = last_look.is_none_or(|t| t.elapsed() >= REDISCOVER);
                if looking.is_none() && due {
                    last_look = Some(Instant::now());
                    let mut skip = active.clone();
                    skip.extend(sched.lock().unwrap_or_else(|e| e.into_inner()).dropped.iter().copied());
                    let ctx = ctx.clone();
                    looking = Some(tokio::spawn(async move { discover(&ctx, id, &skip).await }));
                }
            },
        }
    }
    report.progress(done, total, (active.len(), direct(&sched)), true);
    workers.abort_all();
    let (reply, finished) = oneshot::channel();
    w.tx.send(ToWriter::Finish(reply)).await.context("the writer stopped")?;
    finished.await.context("the writer stopped")?
}

async fn wait_look(looking: &mut Option<tokio::task::JoinHandle<Vec<PeerId>>>) -> Vec<PeerId> {
    match looking {
        Some(handle) => handle.await.unwrap_or_default(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::index;

    #[test]
    fn saved_pieces_that_the_disk_lost_are_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let game = dir.path().join("game");
        std::fs::create_dir(&game).unwrap();
        std::fs::write(game.join("a"), vec![1u8; 3 << 20]).unwrap();
        let indexed = index::hash(index::scan(&game).unwrap(), |_, _| {}).unwrap();
        let tree = Tree::new(dir.path().to_owned(), indexed.manifest.clone());
        let mut have = Bitmap::new(3);
        (0..3).for_each(|p| have.set(p, true));
        assert_eq!(verify_saved(&tree, &indexed.pieces, &mut have), 0);
        // A crash lost part of the second piece.
        let file = std::fs::OpenOptions::new().write(true).open(game.join("a")).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[0u8; 10], (1 << 20) + 5).unwrap();
        assert_eq!(verify_saved(&tree, &indexed.pieces, &mut have), 1);
        assert_eq!(have.missing().collect::<Vec<_>>(), [1]);
    }
}
