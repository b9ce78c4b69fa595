//! The plugin host a running Partyline owns: it starts the enabled plugins, hands each the
//! party's events (and its own messages from other members), and turns what plugins put out into
//! node events and messages. Plugins that cannot start are reported and left out.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::bindings::partyline::plugin::notify;
use super::bindings::partyline::plugin::types::{
    Content, DeviceMessage, Event, Member, PeerMessage, PluginPanel, PluginToast, TransferProgress, UiAction,
    VoiceState,
};
use super::blob_access::{BlobAccess, Handed, content};
use super::db::PluginDb;
use super::host_api::{HostState, PluginOut, member as from_info};
use super::installed::Installed;
use super::permission::Permission;
use super::runtime::{CompiledCache, Runtime};
use super::sandbox::Sandbox;
use super::thread::{self, PluginThread, Status};
use crate::companion::gateway::DeviceEvent;
use crate::events::NodeEvent;
use crate::membership::MembershipView;
use crate::paths::Dirs;
use crate::transfer::{State, Transfers};

/// What all plugins together may have waiting for the session.
const OUT_QUEUE: usize = 256;

pub struct PluginHost {
    threads: HashMap<String, PluginThread>,
    /// Paths the user handed each plugin.
    handed: HashMap<String, Handed>,
    transfers: Option<Transfers>,
    out: mpsc::Receiver<PluginOut>,
    /// Who is in the party, to say who a message is from.
    /// Who is in the party (the node's published view).
    membership: MembershipView,
    dirs: Dirs,
    /// Running plugins that ask for permissions the user has not granted: id → (name, those).
    asking: HashMap<String, (String, Vec<Permission>)>,
    /// Running plugins' names as installed: id → name.
    names: HashMap<String, String>,
    /// Running plugins granted `companion`, and their folders: they hear what the player's
    /// devices do, and the first serves the page.
    companions: std::collections::BTreeMap<String, std::path::PathBuf>,
}

impl PluginHost {
    /// Starts the enabled plugins, sharing and downloading through `transfers` (when given),
    /// reading the party from `membership`; returns what went wrong with the others. Needs a
    /// tokio runtime.
    pub fn start(
        dirs: &Dirs,
        transfers: Option<Transfers>,
        membership: MembershipView,
    ) -> (Self, Vec<String>) {
        let (tx, out) = mpsc::channel(OUT_QUEUE);
        let mut host = Self {
            threads: HashMap::new(),
            handed: HashMap::new(),
            transfers,
            out,
            membership,
            dirs: dirs.clone(),
            asking: HashMap::new(),
            names: HashMap::new(),
            companions: Default::default(),
        };
        let mut problems = Vec::new();
        if let Err(e) = host.load_all(dirs, &tx, &mut problems) {
            problems.push(format!("plugins: {e:#}"));
        }
        (host, problems)
    }

    fn load_all(
        &mut self,
        dirs: &Dirs,
        tx: &mpsc::Sender<PluginOut>,
        problems: &mut Vec<String>,
    ) -> Result<()> {
        let mut installed = Installed::open(dirs)?;
        problems.extend(installed.ensure_bundled());
        let enabled: Vec<_> = installed.list()?.into_iter().filter(|p| p.enabled).collect();
        if enabled.is_empty() {
            return Ok(());
        }
        let runtime = Runtime::new(Some(CompiledCache::of(dirs)))?;
        for plugin in enabled {
            let id = plugin.manifest.id.clone();
            let started = (|| -> Result<PluginThread> {
                let wasm =
                    std::fs::read(plugin.dir.join("plugin.wasm")).context("cannot read plugin.wasm")?;
                let loaded = runtime.load(&wasm)?;
                let db = PluginDb::open(&dirs.plugins_database()).map_err(|e| tracing::warn!("{e:#}")).ok();
                let queue = thread::queue();
                let mut state = HostState::new(&id, &plugin.granted, db, tx.clone())
                    .with_fetcher(thread::deliver(&queue.0))
                    .with_membership(self.membership.clone());
                if let Some(transfers) = &self.transfers {
                    let handed = self.handed.entry(id.clone()).or_default().clone();
                    let runtime = tokio::runtime::Handle::current();
                    let deliver = thread::deliver(&queue.0);
                    state =
                        state.with_blobs(BlobAccess::new(transfers.clone(), runtime, handed, dirs, deliver));
                }
                let config = plugin.manifest.config.clone().into_iter().collect();
                PluginThread::spawn(&id, move || Sandbox::start(loaded.pre, state, config), queue)
            })();
            match started {
                Ok(thread) => {
                    tracing::info!(plugin = id, "plugin started");
                    let missing: Vec<Permission> = plugin
                        .manifest
                        .permissions
                        .iter()
                        .filter(|p| !plugin.granted.contains(p))
                        .cloned()
                        .collect();
                    if !missing.is_empty() {
                        self.asking.insert(id.clone(), (plugin.manifest.name.clone(), missing));
                    }
                    self.names.insert(id.clone(), plugin.manifest.name.clone());
                    if plugin.granted.contains(&Permission::Companion) {
                        self.companions.insert(id.clone(), plugin.dir.clone());
                    }
                    self.threads.insert(id, thread);
                }
                Err(e) => problems.push(format!("plugin {id}: {e:#}")),
            }
        }
        Ok(())
    }

