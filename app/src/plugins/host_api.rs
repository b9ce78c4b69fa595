//! The host side of the WIT API: what a plugin's calls do. Every function checks its one
//! permission first, then its limits (sizes, rates, counts); a refusal is an `Err` the plugin
//! sees, never a trap, and is counted.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::bindings::partyline::plugin::types::Member;
use super::bindings::partyline::plugin::{http, log, messaging, notify, party, storage, timers, types, ui};
use super::blob_access::BlobAccess;
use super::budget::Budget;
use super::companion_act::CompanionAct;
use super::db::PluginDb;
use super::fetch::{Deliver, Fetcher};
use super::limits::Limits;
use super::permission::Permission;
use crate::events::{MemberInfo, Outcome, PanelElement};
use crate::membership::{Membership, MembershipView};
use crate::rate::TokenBucket;

/// Largest message to the same plugin on other members.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024;
/// Timers one plugin may have pending.
pub(crate) const MAX_TIMERS: usize = 64;
/// Elements in a panel, and characters in any one text of it.
pub(crate) const MAX_ELEMENTS: usize = 200;
pub(crate) const MAX_TEXT: usize = 2000;
/// How soon a panel held back by the rate (10 a second) is tried again.
const PANEL_RETRY: Duration = Duration::from_millis(100);

/// What plugins hand the rest of Partyline.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginOut {
    /// To the same plugin on one member (`to`, a peer id), or on every other member.
    Message {
        plugin: String,
        to: Option<String>,
        data: Vec<u8>,
    },
    Panel {
        plugin: String,
        title: String,
        elements: Vec<PanelElement>,
    },
    Toast {
        plugin: String,
        text: String,
        outcome: Option<Outcome>,
    },
    /// For the player's devices or voice (the `companion` interface).
    Companion {
        plugin: String,
        act: CompanionAct,
    },
    /// The plugin was stopped (trap, deadline, limits) and is disabled until restarted.
    Stopped {
        plugin: String,
        reason: String,
    },
}

/// A member as plugins see it.
pub(crate) fn member(m: &MemberInfo) -> Member {
    Member { id: m.peer.to_string(), name: m.name.clone(), me: m.me, owner: m.owner }
}

/// Timers waiting to fire, by id.
#[derive(Default)]
pub(crate) struct Timers {
    pub(crate) due: BTreeMap<u64, Instant>,
    next: u64,
}

impl Timers {
    /// The first timer due by `now`, removed.
    pub(crate) fn fire(&mut self, now: Instant) -> Option<u64> {
        let (&id, _) = self.due.iter().filter(|(_, at)| **at <= now).min_by_key(|(_, at)| **at)?;
        self.due.remove(&id);
        Some(id)
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }
}

/// Calls refused or dropped, for statistics and tests.
#[derive(Default, Debug, Clone, Copy)]
pub struct Counters {
    pub refused: u64,
    pub rate_limited: u64,
    pub dropped: u64,
}

/// A plugin's side of the store: what its calls can reach.
pub(crate) struct HostState {
    pub(crate) plugin: String,
    pub(crate) grants: HashSet<Permission>,
    pub(crate) limits: Limits,
    /// Who is in the party (the node's published view).
    pub(crate) membership: MembershipView,
    pub(crate) timers: Timers,
    pub(crate) counters: Counters,
    db: Option<PluginDb>,
    out: mpsc::Sender<PluginOut>,
    /// Outgoing HTTP, once the plugin has a queue for the answers.
    fetcher: Option<Fetcher>,
    /// Sharing and downloading, in a running Partyline.
    pub(crate) blob_access: Option<BlobAccess>,
    /// The time the call under way may still take.
    pub(crate) budget: Budget,
    messages: TokenBucket,
    toasts: TokenBucket,
    logs: TokenBucket,
    panels: TokenBucket,
    pub(crate) companion_rate: TokenBucket,
    /// The newest panel drawn over the rate: shown once the rate allows, so the panel the user
    /// sees always ends up the plugin's last.
    held_panel: Option<PluginOut>,
}

