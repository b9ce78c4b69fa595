//! The running session, the one owner of the node and the plugin host: node events go out (to
//! the console, to the overlay when one is drawn, and to other processes that follow over the
//! local socket), inputs come in from stdin, from the overlay and from other `partyline`
//! invocations, and all of them are carried out here, in one place, in the order they come.
//! Front ends (`cli`, `overlay`) read what goes out and send inputs; they hold no session state.

use std::process::ExitCode;

use anyhow::{Context, Result};
use partyline_protocol::{InviteTerms, JoinLink, PartyId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

mod asks;
mod companion;
mod queues;
use queues::{recv_front, recv_maybe};
pub(crate) mod input;
mod start;

pub use input::Input;
pub use start::{Begin, Start, invite_terms};

use crate::events::NodeEvent;
use crate::ipc::{self, Answer, Request};
use crate::net::Node;
use crate::plugins::{PluginHost, PluginOut};
use crate::transfer::State;

/// Exit codes besides 0 (success), 1 (error) and 2 (bad usage).
pub const EXIT_JOIN_FAILED: u8 = 3;
pub const EXIT_KICKED: u8 = 4;

/// Where the session writes for the person at the terminal: the command line's printer.
pub trait Console: Send + Sync {
    fn event(&self, event: &NodeEvent);
    fn help(&self, text: &str);
    fn transfers(&self, list: &[crate::transfer::ContentInfo]);
    fn error(&self, message: &str);
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A front end drawn by this process (the overlay): it is told every event and what other
/// processes ask of it, and sends inputs back. `notify` must not block (it drops what does not fit).
pub struct Front {
    pub notify: Box<dyn FnMut(FrontMsg) + Send>,
    pub inputs: mpsc::Receiver<Input>,
}

#[derive(Debug)]
pub enum FrontMsg {
    Event(NodeEvent),
    /// Draw yourself into this PNG (and the layout into `<path>.json`).
    Screenshot(std::path::PathBuf),
    Interactive(bool),
}

pub(super) struct Session {
    pub(super) node: Node,
    pub(super) console: std::sync::Arc<dyn Console>,
    pub(super) terms: InviteTerms,
    pub(super) front: Option<Front>,
    /// Requests from other `partyline` processes.
    pub(super) requests: Option<mpsc::Receiver<ipc::Incoming>>,
    /// The party we are in (or joining).
    party: Option<PartyId>,
    /// A link to join once the current party is left.
    switch_to: Option<JoinLink>,
    /// A link that came from outside while in a party, waiting for the user's yes or no.
    offered: Option<JoinLink>,
    /// A path typed into a plugin's panel, waiting for the user's yes or no.
    path_asked: Option<asks::PathAsk>,
    /// The front end has closed: leave, then stop.
    quitting: bool,
    plugins: PluginHost,
    /// The last panel of each plugin (`/games` prints the game store's).
    panels: std::collections::HashMap<String, NodeEvent>,
    /// Other processes following the events (`partyline games …`, `partyline send`).
    followers: Vec<mpsc::Sender<String>>,
    /// The companion gateway while a plugin granted `companion` runs, what it tells the user,
    /// and where to start it from (the data folder and the settings).
    pub(super) companion: Option<crate::companion::gateway::Gateway>,
    pub(super) companion_events: Option<mpsc::Receiver<crate::companion::gateway::DeviceEvent>>,
    pub(super) companion_setup: Option<(crate::paths::Dirs, crate::config::CompanionSettings)>,
}

impl Session {
    pub(super) fn new(
        node: Node,
        console: std::sync::Arc<dyn Console>,
        terms: InviteTerms,
        front: Option<Front>,
        requests: mpsc::Receiver<ipc::Incoming>,
        plugins: PluginHost,
    ) -> Self {
        let requests = Some(requests);
        Self {
            node,
            console,
            terms,
            front,
            requests,
            party: None,
            switch_to: None,
            offered: None,
            path_asked: None,
            quitting: false,
            plugins,
            panels: std::collections::HashMap::new(),
            followers: Vec::new(),
            companion: None,
            companion_events: None,
            companion_setup: None,
        }
    }

    /// Joins the party of the link given on the command line. False when that failed and there
    /// is nothing left to do (headless); the overlay stays up and shows why.
    pub(super) async fn join_first(&mut self, link: &str) -> bool {
        match link.parse::<JoinLink>() {
            Ok(link) => {
                if self.join(link).await || self.front.is_some() {
                    return true;
                }
            }
            Err(e) => {
                let event = NodeEvent::JoinFailed { message: format!("cannot use this link: {e}") };
                self.announce(event);
                if self.front.is_some() {
                    return true;
                }
            }
        }
        let _ = self.node.shutdown().await;
        false
    }

    /// Runs until the node leaves its party (headless) or the overlay closes.
    pub(super) async fn run(mut self, mut events: mpsc::Receiver<NodeEvent>) -> ExitCode {
        for ask in self.plugins.asks() {
            self.announce(ask);
        }
        self.plugins.remind().await;
        let mut plugin_messages = self.node.plugin_messages();
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut stdin_open = self.front.is_none();
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let mut signalled = false;
        let code = loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { break ExitCode::FAILURE };
                    if let Some(code) = self.on_event(event).await {
                        break code;
                    }
                }
                line = lines.next_line(), if stdin_open => match line {
                    Ok(Some(line)) => match input::parse(&line) {
                        Ok(input) => self.run_input(input).await,
                        Err(e) => self.error(&e),
                    },
                    // No more input (stdin closed, or not a terminal): keep the party going.
                    Ok(None) | Err(_) => stdin_open = false,
                },
                input = recv_front(&mut self.front), if !self.quitting => match input {
                    Some(input) => self.run_input(input).await,
                    None => {
                        self.quitting = true;
                        if self.party.is_none() || self.node.leave().await.is_err() {
                            break ExitCode::SUCCESS;
                        }
                    }
                },
                out = self.plugins.recv() => {
                    if let Some(out) = out {
                        self.on_plugin(out).await;
                    }
                }
                message = recv_maybe(&mut plugin_messages) => match message {
                    Some(message) => {
                        self.plugins.on_event(&message);
                        self.publish(&message);
                    }
                    None => plugin_messages = None,
                },
                event = recv_maybe(&mut self.companion_events) => match event {
                    Some(event) => self.on_device(event),
                    None => self.companion_events = None,
                },
                request = recv_maybe(&mut self.requests) => match request {
                    Some(incoming) => {
                        if let Some(lines) = incoming.lines {
                            self.followers.push(lines);
                        }
                        let answer = self.on_request(incoming.request).await;
                        let _ = incoming.reply.send(answer);
                    }
                    None => self.requests = None,
                },
                // Ctrl-C or SIGTERM: leave properly, then stop when the `left` event comes.
                () = &mut signal, if !signalled => {
                    signalled = true;
                    self.quitting = true;
                    if self.party.is_none() || self.node.leave().await.is_err() {
                        break ExitCode::SUCCESS;
                    }
                }
            }
        };
        // Let the rest of the events (say, the reason for leaving) out before stopping.
        let _ = self.node.shutdown().await;
        while let Ok(event) = events.try_recv() {
            self.publish(&event);
        }
        code
    }

    async fn on_event(&mut self, event: NodeEvent) -> Option<ExitCode> {
        self.plugins.on_event(&event);
        self.publish(&event);
        let terminal = event.is_terminal();
        if let NodeEvent::Joined { party, .. } = &event {
            self.party = Some(*party);
        }
        let code = exit_code(&event);
        self.tell_front(FrontMsg::Event(event));
        if !terminal {
            return None;
        }
        self.party = None;
        if let Some(link) = self.switch_to.take() {
            self.join(link).await;
            return None;
        }
        // The overlay stays up between parties; the headless node's work is done.
        if self.front.is_some() && !self.quitting { None } else { code }
    }

    /// What a plugin put out: messages go to the other members, the rest out like node events.
    async fn on_plugin(&mut self, out: PluginOut) {
        let event = match out {
            PluginOut::Message { plugin, to, data } => {
                let to = match to.map(|p| p.parse()).transpose() {
                    Ok(to) => to,
                    Err(_) => return,
                };
                if let Err(e) = self.node.plugin_message(to, plugin, data).await {
                    tracing::debug!("plugin message not sent: {e:#}");
                }
                return;
            }
            PluginOut::Panel { plugin, title, elements } => {
                let name = self.plugins.name(&plugin);
                let panel = NodeEvent::PluginPanel { plugin: plugin.clone(), name, title, elements };
                self.panels.insert(plugin, panel.clone());
                panel
            }
            PluginOut::Toast { plugin, text, outcome } => NodeEvent::PluginToast { plugin, text, outcome },
            PluginOut::Stopped { plugin, reason } => NodeEvent::PluginStopped { plugin, reason },
            PluginOut::Companion { act, .. } => return self.on_companion(act).await,
        };
        // Plugins granted `companion` draw the others' panels and toasts on the page.
        self.plugins.on_event(&event);
        self.announce(event);
    }

    /// Prints an event, and hands it to the processes following events.
    fn publish(&mut self, event: &NodeEvent) {
        self.console.event(event);
        if !self.followers.is_empty() {
            let line = crate::event_json::to_json(event).to_string();
            // A follower that hung up, or does not keep up, is let go.
            self.followers.retain(|f| f.try_send(line.clone()).is_ok());
        }
    }

    /// Prints an event and tells the front end.
    fn announce(&mut self, event: NodeEvent) {
        self.publish(&event);
        self.tell_front(FrontMsg::Event(event));
    }

    fn tell_front(&mut self, msg: FrontMsg) {
        if let Some(front) = &mut self.front {
            (front.notify)(msg);
        }
    }

    fn error(&mut self, message: &str) {
        let event = NodeEvent::Error { message: message.to_owned() };
        self.announce(event);
    }

    async fn on_request(&mut self, request: Request) -> Answer {
        let result = match request {
            Request::Open { link } => self.offer(&link).await,
            Request::Line { line } => match input::parse(&line) {
                Ok(input) => self.try_input(input).await,
                Err(e) => Err(anyhow::anyhow!(e)),
            },
            Request::Screenshot { path } if self.front.is_some() => {
                self.tell_front(FrontMsg::Screenshot(path));
                Ok(())
            }
            Request::Interactive { on } if self.front.is_some() => {
                self.tell_front(FrontMsg::Interactive(on));
                Ok(())
            }
            Request::Screenshot { .. } | Request::Interactive { .. } => {
                Err(anyhow::anyhow!("no overlay is open"))
            }
            Request::Follow => Ok(()),
        };
        match result {
            Ok(()) => Answer::Ok,
            Err(e) => Answer::Error(format!("{e:#}")),
        }
    }

    /// Joins the party of `link`, leaving the current one first; nothing if we are in it already.
    async fn open(&mut self, link: &str) -> Result<()> {
        let link: JoinLink = link.parse().map_err(|e| anyhow::anyhow!("cannot use this link: {e}"))?;
        self.switch(link).await
    }

    async fn switch(&mut self, link: JoinLink) -> Result<()> {
        if self.party == Some(link.party_id()) {
            return Ok(());
        }
        if self.party.is_some() {
            self.switch_to = Some(link);
            return self.node.leave().await;
        }
        self.join(link).await;
        Ok(())
    }

    async fn join(&mut self, link: JoinLink) -> bool {
        self.party = Some(link.party_id());
        let Err(e) = self.node.join(link).await else { return true };
        self.party = None;
        let event = NodeEvent::JoinFailed { message: format!("cannot join: {e:#}") };
        self.announce(event);
        false
    }

    async fn run_input(&mut self, input: Input) {
        if let Err(e) = self.try_input(input).await {
            self.error(&format!("{e:#}"));
        }
    }

    async fn try_input(&mut self, input: Input) -> Result<()> {
        let node = self.node.clone();
        match input {
            Input::Nothing => {}
            Input::Help => self.console.help(input::HELP),
            Input::Chat(text) => node.chat(text).await?,
            Input::Members => {
                let event = NodeEvent::Members { members: node.members().await? };
                self.announce(event);
            }
            Input::Invite { expires, uses } => {
                let terms = InviteTerms {
                    lifetime: expires.unwrap_or(self.terms.lifetime),
                    max_uses: uses.or(self.terms.max_uses),
                };
                node.invite(terms).await.context("cannot make an invite")?;
            }
            Input::Revoke(target) => drop(node.revoke(target).await?),
            Input::Kick { name, ban } => {
                node.kick(&name, ban).await?;
                if ban {
                    // A ban revokes the links the member joined with: here is a new one to share.
                    node.invite(self.terms).await?;
                }
            }
            Input::Presence(presence) => node.set_presence(presence).await?,
            Input::Voice(control) => node.voice(control).await?,
            Input::Stats => {
                self.publish(&NodeEvent::Stats(node.stats().await?));
                if let Ok(voice) = node.voice_stats().await {
                    self.publish(&NodeEvent::VoiceStats(voice));
                }
            }
            Input::Plugins => {
                for (id, status) in self.plugins.status() {
                    let state = match &status.stopped {
                        Some(why) => format!("stopped: {why}"),
                        None => "running".to_owned(),
                    };
                    let c = status.counters;
                    self.console.help(&format!(
                        "{id}: {state}; refused {}, rate-limited {}, dropped {} out and {} events",
                        c.refused, c.rate_limited, c.dropped, status.dropped_events
                    ));
                }
            }
            Input::PluginAction { plugin, id, value } => self.plugin_action(plugin, id, value)?,
            Input::AnswerPath(share) => self.answer_path(share)?,
            Input::Share(path) => self.hand_to(GAME_STORE, "share", &path, String::new())?,
            Input::Get(game) => self.bundled(GAME_STORE)?.act(GAME_STORE, "get".into(), Some(game))?,
            Input::Games => {
                self.bundled(GAME_STORE)?;
                match self.panels.get(GAME_STORE).cloned() {
                    Some(panel) => self.publish(&panel),
                    None => anyhow::bail!("the game store has not shown anything yet"),
                }
            }
            Input::Send { path, to } => self.hand_to(FILE_TRANSFER, "send", &path, format!("{to}\n"))?,
            Input::Transfers => {
                let list = node.transfers().list().await?;
                self.console.transfers(&list);
            }
            Input::Cancel(what) => {
                let list = node.transfers().list().await?;
                let found = list.iter().find(|c| {
                    c.state == State::Downloading
                        && (c.id.to_string().starts_with(&what) || c.name == what || c.label == what)
                });
                let found = found.with_context(|| format!("no download {what:?} (/transfers lists them)"))?;
                node.transfers().cancel(found.id).await?;
            }
            Input::RestartPlugin(plugin) => self.plugins.restart(&plugin)?,
            Input::GrantPlugin { plugin, permissions } => {
                let ask = self.plugins.grant(&plugin, permissions)?;
                self.announce(ask);
                self.start_companion().await;
            }
            Input::Open(link) => self.open(&link).await?,
            Input::AcceptLink => self.answer_offer(true).await?,
            Input::DeclineLink => self.answer_offer(false).await?,
            Input::Host => {
                anyhow::ensure!(self.party.is_none(), "leave this party first");
                self.party = Some(node.host(false).await?);
                node.invite(self.terms).await?;
            }
            Input::Leave => node.leave().await?,
            Input::End => node.end_party().await?,
            Input::Companion(input) => self.companion(input)?,
        }
        Ok(())
    }
}