    /// Downloads a plugin asked for that finished while it was not running (or before it could
    /// place them): it is told again, once it runs.
    pub async fn remind(&self) {
        let Some(transfers) = &self.transfers else { return };
        let Ok(all) = transfers.list().await else { return };
        for info in all.iter().filter(|c| c.state == State::Stored) {
            if let Some(thread) = info.plugin.as_ref().and_then(|p| self.threads.get(p)) {
                thread.send(Event::TransferDone(content(info)));
            }
        }
    }

    /// The user handed `path` to `plugin` (a command or its panel): it may share what is there.
    pub fn hand(&mut self, plugin: &str, path: &std::path::Path) {
        self.handed.entry(plugin.to_owned()).or_default().hand(path);
    }

    /// Whether the user has handed `plugin` this path, or a folder it is in, already.
    pub fn holds(&self, plugin: &str, path: &std::path::Path) -> bool {
        let Ok(path) = path.canonicalize() else { return false };
        self.handed.get(plugin).is_some_and(|handed| handed.covers(&path))
    }

    /// Whether `plugin` is running.
    pub fn runs(&self, plugin: &str) -> bool {
        self.threads.contains_key(plugin)
    }

    /// The next thing a plugin put out (waits; never returns without plugins).
    pub async fn recv(&mut self) -> Option<PluginOut> {
        if self.threads.is_empty() {
            return std::future::pending().await;
        }
        self.out.recv().await
    }

    /// Hands the plugins what they hear of a node event.
    pub fn on_event(&mut self, event: &NodeEvent) {
        if self.threads.is_empty() {
            return;
        }
        if let Some((from, event)) = for_companions(event) {
            for id in self.companions.keys().filter(|id| **id != from) {
                if let Some(thread) = self.threads.get(id) {
                    thread.send(event.clone());
                }
            }
            return;
        }
        let Some(event) = self.translate(event) else { return };
        match event {
            (Some(plugin), event) => {
                if let Some(thread) = self.threads.get(&plugin) {
                    thread.send(event);
                }
            }
            (None, event) => {
                for thread in self.threads.values() {
                    thread.send(event.clone());
                }
            }
        }
    }

    /// The plugin event for a node event, and the one plugin it is for (`None`: all).
    fn translate(&self, event: &NodeEvent) -> Option<(Option<String>, Event)> {
        let member = |peer: &PeerId, name: &str| Member {
            id: peer.to_string(),
            name: name.to_owned(),
            me: false,
            owner: false,
        };
        Some(match event {
            NodeEvent::Joined { members, .. } => {
                (None, Event::Joined(members.iter().map(from_info).collect()))
            }
            NodeEvent::MemberJoined { peer, name } => (None, Event::MemberJoined(member(peer, name))),
            NodeEvent::MemberLeft { peer, name, .. } => (None, Event::MemberLeft(member(peer, name))),
            NodeEvent::Chat { peer, text, history: false, .. } => {
                (None, Event::Chat((self.member(peer)?, text.clone())))
            }
            NodeEvent::PluginMessage { peer, plugin, data } => {
                let from = self.member(peer)?;
                (Some(plugin.clone()), Event::Message(PeerMessage { from, data: data.clone() }))
            }
            NodeEvent::Transfer { id, done, total, peers, plugin: Some(plugin), .. } => {
                let progress =
                    TransferProgress { id: id.to_string(), done: *done, total: *total, peers: *peers as u32 };
                (Some(plugin.clone()), Event::Transfer(progress))
            }
            NodeEvent::TransferComplete { id, name, total, files, path, plugin: Some(plugin), .. } => {
                let done = Content {
                    id: id.to_string(),
                    name: name.clone(),
                    size: *total,
                    files: *files,
                    path: Some(path.display().to_string()),
                };
                (Some(plugin.clone()), Event::TransferDone(done))
            }
            NodeEvent::TransferFailed { id, message, plugin: Some(plugin), .. } => {
                (Some(plugin.clone()), Event::TransferFailed((id.to_string(), message.clone())))
            }
            NodeEvent::Speaking { peer, on, .. } => (None, Event::Speaking((self.member(peer)?, *on))),
            NodeEvent::VoiceState { muted, deafened } => {
                (None, Event::Voice(VoiceState { muted: *muted, deafened: *deafened }))
            }
            NodeEvent::Headset { device } => (None, Event::Headset(device.clone())),
            e if e.is_terminal() => (None, Event::Left),
            _ => return None,
        })
    }

