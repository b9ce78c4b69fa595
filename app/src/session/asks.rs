//! What the user is asked before the session acts on something that did not come from the user's
//! own hand: a link another program opened (leave this party for its one?), and the path of
//! something on this machine typed into a plugin's panel (the plugin draws the panel, so it may
//! have asked for anything: share this with it?). One question of each kind waits at a time; a new
//! one closes the one before as answered no.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use partyline_protocol::JoinLink;

use super::Session;
use crate::events::NodeEvent;

/// A plugin action holding a path, waiting for the user's yes before the plugin hears of it.
pub(super) struct PathAsk {
    plugin: String,
    id: String,
    value: String,
    path: PathBuf,
}

/// The path of something on this machine in what the user submitted, if it names one.
fn typed_path(value: Option<&str>) -> Option<PathBuf> {
    let path = Path::new(value?.trim());
    (path.is_absolute() && path.exists()).then(|| path.to_path_buf())
}

impl Session {
    /// A link from outside (any web page can open one): in no party, it is joined; in a party,
    /// the user is asked first, and until they say yes nothing moves (nor is the microphone heard
    /// anywhere else).
    pub(super) async fn offer(&mut self, link: &str) -> Result<()> {
        let link: JoinLink = link.parse().map_err(|e| anyhow::anyhow!("cannot use this link: {e}"))?;
        if self.party.is_none() || self.party == Some(link.party_id()) {
            return self.switch(link).await;
        }
        let event = NodeEvent::LinkOffered { party: link.party_id(), owner: link.owner() };
        self.offered = Some(link);
        self.announce(event);
        Ok(())
    }

    /// The user's answer to the link from outside.
    pub(super) async fn answer_offer(&mut self, accept: bool) -> Result<()> {
        let link = self.offered.take().context("no link is waiting for an answer")?;
        self.announce(NodeEvent::LinkOfferClosed { joining: accept });
        if accept { self.switch(link).await } else { Ok(()) }
    }

    /// The user pressed a plugin's button or submitted its input. A submitted path of something
    /// here that the plugin was not handed before waits for the user's yes; the rest goes on.
    pub(super) fn plugin_action(&mut self, plugin: String, id: String, value: Option<String>) -> Result<()> {
        let Some(path) = typed_path(value.as_deref()).filter(|p| !self.plugins.holds(&plugin, p)) else {
            return self.plugins.act(&plugin, id, value);
        };
        anyhow::ensure!(self.plugins.runs(&plugin), "the plugin {plugin} is not running");
        if let Some(before) = self.path_asked.take() {
            self.announce(NodeEvent::PathAskClosed { plugin: before.plugin, shared: false });
        }
        let name = self.plugins.name(&plugin);
        let event = NodeEvent::PathAsked { plugin: plugin.clone(), name, path: path.display().to_string() };
        self.path_asked = Some(PathAsk { plugin, id, value: value.unwrap_or_default(), path });
        self.announce(event);
        Ok(())
    }

    /// The user's answer to the path waiting: on yes the plugin is handed it and hears the
    /// action; on no it hears nothing of it.
    pub(super) fn answer_path(&mut self, share: bool) -> Result<()> {
        let ask = self.path_asked.take().context("no path is waiting for an answer")?;
        self.announce(NodeEvent::PathAskClosed { plugin: ask.plugin.clone(), shared: share });
        if !share {
            return Ok(());
        }
        self.plugins.hand(&ask.plugin, &ask.path);
        self.plugins.act(&ask.plugin, ask.id, Some(ask.value))
    }
}

#[cfg(test)]
mod tests {
    use super::typed_path;

    #[test]
    fn only_an_absolute_path_of_something_here_is_asked_about() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().display().to_string();
        assert_eq!(typed_path(Some(&format!("  {here} "))).as_deref(), Some(dir.path()));
        assert_eq!(typed_path(Some(&format!("{here}/missing"))), None);
        assert_eq!(typed_path(Some("relative/path")), None);
        assert_eq!(typed_path(Some("bob")), None);
        assert_eq!(typed_path(None), None);
    }
}