impl HostState {
    pub(crate) fn new(
        plugin: &str,
        grants: &[Permission],
        db: Option<PluginDb>,
        out: mpsc::Sender<PluginOut>,
    ) -> Self {
        let now = Instant::now();
        Self {
            plugin: plugin.to_owned(),
            grants: grants.iter().cloned().collect(),
            limits: Limits::default(),
            membership: Membership::default().fixed(),
            timers: Timers::default(),
            counters: Counters::default(),
            db,
            out,
            fetcher: None,
            blob_access: None,
            budget: Budget::default(),
            messages: TokenBucket::new(100, 50.0, now),
            toasts: TokenBucket::new(5, 1.0, now),
            logs: TokenBucket::new(50, 20.0, now),
            panels: TokenBucket::new(20, 10.0, now),
            companion_rate: TokenBucket::new(100, 50.0, now),
            held_panel: None,
        }
    }

    /// The plugin reads who is in the party from `view`.
    pub(crate) fn with_membership(mut self, view: MembershipView) -> Self {
        self.membership = view;
        self
    }

    /// HTTP answers will be handed to the plugin through `deliver`.
    pub(crate) fn with_fetcher(mut self, deliver: Deliver) -> Self {
        self.fetcher = Some(Fetcher::new(deliver));
        self
    }

    /// Sharing and downloading go through `access`.
    pub(crate) fn with_blobs(mut self, access: BlobAccess) -> Self {
        self.blob_access = Some(access);
        self
    }

    pub(crate) fn allow(&mut self, permission: &Permission) -> Result<(), String> {
        if self.grants.contains(permission) {
            Ok(())
        } else {
            self.counters.refused += 1;
            Err(format!("plugin `{}` was not granted `{permission}`", self.plugin))
        }
    }

    /// Permission, then the rate.
    fn allow_at_rate(
        &mut self,
        permission: &Permission,
        bucket: fn(&mut Self) -> &mut TokenBucket,
    ) -> Result<(), String> {
        self.allow(permission)?;
        if bucket(self).take(Instant::now()) {
            Ok(())
        } else {
            self.counters.rate_limited += 1;
            Err(format!("too fast: `{permission}` is rate limited"))
        }
    }

    pub(crate) fn put(&mut self, out: PluginOut) -> Result<(), String> {
        self.out.try_send(out).map_err(|_| {
            self.counters.dropped += 1;
            "Partyline is busy; try again later".to_owned()
        })
    }

    /// When a panel held back by the rate is next tried.
    pub(crate) fn held_panel_due(&self) -> Option<Instant> {
        self.held_panel.as_ref().map(|_| Instant::now() + PANEL_RETRY)
    }

    /// Shows the panel held back by the rate, if the rate allows now.
    pub(crate) fn flush_panel(&mut self) {
        if self.held_panel.is_some()
            && self.panels.take(Instant::now())
            && let Some(panel) = self.held_panel.take()
        {
            let _ = self.put(panel);
        }
    }

    pub(crate) fn stopped(&mut self, reason: String) {
        let _ = self.put(PluginOut::Stopped { plugin: self.plugin.clone(), reason });
    }

    fn db(&mut self) -> Result<&mut PluginDb, String> {
        self.db
            .as_mut()
            .ok_or_else(|| "storage is not available (the plugins database could not be opened)".into())
    }
}

impl types::Host for HostState {}

impl party::Host for HostState {
    fn members(&mut self) -> Result<Vec<Member>, String> {
        self.allow(&Permission::Party)?;
        Ok(self.membership.borrow().all().map(|m| member(&m.info)).collect())
    }

    fn me(&mut self) -> Result<Member, String> {
        self.allow(&Permission::Party)?;
        self.membership.borrow().me().map(|m| member(&m.info)).ok_or_else(|| "not in a party".into())
    }
}

impl messaging::Host for HostState {
    fn send(&mut self, to: String, data: Vec<u8>) -> Result<(), String> {
        self.allow_at_rate(&Permission::PartyMessage, |s| &mut s.messages)?;
        if !self.membership.borrow().others().any(|m| m.info.peer.to_string() == to) {
            return Err(format!("no other member with id {to}"));
        }
        self.message(Some(to), data)
    }

    fn broadcast(&mut self, data: Vec<u8>) -> Result<(), String> {
        self.allow_at_rate(&Permission::PartyMessage, |s| &mut s.messages)?;
        self.message(None, data)
    }
}