    /// Hands what a paired device did to the plugins granted `companion`.
    pub fn on_device(&self, event: &DeviceEvent) {
        let event = match event {
            DeviceEvent::Waiting { .. } => return,
            DeviceEvent::Connected { device } => Event::DeviceConnected(device.clone()),
            DeviceEvent::Message { device, text } => {
                Event::DeviceMessage(DeviceMessage { device: device.clone(), text: text.clone() })
            }
            DeviceEvent::Left { device } => Event::DeviceLeft(device.clone()),
        };
        for id in self.companions.keys() {
            if let Some(thread) = self.threads.get(id) {
                thread.send(event.clone());
            }
        }
    }

    /// Where the page of the companion plugin is (`None`: no running plugin was granted
    /// `companion`, and the gateway stays off).
    pub fn companion_page(&self) -> Option<std::path::PathBuf> {
        self.companions.values().next().map(|dir| dir.join(super::installed::ASSETS))
    }

    fn member(&self, peer: &PeerId) -> Option<Member> {
        self.membership.borrow().get(peer).map(|m| from_info(&m.info))
    }

    /// The user acted on a plugin's panel.
    pub fn act(&self, plugin: &str, id: String, value: Option<String>) -> Result<()> {
        let thread = self.thread(plugin)?;
        if !thread.send(Event::Action(UiAction { id, value })) {
            bail!("plugin {plugin} is busy");
        }
        Ok(())
    }

    pub fn restart(&self, plugin: &str) -> Result<()> {
        self.thread(plugin)?.restart(None);
        Ok(())
    }

    /// A running plugin's name as installed (what the user saw when installing it), not a
    /// title it chooses: its id when unknown.
    pub fn name(&self, plugin: &str) -> String {
        self.names.get(plugin).cloned().unwrap_or_else(|| plugin.to_owned())
    }

    /// What running plugins ask for and were not granted, as events for the front ends.
    pub fn asks(&self) -> Vec<NodeEvent> {
        let mut asks: Vec<NodeEvent> = self.asking.keys().map(|id| self.ask(id)).collect();
        asks.sort_by_key(|e| format!("{e:?}"));
        asks
    }

    fn ask(&self, plugin: &str) -> NodeEvent {
        let (name, missing) = self.asking.get(plugin).cloned().unwrap_or_default();
        let permissions = missing.iter().map(ToString::to_string).collect();
        NodeEvent::PluginAsks { plugin: plugin.to_owned(), name, permissions }
    }

    /// Grants `permissions` (`None`: all it asks for) to a running plugin: remembered, and the
    /// plugin restarted with them. Returns what it still asks for.
    pub fn grant(&mut self, plugin: &str, permissions: Option<Vec<Permission>>) -> Result<NodeEvent> {
        let thread = self.thread(plugin)?;
        let mut installed = Installed::open(&self.dirs)?;
        let permissions = match permissions {
            Some(list) => list,
            None => installed.get(plugin)?.manifest.permissions,
        };
        let granted = installed.change_grants(plugin, &permissions, true)?;
        thread.restart(Some(granted.clone()));
        if granted.contains(&Permission::Companion) {
            self.companions.insert(plugin.to_owned(), installed.get(plugin)?.dir);
        } else {
            self.companions.remove(plugin);
        }
        if let Some((_, missing)) = self.asking.get_mut(plugin) {
            missing.retain(|p| !granted.contains(p));
        }
        let ask = self.ask(plugin);
        self.asking.retain(|_, (_, missing)| !missing.is_empty());
        Ok(ask)
    }

    /// Each running plugin and how it is doing.
    pub fn status(&self) -> Vec<(String, Status)> {
        let mut all: Vec<_> = self.threads.iter().map(|(id, t)| (id.clone(), t.status())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn thread(&self, plugin: &str) -> Result<&PluginThread> {
        self.threads.get(plugin).with_context(|| format!("no plugin {plugin} is running"))
    }
}

/// What only plugins granted `companion` hear of: other plugins' panels and toasts, and the
/// party's invite links (for the companion page), and which plugin they came from (none: the
/// host).
fn for_companions(event: &NodeEvent) -> Option<(String, Event)> {
    Some(match event {
        NodeEvent::PluginPanel { plugin, name, title, elements } => {
            let elements = elements.iter().map(super::panel::to_plugin).collect();
            let panel =
                PluginPanel { plugin: plugin.clone(), name: name.clone(), title: title.clone(), elements };
            (plugin.clone(), Event::Panel(panel))
        }
        NodeEvent::PluginToast { plugin, text, outcome } => {
            let outcome = outcome.map(|o| match o {
                crate::events::Outcome::Working => notify::Outcome::Working,
                crate::events::Outcome::Done => notify::Outcome::Done,
                crate::events::Outcome::Failed => notify::Outcome::Failed,
            });
            (
                plugin.clone(),
                Event::Toast(PluginToast { plugin: plugin.clone(), text: text.clone(), outcome }),
            )
        }
        NodeEvent::Link { link, .. } => (String::new(), Event::Invite(link.clone())),
        _ => return None,
    })
}
