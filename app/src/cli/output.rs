//! The CLI's output: node events as one JSON object per line (`--json`, stable field names) or as
//! text for people. This is the only place that prints to stdout.

use std::io::Write;

use partyline_protocol::voice::Pose;
use serde_json::{Value, json};

use crate::events::{MemberInfo, NodeEvent, Stats, VoiceStats};
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

fn member_json(m: &MemberInfo) -> Value {
    json!({
        "peer": m.peer.to_string(),
        "name": m.name,
        "presence": m.presence.as_str(),
        "owner": m.owner,
        "me": m.me,
        "path": if m.me { "self" } else { m.path.as_str() },
    })
}

fn voice_stats_json(v: &VoiceStats) -> Value {
    let members: Vec<Value> = v
        .members
        .iter()
        .map(|m| {
            json!({
                "peer": m.peer.to_string(), "name": m.name, "loss": m.loss, "jitter_ms": m.jitter_ms,
                "buffer_ms": m.buffer_ms, "ring_ms": m.ring_ms, "wait_ms": m.wait_ms, "target_ms": m.target_ms, "kbps": m.kbps, "received": m.received, "lost": m.lost,
                "fec": m.fec, "recovered": m.recovered, "concealed": m.concealed, "late": m.late, "dropped": m.dropped,
                "faster_ms": m.faster_ms, "slower_ms": m.slower_ms, "underruns": m.underruns, "speaking": m.speaking,
            })
        })
        .collect();
    json!({
        "event": "voice-stats", "input": v.input, "output": v.output, "input_level_db": v.input_level_db,
        "input_block_ms": v.input_block_ms, "input_overruns": v.input_overruns, "mode": v.mode,
        "talking": v.talking,
        "sent_kbps": v.sent_kbps, "fec_loss_percent": v.fec_loss_percent, "redundancy": v.redundancy,
        "unknown_frames": v.unknown_frames, "malformed_frames": v.malformed_frames,
        "frames_in": v.frames_in, "dropped_stale": v.dropped_stale, "dropped_queue_full": v.dropped_queue_full,
        "dropped_inbound": v.dropped_inbound, "streams_refused": v.streams_refused,
        "datagrams_in": v.datagrams_in, "datagrams_out": v.datagrams_out, "datagram_paths": v.datagram_paths,
        "members": members,
    })
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "event": "stats",
        "frames_in": s.frames_in,
        "dropped_oversize": s.dropped_oversize,
        "dropped_malformed": s.dropped_malformed,
        "dropped_rate_limited": s.dropped_rate_limited,
        "dropped_unauthorized": s.dropped_unauthorized,
        "streams_refused": s.streams_refused,
        "events_lost": s.events_lost,
        "plugin_messages_lost": s.plugin_messages_lost,
        "dropped_outbound": s.dropped_outbound,
    })
}

