//! Node events in their JSON form: one object per event, with stable field names (README lists
//! them). The CLI prints them with `--json`; the session sends them to other processes that
//! follow it over the local socket.

use partyline_protocol::voice::Pose;
use serde_json::{Value, json};

use crate::events::{MemberInfo, NodeEvent, Stats, VoiceStats};

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

pub fn to_json(event: &NodeEvent) -> Value {
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
        NodeEvent::VoiceState { muted, deafened } => {
            json!({"event": "voice-state", "muted": muted, "deafened": deafened})
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