impl HostState {
    fn message(&mut self, to: Option<String>, data: Vec<u8>) -> Result<(), String> {
        if data.len() > MAX_MESSAGE {
            return Err(format!("messages are at most {MAX_MESSAGE} bytes"));
        }
        self.put(PluginOut::Message { plugin: self.plugin.clone(), to, data })
    }
}

impl storage::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        self.allow(&Permission::Storage)?;
        let plugin = self.plugin.clone();
        self.db()?.get(&plugin, &key).map_err(|e| e.to_string())
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.allow(&Permission::Storage)?;
        let plugin = self.plugin.clone();
        self.db()?.set(&plugin, &key, &value)
    }

    fn delete(&mut self, key: String) -> Result<(), String> {
        self.allow(&Permission::Storage)?;
        let plugin = self.plugin.clone();
        self.db()?.delete(&plugin, &key).map_err(|e| e.to_string())
    }

    fn keys(&mut self) -> Result<Vec<String>, String> {
        self.allow(&Permission::Storage)?;
        let plugin = self.plugin.clone();
        self.db()?.keys(&plugin).map_err(|e| e.to_string())
    }
}

fn text_len(e: &ui::Element) -> usize {
    match e {
        ui::Element::Text(t) | ui::Element::Heading(t) | ui::Element::Qr(t) => t.len(),
        ui::Element::Button(b) => b.id.len() + b.label.len(),
        ui::Element::Input(i) => i.id.len() + i.placeholder.len() + i.value.len(),
        ui::Element::Items(items) => items.iter().map(String::len).sum(),
        ui::Element::Progress(p) => p.label.len(),
        ui::Element::Image(_) => 0,
    }
}

impl ui::Host for HostState {
    fn set_panel(&mut self, title: String, elements: Vec<ui::Element>) -> Result<(), String> {
        self.allow(&Permission::Ui)?;
        if elements.len() > MAX_ELEMENTS || title.len() > MAX_TEXT {
            return Err(format!("a panel has at most {MAX_ELEMENTS} elements"));
        }
        if let Some(e) = elements.iter().find(|e| text_len(e) > MAX_TEXT) {
            return Err(format!("{e:?}: texts are at most {MAX_TEXT} bytes").chars().take(200).collect());
        }
        for e in &elements {
            if let ui::Element::Image(i) = e
                && (i.width > 512 || i.height > 512 || i.rgba.len() != (i.width * i.height * 4) as usize)
            {
                return Err("images are at most 512 × 512, with 4 bytes per pixel".into());
            }
        }
        let elements = elements.into_iter().map(super::panel::element).collect();
        let panel = PluginOut::Panel { plugin: self.plugin.clone(), title, elements };
        if self.panels.take(Instant::now()) {
            self.held_panel = None;
            self.put(panel)
        } else {
            // Over the rate: held, replacing any panel held before, and shown when it allows.
            self.counters.rate_limited += 1;
            self.held_panel = Some(panel);
            Ok(())
        }
    }
}

impl notify::Host for HostState {
    fn toast(&mut self, text: String) -> Result<(), String> {
        self.say(text, None)
    }

    fn report(&mut self, text: String, outcome: notify::Outcome) -> Result<(), String> {
        let outcome = match outcome {
            notify::Outcome::Working => Outcome::Working,
            notify::Outcome::Done => Outcome::Done,
            notify::Outcome::Failed => Outcome::Failed,
        };
        self.say(text, Some(outcome))
    }
}

impl HostState {
    /// A toast (at most 200 characters), at the plugin's toast rate.
    pub(crate) fn say(&mut self, text: String, outcome: Option<Outcome>) -> Result<(), String> {
        self.allow_at_rate(&Permission::Notify, |s| &mut s.toasts)?;
        let text: String = text.chars().take(200).collect();
        self.put(PluginOut::Toast { plugin: self.plugin.clone(), text, outcome })
    }
}

/// The host and port of an `http(s)://host[:port]/...` URL, read by the parser the request is
/// made with (so the check and the request cannot disagree on where it goes).
pub(crate) fn url_target(url: &str) -> Option<(String, u16)> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let port = match uri.scheme_str()? {
        "http" => uri.port_u16().unwrap_or(80),
        "https" => uri.port_u16().unwrap_or(443),
        _ => return None,
    };
    let host = uri.host().filter(|h| !h.is_empty())?;
    Some((host.to_ascii_lowercase(), port))
}

