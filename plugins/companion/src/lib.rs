//! The companion plugin: what the companion page (a paired phone or handheld, `assets/`) shows
//! and what its buttons do. The host serves the page and carries its messages; this plugin keeps
//! the picture of the party the page draws and acts for the player when the page asks.
//!
//! Messages are JSON objects with a `type`:
//! - to the page: `state` (everything, when a device connects and when members change),
//!   `speaking {id, on}`, `voice {muted, deafened}`, `latch {on}`, `chat {from, text}`,
//!   `panel {plugin, name, title, elements}` (another plugin's panel, as the overlay draws it),
//!   `toast {plugin, text, outcome}`, `invite {link, qr}` (the party's newest invite link and
//!   its QR code as `{size, modules}`, modules a string of 0 and 1 row by row), `headset {device}` (the device whose page is the
//!   player's microphone and speakers, or null), `error {text}`;
//! - from the page: `ptt {down}`, `latch {on}`, `mute {on}`, `deafen {on}`,
//!   `volume {id, percent}`, `chat {text}`, `press {plugin, id, value}` (a panel's button or
//!   input), `headset {on}` (this device as the player's headset, or not).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use partyline_plugin_sdk::{Event, Guest, Member, companion, export, notify, party, ui};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Chat lines a page gets when it connects.
const CHAT_KEPT: usize = 50;

#[derive(Default)]
struct Picture {
    members: Vec<Member>,
    speaking: BTreeSet<String>,
    muted: bool,
    deafened: bool,
    /// The page's latch holds push-to-talk down.
    latched: bool,
    /// Volumes set from the page, by member id (percent).
    volumes: BTreeMap<String, u32>,
    chat: VecDeque<Line>,
    /// The device that is the headset.
    headset: Option<String>,
    /// The party's newest invite link, as the page shows it.
    invite: Option<serde_json::Value>,
}

#[derive(Clone, Serialize)]
struct Line {
    from: String,
    text: String,
}

static PICTURE: Mutex<Option<Picture>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Picture) -> T) -> Result<T, String> {
    let mut guard = PICTURE.lock().map_err(|e| e.to_string())?;
    Ok(f(guard.get_or_insert_with(Picture::default)))
}

/// What the page asks.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum Ask {
    Ptt { down: bool },
    Latch { on: bool },
    Mute { on: bool },
    Deafen { on: bool },
    Volume { id: String, percent: u32 },
    Chat { text: String },
    Press { plugin: String, id: String, value: Option<String> },
    Headset { on: bool },
}

fn state(p: &Picture) -> String {
    let members: Vec<_> = p
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "name": m.name, "me": m.me, "owner": m.owner,
                "speaking": p.speaking.contains(&m.id),
                "volume": p.volumes.get(&m.id).copied().unwrap_or(100),
            })
        })
        .collect();
    json!({
        "type": "state", "members": members, "muted": p.muted, "deafened": p.deafened,
        "latched": p.latched, "chat": p.chat, "headset": p.headset, "invite": p.invite,
    })
    .to_string()
}

fn refresh_members() -> Result<(), String> {
    let members = party::members().unwrap_or_default();
    let text = with(|p| {
        p.members = members;
        p.speaking.retain(|id| p.members.iter().any(|m| &m.id == id));
        state(p)
    })?;
    companion::broadcast(&text)
}

fn act(device: &str, text: &str) -> Result<(), String> {
    let ask: Ask = match serde_json::from_str(text) {
        Ok(ask) => ask,
        Err(e) => return tell(device, &format!("not understood: {e}")),
    };
    let done = match ask {
        Ask::Ptt { down } => {
            // While latched, the key stays down.
            if with(|p| p.latched)? { Ok(()) } else { companion::push_to_talk(down) }
        }
        Ask::Latch { on } => {
            with(|p| p.latched = on)?;
            companion::broadcast(&json!({"type": "latch", "on": on}).to_string())?;
            companion::push_to_talk(on)
        }
        Ask::Mute { on } => companion::set_muted(on),
        Ask::Deafen { on } => companion::set_deafened(on),
        Ask::Volume { id, percent } => {
            let percent = percent.min(200);
            companion::set_volume(&id, percent).and_then(|()| {
                with(|p| {
                    p.volumes.insert(id, percent);
                })
            })
        }
        Ask::Chat { text } => companion::chat(&text),
        Ask::Press { plugin, id, value } => companion::press(&plugin, &id, value.as_deref()),
        Ask::Headset { on } => companion::use_headset(device, on),
    };
    match done {
        Ok(()) => Ok(()),
        Err(e) => tell(device, &e),
    }
}

