//! The CLI's output: node events as one JSON object per line (`--json`, stable field names) or as
//! text for people. This is the only place that prints to stdout.

use std::io::Write;

use serde_json::{Value, json};

use crate::event_json::to_json;
use crate::events::NodeEvent;
use crate::net::relay_server::RelayEvent;
use crate::transfer::human_bytes;

#[derive(Clone, Copy)]
pub(crate) struct Printer {
    json: bool,
}

impl Printer {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// A line as it is (a JSON event another Partyline printed).
    pub(crate) fn raw(&self, line: &str) {
        self.line(line);
    }

    pub(crate) fn event(&self, event: &NodeEvent) {
        if self.json {
            self.line(&to_json(event).to_string());
        } else if let Some(text) = to_text(event) {
            self.line(&text);
        }
    }

    pub(crate) fn error(&self, message: &str) {
        self.event(&NodeEvent::Error { message: message.to_owned() });
    }

    pub(crate) fn help(&self, text: &str) {
        if self.json {
            self.line(&json!({"event": "help", "text": text}).to_string());
        } else {
            self.line(text);
        }
    }

    pub(crate) fn devices(&self, inputs: &[String], outputs: &[String]) {
        if self.json {
            self.line(&json!({"event": "devices", "inputs": inputs, "outputs": outputs}).to_string());
        } else {
            self.line(&format!("Inputs:\n  {}\nOutputs:\n  {}", inputs.join("\n  "), outputs.join("\n  ")));
        }
    }

    /// What the transfer engine knows: shared, downloading, downloaded content.
    pub(crate) fn transfers(&self, list: &[crate::transfer::ContentInfo]) {
        if self.json {
            let items: Vec<Value> = list
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id.to_string(), "name": c.name, "label": c.label, "state": c.state,
                        "total": c.total, "files": c.files, "path": c.path, "error": c.error,
                    })
                })
                .collect();
            self.line(&json!({"event": "transfers", "items": items}).to_string());
            return;
        }
        if list.is_empty() {
            self.line("nothing shared or downloaded yet");
        }
        for c in list {
            let place = c.error.clone().or_else(|| c.path.as_ref().map(|p| p.display().to_string()));
            self.line(&format!(
                "{} {} ({}, {}) {}",
                c.id.short(),
                c.name,
                human_bytes(c.total),
                c.state,
                place.unwrap_or_default()
            ));
        }
    }

    pub(crate) fn plugins(&self, plugins: &[crate::plugins::InstalledPlugin]) {
        let names =
            |ps: &[crate::plugins::Permission]| ps.iter().map(ToString::to_string).collect::<Vec<_>>();
        for p in plugins {
            let m = &p.manifest;
            let (asks, granted) = (names(&m.permissions), names(&p.granted));
            if self.json {
                let value = json!({
                    "event": "plugin", "id": m.id, "name": m.name, "version": m.version, "api": m.api,
                    "enabled": p.enabled, "permissions": asks, "granted": granted,
                });
                self.line(&value.to_string());
            } else {
                let state = if p.enabled { "enabled" } else { "disabled" };
                self.line(&format!(
                    "{} {} ({}, {state}): asks for [{}], granted [{}]",
                    m.id,
                    m.version,
                    m.name,
                    asks.join(", "),
                    granted.join(", ")
                ));
            }
        }
    }

    pub(crate) fn relay(&self, event: &RelayEvent) {
        let (value, text) = match event {
            RelayEvent::Ready { peer, addrs } => {
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                let text = format!("relay {peer} listening on:\n  {}", addrs.join("\n  "));
                (json!({"event": "relay", "peer": peer.to_string(), "addrs": addrs}), text)
            }
            RelayEvent::Reservation { peer } => {
                (json!({"event": "reservation", "peer": peer.to_string()}), format!("reservation by {peer}"))
            }
            RelayEvent::Circuit { src, dst } => (
                json!({"event": "circuit", "src": src.to_string(), "dst": dst.to_string()}),
                format!("circuit {src} -> {dst}"),
            ),
            RelayEvent::CircuitClosed { src, dst, error } => (
                json!({"event": "circuit-closed", "src": src.to_string(), "dst": dst.to_string(), "error": error}),
                format!(
                    "circuit {src} -> {dst} closed{}",
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
            ),
            RelayEvent::Refused { peer, dst, reason } => (
                json!({"event": "relay-refused", "peer": peer.to_string(), "dst": dst.map(|d| d.to_string()),
                       "reason": reason}),
                match dst {
                    Some(dst) => format!("refused {peer} a circuit to {dst}: {reason}"),
                    None => format!("refused {peer} a reservation: {reason}"),
                },
            ),
            RelayEvent::Unreported { reservations, circuits } => (
                json!({"event": "relay-refusals", "reservations": reservations, "circuits": circuits}),
                format!("refused {reservations} more reservations and {circuits} more circuits"),
            ),
        };
        self.line(&if self.json { value.to_string() } else { text });
    }

    fn line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (the reader went away) is not worth dying for.
        let _ = if self.json { writeln!(out, "{line}") } else { writeln!(out, "{}", terminal_safe(line)) };
        let _ = out.flush();
    }
}