impl http::Host for HostState {
    fn fetch(&mut self, request: http::Request) -> Result<u64, String> {
        let (host, port) =
            url_target(&request.url).ok_or_else(|| format!("{:?} is not an http(s) URL", request.url))?;
        // A grant of the host and this port, or of the host on any port.
        if !self.grants.contains(&Permission::Http(format!("{host}:{port}"))) {
            self.allow(&Permission::Http(host))?;
        }
        match &mut self.fetcher {
            Some(fetcher) => fetcher.fetch(request),
            None => Err("HTTP answers need the plugin's own thread".into()),
        }
    }
}

impl timers::Host for HostState {
    fn after(&mut self, ms: u32) -> Result<u64, String> {
        self.allow(&Permission::Timers)?;
        if self.timers.due.len() >= MAX_TIMERS {
            return Err(format!("at most {MAX_TIMERS} timers at once"));
        }
        self.timers.next += 1;
        let id = self.timers.next;
        self.timers.due.insert(id, Instant::now() + Duration::from_millis(u64::from(ms)));
        Ok(id)
    }

    fn cancel(&mut self, id: u64) -> Result<(), String> {
        self.allow(&Permission::Timers)?;
        self.timers.due.remove(&id);
        Ok(())
    }
}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) -> Result<(), String> {
        self.allow_at_rate(&Permission::Log, |s| &mut s.logs)?;
        let (plugin, message): (&str, String) = (&self.plugin, message.chars().take(1000).collect());
        match level {
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_host_and_port() {
        let target = |url| url_target(url).map(|(h, p)| format!("{h}:{p}"));
        assert_eq!(
            target("https://Store.Example.com:8443/feed?x=1").as_deref(),
            Some("store.example.com:8443")
        );
        assert_eq!(target("http://user@127.0.0.1/").as_deref(), Some("127.0.0.1:80"));
        assert_eq!(target("https://store.example.com/").as_deref(), Some("store.example.com:443"));
        assert_eq!(target("file:///etc/passwd"), None);
        assert_eq!(target("https:///x"), None);
        // Where parsers disagree, the URL is refused rather than read two ways.
        assert_eq!(target("http://evil.example\\@store.example.com/"), None);
    }

    /// `http:HOST:PORT` reaches that port only; `http:HOST`, any port.
    #[test]
    fn a_grant_with_a_port_reaches_that_port_only() {
        use http::Host as _;
        let (tx, _rx) = mpsc::channel(4);
        let grants = ["http:127.0.0.1:8080".parse().unwrap(), "http:store.example.com".parse().unwrap()];
        let mut state = HostState::new("p", &grants, None, tx);
        let mut fetch = |url: &str| {
            let request =
                http::Request { method: "GET".into(), url: url.into(), headers: vec![], body: vec![] };
            state.fetch(request).unwrap_err()
        };
        // Past the permission, the request needs the plugin's thread, which this test has not.
        let granted = "HTTP answers need the plugin's own thread";
        assert_eq!(fetch("http://127.0.0.1:8080/x"), granted);
        assert!(fetch("http://127.0.0.1:8081/x").contains("not granted"));
        assert!(fetch("http://127.0.0.1/x").contains("not granted"));
        assert_eq!(fetch("https://store.example.com:9999/"), granted);
    }

    /// Panels drawn faster than the rate are not lost: the newest is shown once it allows.
    #[test]
    fn the_last_panel_drawn_over_the_rate_is_shown_later() {
        use ui::Host as _;
        let (tx, mut rx) = mpsc::channel(64);
        let mut state = HostState::new("p", &[Permission::Ui], None, tx);
        for i in 0..30 {
            state.set_panel(format!("panel {i}"), vec![]).unwrap();
        }
        let title = |out: PluginOut| match out {
            PluginOut::Panel { title, .. } => title,
            _ => panic!("a panel"),
        };
        let shown: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok()).map(title).collect();
        assert_eq!(shown.len(), 20, "the burst is shown at once");
        assert_eq!(state.counters.rate_limited, 10);
        assert!(state.held_panel_due().is_some());
        std::thread::sleep(Duration::from_millis(150));
        state.flush_panel();
        assert_eq!(title(rx.try_recv().unwrap()), "panel 29", "the newest panel, the others skipped");
        assert!(rx.try_recv().is_err() && state.held_panel_due().is_none());
    }
}