fn tell(device: &str, text: &str) -> Result<(), String> {
    companion::send(device, &json!({"type": "error", "text": text}).to_string())
}

fn name_of(members: &[Member], member: &Member) -> String {
    members.iter().find(|m| m.id == member.id).map_or_else(|| member.name.clone(), |m| m.name.clone())
}

/// A QR code of `text` for the page to draw: its width in modules, and the modules (1 dark, 0
/// light) row by row.
fn qr(text: &str) -> serde_json::Value {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let modules: String =
                code.to_colors().iter().map(|c| if *c == qrcode::Color::Dark { '1' } else { '0' }).collect();
            json!({"size": code.width(), "modules": modules})
        }
        Err(_) => serde_json::Value::Null,
    }
}

/// An element of another plugin's panel as the page draws it (images are left out: a phone
/// has the overlay's pictures on the desktop).
fn element(e: &ui::Element) -> serde_json::Value {
    match e {
        ui::Element::Text(t) => json!({"kind": "text", "text": t}),
        ui::Element::Heading(t) => json!({"kind": "heading", "text": t}),
        ui::Element::Button(b) => json!({"kind": "button", "id": b.id, "label": b.label}),
        ui::Element::Input(i) => {
            json!({"kind": "input", "id": i.id, "placeholder": i.placeholder, "value": i.value})
        }
        ui::Element::Items(items) => json!({"kind": "items", "items": items}),
        ui::Element::Progress(p) => json!({"kind": "progress", "label": p.label, "done": p.done, "total": p.total}),
        ui::Element::Qr(t) => json!({"kind": "qr", "text": t, "qr": qr(t)}),
        ui::Element::Image(_) => json!({"kind": "image"}),
    }
}

fn outcome(o: Option<notify::Outcome>) -> Option<&'static str> {
    o.map(|o| match o {
        notify::Outcome::Working => "working",
        notify::Outcome::Done => "done",
        notify::Outcome::Failed => "failed",
    })
}

struct Companion;

impl Guest for Companion {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        with(|p| p.members = party::members().unwrap_or_default())
    }

    fn handle(event: Event) -> Result<(), String> {
        match event {
            Event::Joined(_) | Event::MemberJoined(_) | Event::MemberLeft(_) => refresh_members(),
            Event::Left => {
                let text = with(|p| {
                    *p = Picture { muted: p.muted, deafened: p.deafened, ..Picture::default() };
                    state(p)
                })?;
                companion::broadcast(&text)
            }
            Event::Speaking((member, on)) => {
                with(|p| if on { p.speaking.insert(member.id.clone()) } else { p.speaking.remove(&member.id) })?;
                companion::broadcast(&json!({"type": "speaking", "id": member.id, "on": on}).to_string())
            }
            Event::Voice(v) => {
                with(|p| (p.muted, p.deafened) = (v.muted, v.deafened))?;
                let text = json!({"type": "voice", "muted": v.muted, "deafened": v.deafened});
                companion::broadcast(&text.to_string())
            }
            Event::Chat((member, text)) => {
                let line = with(|p| {
                    let line = Line { from: name_of(&p.members, &member), text };
                    if p.chat.len() == CHAT_KEPT {
                        p.chat.pop_front();
                    }
                    p.chat.push_back(line.clone());
                    line
                })?;
                companion::broadcast(&json!({"type": "chat", "from": line.from, "text": line.text}).to_string())
            }
            Event::Panel(panel) => {
                let elements: Vec<_> = panel.elements.iter().map(element).collect();
                let drawn = json!({
                    "type": "panel", "plugin": panel.plugin, "name": panel.name, "title": panel.title,
                    "elements": elements,
                });
                // The host hands every panel again when a device connects.
                companion::broadcast(&drawn.to_string())
            }
            Event::Toast(toast) => {
                let shown = json!({
                    "type": "toast", "plugin": toast.plugin, "text": toast.text,
                    "outcome": outcome(toast.outcome),
                });
                companion::broadcast(&shown.to_string())
            }
            Event::Invite(link) => {
                let invite = json!({"link": link, "qr": qr(&link)});
                with(|p| p.invite = Some(invite.clone()))?;
                companion::broadcast(&json!({"type": "invite", "link": link, "qr": invite["qr"]}).to_string())
            }
            Event::Headset(device) => {
                with(|p| p.headset = device.clone())?;
                companion::broadcast(&json!({"type": "headset", "device": device}).to_string())
            }
            Event::DeviceConnected(device) => companion::send(&device, &with(|p| state(p))?),
            Event::DeviceMessage(m) => act(&m.device, &m.text),
            _ => Ok(()),
        }
    }
}

export!(Companion);