/// The bundled plugins the transfer commands go to.
pub(crate) const GAME_STORE: &str = "game-store";
pub(crate) const FILE_TRANSFER: &str = "file-transfer";

impl Session {
    /// The plugin host, if the bundled `plugin` runs.
    fn bundled(&self, plugin: &str) -> Result<&PluginHost> {
        anyhow::ensure!(
            self.plugins.runs(plugin),
            "the {plugin} plugin is not running (`partyline plugins list`; `partyline plugins enable {plugin}`)"
        );
        Ok(&self.plugins)
    }

    /// Hands `path` to a bundled plugin and presses its `action` with `prefix` + the path.
    fn hand_to(&mut self, plugin: &str, action: &str, path: &std::path::Path, prefix: String) -> Result<()> {
        self.bundled(plugin)?;
        let path = std::path::absolute(path)?;
        anyhow::ensure!(path.exists(), "{} does not exist", path.display());
        self.plugins.hand(plugin, &path);
        self.plugins.act(plugin, action.to_owned(), Some(format!("{prefix}{}", path.display())))
    }
}

fn exit_code(event: &NodeEvent) -> Option<ExitCode> {
    match event {
        NodeEvent::JoinFailed { .. } => Some(ExitCode::from(EXIT_JOIN_FAILED)),
        NodeEvent::Kicked { .. } => Some(ExitCode::from(EXIT_KICKED)),
        NodeEvent::PartyEnded | NodeEvent::Left => Some(ExitCode::SUCCESS),
        _ => None,
    }
}