pub(crate) fn to_json(event: &NodeEvent) -> Value {
    match event {
        NodeEvent::Listening { addrs } => {
            json!({"event": "listening", "addrs": addrs.iter().map(ToString::to_string).collect::<Vec<_>>()})
        }
        NodeEvent::Link { link, invite, expires, max_uses } => json!({
            "event": "link", "link": link, "invite": invite.to_string(),
            "expires": expires.to_string(), "max_uses": max_uses,
        }),
        NodeEvent::LinkOffered { party, owner } => {
            json!({"event": "link-offered", "party": party.to_string(), "owner": owner.to_string()})
        }
        NodeEvent::LinkOfferClosed { joining } => json!({"event": "link-offer-closed", "joining": joining}),
        NodeEvent::Joined { party, members } => json!({
            "event": "joined", "party": party.to_string(),
            "members": members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        }),
        NodeEvent::MemberJoined { peer, name } => {
            json!({"event": "member-joined", "peer": peer.to_string(), "name": name})
        }
        NodeEvent::MemberLeft { peer, name, reason } => json!({
            "event": "member-left", "peer": peer.to_string(), "name": name, "reason": reason.as_str(),
        }),
        NodeEvent::Presence { peer, name, presence } => json!({
            "event": "presence", "peer": peer.to_string(), "name": name, "presence": presence.as_str(),
        }),
        NodeEvent::Chat { seq, peer, from, text, ts_ms, history } => json!({
            "event": "chat", "from": from, "text": text, "ts": ts_ms, "seq": seq,
            "peer": peer.to_string(), "history": history,
        }),
        NodeEvent::Members { members } => {
            json!({"event": "members", "members": members.iter().map(member_json).collect::<Vec<_>>()})
        }
        NodeEvent::Connection { peer, name, path } => json!({
            "event": "connection", "peer": peer.to_string(), "name": name, "path": path.as_str(),
        }),
        NodeEvent::HolePunch { peer, name, ok, error } => json!({
            "event": "hole-punch", "peer": peer.to_string(), "name": name, "ok": ok, "error": error,
        }),
        NodeEvent::Revoked { invites } => json!({
            "event": "revoked", "invites": invites.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        NodeEvent::Reconnecting { attempt } => json!({"event": "reconnecting", "attempt": attempt}),
        NodeEvent::Speaking { peer, name, on } => {
            json!({"event": "speaking", "peer": peer.to_string(), "name": name, "on": on})
        }
        NodeEvent::VoiceStats(v) => voice_stats_json(v),
        NodeEvent::Positions { me, members } => json!({
            "event": "positions",
            "me": me.as_ref().map(pose_json),
            "members": members.iter().map(|m| {
                let mut pose = pose_json(&m.pose);
                pose["peer"] = json!(m.peer.to_string());
                pose["name"] = json!(m.name);
                pose
            }).collect::<Vec<_>>(),
        }),
        NodeEvent::AudioStarted { source, at_ms } => {
            json!({"event": "audio-started", "source": source, "at_ms": at_ms})
        }
        NodeEvent::Stats(stats) => stats_json(stats),
        NodeEvent::PluginMessage { peer, plugin, data } => {
            json!({"event": "plugin-message", "plugin": plugin, "from": peer.to_string(), "bytes": data.len()})
        }
        NodeEvent::PluginPanel { plugin, name, title, elements } => json!({
            "event": "plugin-panel", "plugin": plugin, "name": name, "title": title,
            "elements": elements.iter().map(panel_element_json).collect::<Vec<_>>(),
        }),
        NodeEvent::PluginToast { plugin, text } => {
            json!({"event": "plugin-toast", "plugin": plugin, "text": text})
        }
        NodeEvent::PluginStopped { plugin, reason } => {
            json!({"event": "plugin-stopped", "plugin": plugin, "reason": reason})
        }
        NodeEvent::PathAsked { plugin, name, path } => {
            json!({"event": "path-asked", "plugin": plugin, "name": name, "path": path})
        }
        NodeEvent::PathAskClosed { plugin, shared } => {
            json!({"event": "path-ask-closed", "plugin": plugin, "shared": shared})
        }
        NodeEvent::PluginAsks { plugin, name, permissions } => {
            json!({"event": "plugin-asks", "plugin": plugin, "name": name, "permissions": permissions})
        }
        NodeEvent::Shared { id, name, total, files, path } => json!({
            "event": "shared", "id": id.to_string(), "name": name, "total": total, "files": files, "path": path,
        }),
        NodeEvent::Transfer { id, name, label, done, total, peers, direct, .. } => json!({
            "event": "transfer", "id": id.to_string(), "name": name, "label": label,
            "done": done, "total": total, "peers": peers, "direct": direct,
        }),
        NodeEvent::TransferComplete { id, name, label, total, files, path, .. } => json!({
            "event": "transfer-complete", "id": id.to_string(), "name": name, "label": label,
            "total": total, "files": files, "path": path,
        }),
        NodeEvent::TransferFailed { id, name, label, message, .. } => json!({
            "event": "transfer-failed", "id": id.to_string(), "name": name, "label": label, "message": message,
        }),
        NodeEvent::TransferPeerDropped { id, peer, reason } => json!({
            "event": "transfer-peer-dropped", "id": id.to_string(), "peer": peer.to_string(), "reason": reason,
        }),
        NodeEvent::Error { message } => json!({"event": "error", "message": message}),
        NodeEvent::JoinFailed { message } => json!({"event": "error", "message": message, "fatal": true}),
        NodeEvent::Kicked { banned } => json!({"event": "kicked", "banned": banned}),
        NodeEvent::PartyEnded => json!({"event": "party-ended"}),
        NodeEvent::Left => json!({"event": "left"}),
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

fn panel_element_json(e: &crate::events::PanelElement) -> Value {
    use crate::events::PanelElement as E;
    match e {
        E::Text(text) => json!({"kind": "text", "text": text}),
        E::Heading(text) => json!({"kind": "heading", "text": text}),
        E::Button { id, label } => json!({"kind": "button", "id": id, "label": label}),
        E::Input { id, placeholder, value } => {
            json!({"kind": "input", "id": id, "placeholder": placeholder, "value": value})
        }
        E::Items(items) => json!({"kind": "items", "items": items}),
        E::Progress { label, done, total } => {
            json!({"kind": "progress", "label": label, "done": done, "total": total})
        }
        E::Qr(text) => json!({"kind": "qr", "text": text}),
        E::Image { width, height, .. } => json!({"kind": "image", "width": width, "height": height}),
    }
}

/// Metres, and the yaw in degrees (as `/pos` takes it).
fn pose_json(p: &Pose) -> Value {
    json!({"x": p.x, "y": p.y, "z": p.z, "yaw": p.yaw.to_degrees()})
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
        NodeEvent::PluginToast { plugin, text } => format!("[{plugin}] {text}"),
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