fn panel_element_text(e: &crate::events::PanelElement) -> String {
    use crate::events::PanelElement as E;
    match e {
        E::Text(text) | E::Heading(text) => text.clone(),
        E::Button { id, label } => format!("[{label}] (/plugin … {id})"),
        E::Input { id, value, .. } => format!("{id}: {value}"),
        E::Items(items) => items.join(", "),
        E::Progress { label, done, total } => format!("{label} {done}/{total}"),
        E::Qr(text) => format!("QR {text}"),
        E::Image { width, height, .. } => format!("image {width}x{height}"),
    }
}

/// `name [#########-----------]  45%  1.2 GiB of 2.7 GiB from 2 members`.
pub(crate) fn progress_line(name: &str, done: u64, total: u64, peers: usize) -> String {
    if total == 0 {
        return format!("{name}: looking for a member who has it…");
    }
    const WIDTH: u64 = 24;
    let filled = (done.min(total) * WIDTH / total) as usize;
    let bar = format!("{}{}", "#".repeat(filled), "-".repeat(WIDTH as usize - filled));
    let from = match peers {
        0 => "waiting for members who have it".to_owned(),
        1 => "from 1 member".to_owned(),
        n => format!("from {n} members"),
    };
    format!(
        "{name} [{bar}] {:>3}%  {} of {} {from}",
        done.min(total) * 100 / total,
        human_bytes(done),
        human_bytes(total)
    )
}

fn clock(ts_ms: u64) -> String {
    let secs = (ts_ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60)
}

