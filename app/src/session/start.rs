//! A session about to start: the node's configuration and what it does first (host, or join a
//! link), decided by a front end (the command line), and run until the party is left (headless)
//! or the overlay closes.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use partyline_protocol::InviteTerms;

use super::{Console, EXIT_JOIN_FAILED, Front, Session};
use crate::config::Settings;
use crate::net::{Node, NodeConfig};
use crate::paths::Dirs;

/// What the session does first.
pub enum Begin {
    /// Host this node's party (a new one if `fresh`) and mint a link with `terms`.
    Host { fresh: bool, terms: InviteTerms },
    /// Join the party of this link (as typed: a bad link is reported by the session).
    Join { link: String },
}

/// A node about to start: hosting or joining, with or without the overlay.
pub struct Start {
    pub(crate) dirs: Dirs,
    pub(crate) settings: Settings,
    console: Arc<dyn Console>,
    config: NodeConfig,
    begin: Begin,
    overlay: bool,
}

impl Start {
    pub fn new(
        dirs: Dirs,
        settings: Settings,
        console: Arc<dyn Console>,
        config: NodeConfig,
        begin: Begin,
        overlay: bool,
    ) -> Self {
        Self { dirs, settings, console, config, begin, overlay }
    }

    /// Whether the overlay should draw this node.
    pub fn overlay(&self) -> bool {
        self.overlay
    }

    /// Runs the node headless until it leaves its party.
    pub async fn run_headless(self) -> ExitCode {
        self.run(None).await
    }

    /// Starts the node and runs it until it leaves its party (headless) or the overlay closes.
    pub async fn run(self, front: Option<Front>) -> ExitCode {
        let console = self.console.clone();
        match self.go(front).await {
            Ok(code) => code,
            Err(e) => {
                console.error(&format!("{e:#}"));
                ExitCode::FAILURE
            }
        }
    }

    async fn go(self, front: Option<Front>) -> Result<ExitCode> {
        let Self { dirs, settings, console, config, begin, .. } = self;
        let requests = crate::ipc::serve(&dirs.socket())?;
        let terms = invite_terms(&settings);
        let (node, events) = Node::start(config).await?;
        // Plugins start with the node (they share and download through it), before it joins
        // a party, so that they hear of it.
        let (plugins, problems) =
            crate::plugins::PluginHost::start(&dirs, Some(node.transfers().clone()), node.membership());
        for problem in problems {
            console.error(&problem);
        }
        let mut session = Session::new(node, console, terms, front, requests, plugins);
        session.companion_setup = Some((dirs.clone(), settings.companion.clone()));
        session.start_companion().await;
        match begin {
            Begin::Host { fresh, terms: first } => {
                session.node.host(fresh).await?;
                session.node.invite(first).await?;
            }
            Begin::Join { link } => {
                if !session.join_first(&link).await {
                    return Ok(ExitCode::from(EXIT_JOIN_FAILED));
                }
            }
        }
        Ok(session.run(events).await)
    }
}

/// The terms of the links the session mints when asked (`/invite`), from the settings.
pub fn invite_terms(settings: &Settings) -> InviteTerms {
    InviteTerms {
        lifetime: settings.invites.expires,
        max_uses: std::num::NonZeroU32::new(settings.invites.max_uses),
    }
}
