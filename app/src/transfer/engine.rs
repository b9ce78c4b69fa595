//! The transfer engine: one task that owns the transfers database, the catalog of content served
//! and the downloads under way. Work that takes time (hashing a shared folder, a download, a
//! copy across file systems) runs elsewhere and comes back as a change for this task to apply,
//! so the state has one owner and changes in one place.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use libp2p::PeerId;
use partyline_protocol::content::{ContentId, Manifest};
use tokio::sync::{mpsc, oneshot, watch};

use super::db::{Db, State};
use super::disk::{self, Tree};
use super::fetch::{self, Job, Saved};
use super::index;
use super::rows::{ContentInfo, complete_event, info, manifest_of, served, shared_event, tree_of};
use super::serve::{self, Catalog};
use super::{BLOBS_PROTOCOL, Members};
use crate::events::NodeEvent;

/// Commands waiting for the engine.
const COMMANDS: usize = 32;
/// Downloads running at once; more wait their turn.
const MAX_RUNNING: usize = 4;
/// Downloads waiting at most.
const MAX_WAITING: usize = 64;

#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// `<data>/transfers`: downloads in progress (`partial/`) and finished ones not yet placed
    /// (`stored/`), and the database.
    pub dir: PathBuf,
    /// Bytes per second this node uploads at most, all peers together (`None`: no limit).
    pub upload_limit: Option<u64>,
    /// Offer direct sealed channels on a TCP port at this IP, and ask providers for theirs
    /// (`None`: libp2p streams only).
    pub direct: Option<std::net::IpAddr>,
}

/// A handle to the engine. Cheap to clone.
#[derive(Clone)]
pub struct Transfers {
    tx: mpsc::Sender<Command>,
}

type Reply<T> = oneshot::Sender<Result<T>>;
type Change = Box<dyn FnOnce(&mut Engine) + Send>;

enum Command {
    Share { path: PathBuf, reply: Reply<ContentInfo> },
    Get { id: ContentId, label: String, plugin: Option<String>, reply: Reply<()> },
    Cancel { id: ContentId, reply: Reply<()> },
    Place { id: ContentId, dest: PathBuf, reply: Reply<PathBuf> },
    List(Reply<Vec<ContentInfo>>),
    Inspect { id: ContentId, peer: PeerId, reply: Reply<Manifest> },
}

impl Transfers {
    /// Starts serving and resumes the downloads a previous run left unfinished.
    pub(crate) fn start(
        mut control: libp2p_stream::Control,
        members: Members,
        events: mpsc::Sender<NodeEvent>,
        config: TransferConfig,
    ) -> Result<Self> {
        for dir in ["partial", "stored"] {
            let dir = config.dir.join(dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let db_path = config.dir.join("transfers.sqlite3");
        let db = Db::open(&db_path)?;
        let (catalog, catalog_rx) = watch::channel(Catalog::default());
        let incoming = control.accept(BLOBS_PROTOCOL).context("the blobs protocol is registered once")?;
        let door = match config.direct {
            Some(ip) => match std::net::TcpListener::bind((ip, 0)).and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            }) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    tracing::warn!("no direct transfer channel (cannot listen on {ip}): {e}");
                    None
                }
            },
            None => None,
        };
        tokio::spawn(serve::serve(incoming, door, catalog_rx, members.clone(), config.upload_limit));
        let (tx, commands) = mpsc::channel(COMMANDS);
        let (changes_tx, changes) = mpsc::channel(COMMANDS);
        let ctx = fetch::Ctx {
            control,
            members,
            events: events.clone(),
            partial: config.dir.join("partial"),
            db_path,
            direct: config.direct.is_some(),
        };
        let mut engine = Engine {
            db,
            catalog,
            ctx,
            events,
            stored: config.dir.join("stored"),
            running: HashMap::new(),
            waiting: VecDeque::new(),
            changes: changes_tx,
        };
        engine.publish();
        engine.resume()?;
        tokio::spawn(engine.run(commands, changes));
        Ok(Self { tx })
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(command(reply)).await.map_err(|_| anyhow!("transfers have stopped"))?;
        rx.await.map_err(|_| anyhow!("transfers have stopped"))?
    }

    /// Shares a file or folder where it is: hashes it (unless it is unchanged since it was last
    /// shared) and serves it to members who ask.
    pub async fn share(&self, path: PathBuf) -> Result<ContentInfo> {
        self.call(|reply| Command::Share { path, reply }).await
    }

    /// Starts downloading `id` from every member who has it; progress and the end come as node
    /// events. `plugin` is told when it is done (also after a restart).
    pub async fn get(&self, id: ContentId, label: String, plugin: Option<String>) -> Result<()> {
        self.call(|reply| Command::Get { id, label, plugin, reply }).await
    }

    /// Stops a download and throws away what it wrote.
    pub async fn cancel(&self, id: ContentId) -> Result<()> {
        self.call(|reply| Command::Cancel { id, reply }).await
    }

    /// Moves downloaded content into folder `dest`, under its own name; where it is now.
    pub async fn place(&self, id: ContentId, dest: PathBuf) -> Result<PathBuf> {
        self.call(|reply| Command::Place { id, dest, reply }).await
    }

    pub async fn list(&self) -> Result<Vec<ContentInfo>> {
        self.call(Command::List).await
    }

    /// What content `id` is, by member `peer`'s manifest of it (checked against the id).
    pub async fn inspect(&self, id: ContentId, peer: PeerId) -> Result<Manifest> {
        self.call(|reply| Command::Inspect { id, peer, reply }).await
    }
}