fn to_text(event: &NodeEvent) -> Option<String> {
    Some(match event {
        NodeEvent::Listening { .. } => return None,
        NodeEvent::Link { link, invite, expires, max_uses } => {
            let uses = max_uses.map(|n| format!(", {n} use(s)")).unwrap_or_default();
            format!("Invite link (id {invite}, valid until {expires}{uses}):\n  {link}")
        }
        NodeEvent::LinkOffered { party, owner } => format!(
            "* a link asks you to join party {party} (owner {owner}): `/accept-link` leaves this party for it, `/decline-link` stays"
        ),
        NodeEvent::LinkOfferClosed { joining: true } => "* joining the link's party".into(),
        NodeEvent::LinkOfferClosed { joining: false } => "* you stay in this party".into(),
        NodeEvent::Joined { party, members } => {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            format!("* In party {party} with {}", names.join(", "))
        }
        NodeEvent::MemberJoined { name, .. } => format!("* {name} joined"),
        NodeEvent::MemberLeft { name, reason, .. } => format!("* {name} left ({})", reason.as_str()),
        NodeEvent::Presence { name, presence, .. } => format!("* {name} is {}", presence.as_str()),
        NodeEvent::Chat { from, text, ts_ms, history, .. } => {
            // A line break in a message goes on indented: it cannot pass for a line of ours.
            let text = text.replace('\n', "\n    ");
            format!("{}[{} UTC] {from}: {text}", if *history { "(earlier) " } else { "" }, clock(*ts_ms))
        }
        NodeEvent::Members { members } => {
            let lines: Vec<String> = members
                .iter()
                .map(|m| {
                    let role = if m.owner { " (owner)" } else { "" };
                    let path = if m.me { "you" } else { m.path.as_str() };
                    format!("  {}{role} - {}, {path}", m.name, m.presence.as_str())
                })
                .collect();
            format!("Members:\n{}", lines.join("\n"))
        }
        NodeEvent::Connection { name, path, .. } => {
            format!("* connection to {name} is now {}", path.as_str())
        }
        NodeEvent::HolePunch { name, ok: true, .. } => format!("* direct connection to {name} (hole punch)"),
        NodeEvent::HolePunch { name, error, .. } => {
            format!("* no direct connection to {name}, staying relayed: {}", error.as_deref().unwrap_or("?"))
        }
        NodeEvent::Revoked { invites } if invites.is_empty() => "* no live invites to revoke".into(),
        NodeEvent::Revoked { invites } => {
            format!("* revoked {}", invites.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        }
        NodeEvent::Reconnecting { .. } => "* lost the party host; reconnecting…".into(),
        NodeEvent::Speaking { name, on: true, .. } => format!("* {name} is talking"),
        NodeEvent::VoiceState { muted, deafened } => match (muted, deafened) {
            (_, true) => "* you are deafened: you hear nobody and send nothing".into(),
            (true, false) => "* you are muted".into(),
            (false, false) => "* voice on: you are heard".into(),
        },
        NodeEvent::Speaking { .. } | NodeEvent::AudioStarted { .. } | NodeEvent::Positions { .. } => {
            return None;
        }
        NodeEvent::VoiceStats(v) => {
            let mut text = format!(
                "voice: input {}, mode {}, sending {:.1} kbit/s, FEC tuned for {}% loss{}",
                v.input.as_deref().unwrap_or("none (listen-only)"),
                v.mode,
                v.sent_kbps,
                v.fec_loss_percent,
                if v.redundancy { ", frames sent twice" } else { "" }
            );
            for m in &v.members {
                text += &format!(
                    "\n  {}: loss {:.1}%, jitter {:.0} ms, buffer {:.0} ms, {:.1} kbit/s (rebuilt {}, FEC {}, concealed {}, late {})",
                    m.name,
                    m.loss * 100.0,
                    m.jitter_ms,
                    m.buffer_ms,
                    m.kbps,
                    m.recovered,
                    m.fec,
                    m.concealed,
                    m.late
                );
            }
            text
        }
        NodeEvent::Stats(s) => format!(
            "frames in {}, dropped: oversize {}, malformed {}, rate-limited {}, unauthorized {}; streams refused {}",
            s.frames_in,
            s.dropped_oversize,
            s.dropped_malformed,
            s.dropped_rate_limited,
            s.dropped_unauthorized,
            s.streams_refused
        ),
        NodeEvent::PluginMessage { .. } => return None,
        NodeEvent::PluginPanel { plugin, title, elements, .. } => {
            let texts: Vec<String> = elements.iter().map(panel_element_text).collect();
            format!("[{plugin}] {title}: {}", texts.join(" | "))
        }
        NodeEvent::PluginToast { plugin, text, .. } => format!("[{plugin}] {text}"),
        NodeEvent::PathAsked { name, path, .. } => format!(
            "* share {path} with the plugin {name}? `/allow-path` lets it read and send what is there, `/deny-path` keeps it from it"
        ),
        NodeEvent::PathAskClosed { shared: true, .. } => "* path shared".into(),
        NodeEvent::PathAskClosed { shared: false, .. } => "* path not shared".into(),
        NodeEvent::PluginAsks { permissions, .. } if permissions.is_empty() => return None,
        NodeEvent::PluginAsks { plugin, name, permissions } => format!(
            "* plugin {name} asks for {}: `/grant-plugin {plugin} all` allows it",
            permissions.join(", ")
        ),
        NodeEvent::PluginStopped { plugin, reason } => format!("error: plugin {plugin} stopped: {reason}"),
        NodeEvent::Shared { id, name, total, files, .. } => {
            format!("* sharing {name} ({}, {files} files) as {id}", human_bytes(*total))
        }
        NodeEvent::Transfer { name, done, total, peers, .. } => progress_line(name, *done, *total, *peers),
        NodeEvent::TransferComplete { name, total, path, .. } => {
            format!("* {name} is here ({}, verified): {}", human_bytes(*total), path.display())
        }
        NodeEvent::TransferFailed { name, message, .. } => format!("error: {name}: {message}"),
        NodeEvent::TransferPeerDropped { peer, reason, .. } => format!("* stopped asking {peer}: {reason}"),
        NodeEvent::Error { message } | NodeEvent::JoinFailed { message } => format!("error: {message}"),
        NodeEvent::Kicked { banned: true } => "* you were banned from the party".into(),
        NodeEvent::Kicked { banned: false } => "* you were kicked from the party".into(),
        NodeEvent::CompanionPairing { url } => format!("* pair a phone or handheld: open {url}"),
        NodeEvent::DeviceWaiting { name, code } => {
            format!("* {name} asks to pair with code {code}: if the device shows it, /confirm-device {code}")
        }
        NodeEvent::DevicePaired { name } => format!("* {name} is paired"),
        NodeEvent::DeviceRevoked { name } => format!("* {name} is no longer paired"),
        NodeEvent::DeviceConnected { name } => format!("* {name} is connected"),
        NodeEvent::Headset { device: Some(name) } => format!("* {name} is your headset now"),
        NodeEvent::Headset { device: None } => "* your headset is this machine's again".into(),
        NodeEvent::DeviceLeft { name } => format!("* {name} disconnected"),
        NodeEvent::Devices { devices } if devices.is_empty() => {
            "* no devices are paired (/pair-device)".into()
        }
        NodeEvent::Devices { devices } => {
            let names: Vec<&str> = devices.iter().map(|(n, _)| n.as_str()).collect();
            format!("* paired devices: {}", names.join(", "))
        }
        NodeEvent::PartyEnded => "* the party has ended".into(),
        NodeEvent::Left => "* you left the party".into(),
    })
}

/// What peers wrote, made harmless for a terminal: control characters (escape sequences that
/// recolour, retitle or move the cursor) and invisible or reordering ones shown as `\u{…}`.
fn terminal_safe(line: &str) -> String {
    let hidden = |c: char| (c.is_control() && c != '\n') || partyline_protocol::wire::invisible(c);
    let mut shown = String::with_capacity(line.len());
    for c in line.chars() {
        if hidden(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    shown
}

impl crate::session::Console for Printer {
    fn event(&self, event: &NodeEvent) {
        Printer::event(self, event);
    }

    fn help(&self, text: &str) {
        Printer::help(self, text);
    }

    fn transfers(&self, list: &[crate::transfer::ContentInfo]) {
        Printer::transfers(self, list);
    }

    fn error(&self, message: &str) {
        Printer::error(self, message);
    }
}

#[cfg(test)]
mod tests {
    use libp2p::PeerId;
    use partyline_protocol::wire::LeaveReason;

    use super::*;

    #[test]
    fn json_field_names_are_stable() {
        let peer = PeerId::random();
        let left = to_json(&NodeEvent::MemberLeft { peer, name: "bob".into(), reason: LeaveReason::Banned });
        assert_eq!(
            left,
            json!({"event": "member-left", "peer": peer.to_string(), "name": "bob", "reason": "kicked"})
        );
        let chat = to_json(&NodeEvent::Chat {
            seq: 3,
            peer,
            from: "bob".into(),
            text: "hi".into(),
            ts_ms: 5,
            history: false,
        });
        assert_eq!(chat["event"], "chat");
        assert_eq!(chat["from"], "bob");
        assert_eq!(chat["text"], "hi");
        assert_eq!(chat["ts"], 5);
        let failed = to_json(&NodeEvent::JoinFailed { message: "no".into() });
        assert_eq!(failed, json!({"event": "error", "message": "no", "fatal": true}));
    }

    #[test]
    fn clock_formats_utc_time_of_day() {
        assert_eq!(clock(0), "00:00:00");
        assert_eq!(clock(((13 * 3600 + 4 * 60 + 5) * 1000) + 999), "13:04:05");
    }

    #[test]
    fn peers_text_cannot_drive_the_terminal_or_forge_lines() {
        let chat = NodeEvent::Chat {
            seq: 1,
            peer: PeerId::random(),
            from: "bob".into(),
            text: "hi\u{1b}]0;owned\u{7}\u{1b}[2J\n* carl left (kicked)\u{202E}".into(),
            ts_ms: 0,
            history: false,
        };
        let shown = terminal_safe(&to_text(&chat).unwrap());
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
        assert!(shown.contains("\\u{1b}]0;owned") && shown.contains("\\u{202e}"), "{shown:?}");
        assert!(shown.lines().skip(1).all(|l| l.starts_with("    ")), "a forged line: {shown:?}");
    }
}