pub(crate) struct Engine {
    db: Db,
    catalog: watch::Sender<Catalog>,
    ctx: fetch::Ctx,
    events: mpsc::Sender<NodeEvent>,
    stored: PathBuf,
    running: HashMap<ContentId, tokio::task::AbortHandle>,
    waiting: VecDeque<ContentId>,
    changes: mpsc::Sender<Change>,
}

impl Engine {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut changes: mpsc::Receiver<Change>) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(change) = changes.recv() => change(&mut self),
            }
        }
        for (_, task) in self.running.drain() {
            task.abort();
        }
    }

    /// Runs `work` off this task; its result comes back to `then`, applied here.
    fn off_task<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
        then: impl FnOnce(&mut Engine, T) + Send + 'static,
    ) -> tokio::task::AbortHandle {
        let changes = self.changes.clone();
        tokio::spawn(async move {
            let result = work.await;
            let change: Change = Box::new(move |engine: &mut Engine| then(engine, result));
            let _ = changes.send(change).await;
        })
        .abort_handle()
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Share { path, reply } => self.share(path, reply),
            Command::Get { id, label, plugin, reply } => {
                let _ = reply.send(self.get(id, &label, plugin.as_deref()));
            }
            Command::Cancel { id, reply } => {
                let _ = reply.send(self.cancel(&id));
            }
            Command::Place { id, dest, reply } => self.place(id, dest, reply),
            Command::List(reply) => {
                let _ = reply.send(self.db.all().map(|rows| rows.iter().map(info).collect()));
            }
            Command::Inspect { id, peer, reply } => {
                let ctx = self.ctx.clone();
                tokio::spawn(async move {
                    let _ = reply.send(fetch::inspect(&ctx, id, peer).await);
                });
            }
        }
    }

    fn share(&mut self, path: PathBuf, reply: Reply<ContentInfo>) {
        self.off_task(
            async move {
                tokio::task::spawn_blocking(move || index::scan(&path)).await.map_err(anyhow::Error::from)?
            },
            |engine, scanned| {
                let scan = match scanned {
                    Ok(scan) => scan,
                    Err(e) => return drop(reply.send(Err(e))),
                };
                let name = scan.entries.first().map(|e| e.path.clone()).unwrap_or_default();
                if let Ok(Some(row)) = engine.db.shared_at(&scan.root, &name, &scan.fingerprint) {
                    let info = info(&row);
                    engine.emit(shared_event(&info));
                    return drop(reply.send(Ok(info)));
                }
                engine.off_task(
                    async move {
                        tokio::task::spawn_blocking(move || index::hash(scan, |_, _| {}))
                            .await
                            .map_err(anyhow::Error::from)?
                    },
                    |engine, hashed| drop(reply.send(hashed.and_then(|indexed| engine.shared(indexed)))),
                );
            },
        );
    }

    fn shared(&mut self, indexed: index::Indexed) -> Result<ContentInfo> {
        let id = indexed.manifest.id();
        let pieces = partyline_protocol::content::encode_piece_list(&indexed.pieces);
        let name = indexed.manifest.name().to_owned();
        self.db.put_shared(
            &id,
            &name,
            &indexed.manifest.encode(),
            &pieces,
            &indexed.root,
            &indexed.fingerprint,
        )?;
        self.publish();
        let row = self.db.get(&id)?.context("just stored")?;
        let info = info(&row);
        self.emit(shared_event(&info));
        Ok(info)
    }

    fn get(&mut self, id: ContentId, label: &str, plugin: Option<&str>) -> Result<()> {
        if self.running.contains_key(&id) || self.waiting.contains(&id) {
            return Ok(());
        }
        if !self.db.start_download(&id, label, plugin)? {
            // Whole here already: done at once.
            let row = self.db.get(&id)?.context("content vanished")?;
            self.emit(complete_event(&row));
            return Ok(());
        }
        if self.waiting.len() >= MAX_WAITING {
            bail!("too many downloads waiting; cancel some first");
        }
        self.waiting.push_back(id);
        self.start_waiting();
        Ok(())
    }

    fn start_waiting(&mut self) {
        while self.running.len() < MAX_RUNNING {
            let Some(id) = self.waiting.pop_front() else { return };
            let row = match self.db.get(&id) {
                Ok(Some(row)) if row.state == State::Downloading => row,
                _ => continue,
            };
            let saved = match (row.manifest, row.pieces) {
                (Some(manifest), Some(pieces)) => Some(Saved { manifest, pieces, have: row.have }),
                _ => None,
            };
            let job = Job { id, label: row.label.clone(), plugin: row.plugin.clone(), saved };
            let task = self.off_task(fetch::run(self.ctx.clone(), job), move |engine, result| {
                engine.running.remove(&id);
                engine.finished(id, result);
                engine.start_waiting();
            });
            self.running.insert(id, task);
        }
    }

    fn finished(&mut self, id: ContentId, result: Result<Tree>) {
        let outcome = result.and_then(|tree| {
            let stored = self.stored.join(id.to_string());
            if stored.exists() {
                std::fs::remove_dir_all(&stored)
                    .with_context(|| format!("cannot clear {}", stored.display()))?;
            }
            disk::rename_new(tree.root(), &stored)
                .with_context(|| format!("cannot move the download into {}", stored.display()))?;
            self.db.set_state(&id, State::Stored, Some(&stored))
        });
        let row = self.db.get(&id).ok().flatten();
        match (outcome, row) {
            (Ok(()), Some(row)) => {
                self.publish();
                self.emit(complete_event(&row));
            }
            (Err(e), row) => {
                let message = format!("{e:#}");
                tracing::warn!(content = %id, "download failed: {message}");
                let _ = self.db.fail(&id, &message);
                let (name, label, plugin) = row.map(|r| (r.name, r.label, r.plugin)).unwrap_or_default();
                self.emit(NodeEvent::TransferFailed { id, name, label, message, plugin });
            }
            (Ok(()), None) => {}
        }
    }

    fn cancel(&mut self, id: &ContentId) -> Result<()> {
        let row = self.db.get(id)?.with_context(|| format!("no transfer {}", id.short()))?;
        anyhow::ensure!(
            row.state == State::Downloading || row.state == State::Failed,
            "{} is not downloading",
            row.name
        );
        if let Some(task) = self.running.remove(id) {
            task.abort();
        }
        self.waiting.retain(|w| w != id);
        self.db.fail(id, "cancelled")?;
        let partial = self.ctx.partial.join(id.to_string());
        if partial.exists() {
            // The writer may still be finishing its last piece; what it leaves is removed on the
            // next cancel or restart of the same content.
            let _ = std::fs::remove_dir_all(&partial);
        }
        self.emit(NodeEvent::TransferFailed {
            id: *id,
            name: row.name,
            label: row.label,
            message: "cancelled".into(),
            plugin: row.plugin,
        });
        self.start_waiting();
        Ok(())
    }

    fn place(&mut self, id: ContentId, dest: PathBuf, reply: Reply<PathBuf>) {
        let tree = match self.db.get(&id).and_then(|row| {
            let row = row.with_context(|| format!("no content {}", id.short()))?;
            match row.state {
                State::Stored => tree_of(&row),
                State::Placed if row.root.as_deref() == Some(dest.as_path()) => {
                    Ok(Tree::new(dest.clone(), manifest_of(&row)?))
                }
                _ => bail!("{} is not a finished download", row.name),
            }
        }) {
            Ok(tree) => tree,
            Err(e) => return drop(reply.send(Err(e))),
        };
        if tree.root() == dest {
            return drop(reply.send(Ok(tree.top())));
        }
        let work_dest = dest.clone();
        self.off_task(
            async move {
                tokio::task::spawn_blocking(move || {
                    let placed = disk::place(&tree, &work_dest)?;
                    Tree::new(work_dest.clone(), tree.manifest().clone()).seal()?;
                    let _ = std::fs::remove_dir(tree.root());
                    Ok(placed)
                })
                .await
                .map_err(anyhow::Error::from)?
            },
            move |engine, placed: Result<PathBuf>| {
                let placed = placed.and_then(|path| {
                    engine.db.set_state(&id, State::Placed, Some(&dest))?;
                    engine.publish();
                    Ok(path)
                });
                let _ = reply.send(placed);
            },
        );
    }

    /// Picks up the downloads a previous run did not finish.
    fn resume(&mut self) -> Result<()> {
        for row in self.db.all()? {
            if row.state == State::Downloading {
                tracing::info!(content = %row.id, name = row.name, "resuming a download");
                self.waiting.push_back(row.id);
            }
        }
        self.start_waiting();
        Ok(())
    }

    /// Tells the serving side what whole content there is.
    fn publish(&mut self) {
        let mut catalog = HashMap::new();
        for row in self.db.all().unwrap_or_default() {
            if !row.state.whole() {
                continue;
            }
            match served(&row) {
                Ok(served) => {
                    catalog.insert(row.id, Arc::new(served));
                }
                Err(e) => tracing::warn!(content = %row.id, "not serving {}: {e:#}", row.name),
            }
        }
        self.catalog.send_replace(Arc::new(catalog));
    }

    fn emit(&self, event: NodeEvent) {
        let events = self.events.clone();
        // Completions must not be lost: wait for room, off this task.
        tokio::spawn(async move {
            let _ = events.send(event).await;
        });
    }
}
