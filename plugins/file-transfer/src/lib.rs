//! File transfer: send a file or folder to a member. The sender offers it; the receiver accepts
//! (or declines); Partyline downloads it (verified piece by piece, resumed after a restart) into
//! `<data>/downloads`; both sides see progress, then done, and keep a history.
//!
//! Actions: `send` (`NAME\nPATH`), `path` (a path typed into the panel) then `to:<member id>`,
//! `accept:<id>`, `decline:<id>`, `cancel:<id>`.
//! Messages between copies (tab-separated): `offer id size files name`, `accept id`,
//! `decline id`, `progress id done total`, `done id`, `failed id why`, `cancel id`. A member
//! has at most [`OFFERS_PER_MEMBER`] offers waiting for an answer; more are declined unseen.
//! An offer is shown by what the content is, not by what the offer says of it: its manifest,
//! asked of the sender (`blobs::inspect`, checked against the id), gives the name and size shown
//! and stored; until it has come, or if it cannot be had, the offer can only be declined.

use std::collections::BTreeMap;
use std::sync::Mutex;

use partyline_plugin_sdk::blobs::{self, Destination};
use partyline_plugin_sdk::notify::Outcome;
use partyline_plugin_sdk::{
    Event, Guest, Member, Panel, export, fields, human_bytes, line, messaging, notify, party, storage,
};

struct FileTransfer;

#[derive(Clone, Debug, PartialEq)]
enum Stage {
    /// An offer whose manifest is being asked for.
    Checking,
    /// An offer whose manifest could not be had (why): it can only be declined.
    Unchecked(String),
    Offered,
    Going { done: u64, total: u64 },
    Done(String),
    Declined,
    Cancelled,
    Failed(String),
}

/// One file or folder, sent or received.
#[derive(Clone, Debug)]
struct Transfer {
    /// The other member (id, name).
    peer: (String, String),
    name: String,
    size: u64,
    files: u64,
    outgoing: bool,
    stage: Stage,
}

impl Transfer {
    /// An offer from `from` not answered yet.
    fn waits_on(&self, from: &Member) -> bool {
        let open = matches!(self.stage, Stage::Checking | Stage::Unchecked(_) | Stage::Offered);
        !self.outgoing && self.peer.0 == from.id && open
    }
}

/// Offers from one member left unanswered, at most; more are declined unseen.
const OFFERS_PER_MEMBER: usize = 8;

#[derive(Default)]
struct State {
    transfers: BTreeMap<String, Transfer>,
    /// Shares under way: request → who it is for.
    sharing: BTreeMap<u64, (String, String)>,
    /// Places under way: request → content id.
    placing: BTreeMap<u64, String>,
    /// Manifests asked for: request → the offer's id; and offers waiting for their turn to ask.
    inspecting: BTreeMap<u64, String>,
    to_inspect: Vec<String>,
    /// A path typed into the panel, waiting for a member to send it to.
    chosen: Option<String>,
    /// Offers declined unseen, by the name of the member who made too many at once.
    flooding: BTreeMap<String, u64>,
    history: Vec<String>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut State) -> Result<T, String>) -> Result<T, String> {
    let mut guard = STATE.lock().map_err(|e| e.to_string())?;
    f(guard.get_or_insert_with(State::default))
}

const HISTORY: &str = "history";
const INCOMING: &str = "in:";

/// Keeps `text` in the history and reports it: how a transfer the user asked for ended.
fn note(state: &mut State, text: String, outcome: Outcome) -> Result<(), String> {
    state.history.insert(0, text.clone());
    state.history.truncate(20);
    storage::set(HISTORY, state.history.join("\n").as_bytes())?;
    notify::report(&text, outcome)
}

fn member_named(name: &str) -> Result<Member, String> {
    let members = party::members()?;
    members
        .iter()
        .find(|m| !m.me && m.name == name)
        .or_else(|| members.iter().find(|m| !m.me && m.name.eq_ignore_ascii_case(name)))
        .cloned()
        .ok_or_else(|| format!("no member named {name:?}"))
}

fn send(state: &mut State, to: (String, String), path: &str) -> Result<(), String> {
    let request = blobs::share(path)?;
    state.sharing.insert(request, to);
    Ok(())
}

fn tell(to: &str, fields: &[&str]) -> Result<(), String> {
    messaging::send(to, line(fields).as_bytes())
}

/// Remembers an incoming offer (so a restart can finish it).
fn keep(id: &str, t: &Transfer) -> Result<(), String> {
    storage::set(
        &format!("{INCOMING}{id}"),
        line(&[&t.peer.0, &t.peer.1, &t.name, &t.size.to_string()]).as_bytes(),
    )
}

fn heard(state: &mut State, from: Member, data: &[u8]) -> Result<(), String> {
    let f = fields(data);
    let Some((kind, rest)) = f.split_first() else { return Ok(()) };
    let id = rest.first().cloned().unwrap_or_default();
    match (kind.as_str(), rest) {
        // What the offer says of it (size, files, name) is not shown: its manifest will say.
        ("offer", [_, _, _, _]) => {
            let waiting = state.transfers.values().filter(|t| t.waits_on(&from)).count();
            if state.transfers.get(&id).is_some_and(|t| t.peer.0 != from.id) {
                return Ok(()); // another member's transfer: not this one's to change
            }
            if waiting >= OFFERS_PER_MEMBER {
                // Too many unanswered offers from one member: the rest are declined unseen.
                *state.flooding.entry(from.name.clone()).or_default() += 1;
                return tell(&from.id, &["decline", &id]);
            }
            let t = Transfer {
                peer: (from.id.clone(), from.name.clone()),
                name: String::new(),
                size: 0,
                files: 0,
                outgoing: false,
                stage: Stage::Checking,
            };
            state.transfers.insert(id.clone(), t);
            state.to_inspect.push(id);
            inspect_next(state);
        }
        ("accept", _) => set_stage(state, &id, &from, Stage::Going { done: 0, total: 0 }),
        ("progress", [_, done, total]) => {
            let stage = Stage::Going { done: done.parse().unwrap_or(0), total: total.parse().unwrap_or(0) };
            set_stage(state, &id, &from, stage);
        }
        ("done", _) => {
            if let Some(t) = outgoing(state, &id, &from) {
                let text = format!("{} received {} ({}, verified)", from.name, t.name, human_bytes(t.size));
                set_stage(state, &id, &from, Stage::Done(String::new()));
                note(state, text, Outcome::Done)?;
            }
        }
        ("decline", _) => {
            if let Some(t) = outgoing(state, &id, &from) {
                set_stage(state, &id, &from, Stage::Declined);
                note(state, format!("{} declined {}", from.name, t.name), Outcome::Failed)?;
            }
        }
        ("failed", [_, why]) => {
            if let Some(t) = outgoing(state, &id, &from) {
                set_stage(state, &id, &from, Stage::Failed(why.clone()));
                note(state, format!("{} could not receive {}: {why}", from.name, t.name), Outcome::Failed)?;
            }
        }
        ("cancel", _) => {
            if let Some(t) = state.transfers.get(&id).filter(|t| t.peer.0 == from.id && !t.outgoing).cloned()
            {
                let _ = blobs::cancel(&id);
                let _ = storage::delete(&format!("{INCOMING}{id}"));
                set_stage(state, &id, &from, Stage::Cancelled);
                note(state, format!("{} cancelled {}", from.name, t.name), Outcome::Failed)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Asks for the manifests of offers waiting to be checked, as many as the host takes at once.
fn inspect_next(state: &mut State) {
    while let Some(id) = state.to_inspect.first().cloned() {
        let Some(t) = state.transfers.get_mut(&id).filter(|t| t.stage == Stage::Checking) else {
            state.to_inspect.remove(0);
            continue;
        };
        match blobs::inspect(&id, &t.peer.0) {
            Ok(request) => drop(state.inspecting.insert(request, id)),
            Err(why) if why.contains("at once") => return, // the next answer makes room
            Err(why) => t.stage = Stage::Unchecked(why),
        }
        state.to_inspect.remove(0);
    }
}

/// The manifest of an offer came (or could not be had): the offer now shows what it is.
fn inspected(state: &mut State, id: &str, outcome: Result<blobs::Content, String>) -> Result<(), String> {
    let Some(t) = state.transfers.get_mut(id).filter(|t| t.stage == Stage::Checking) else { return Ok(()) };
    match outcome {
        Ok(c) => {
            (t.name, t.size, t.files, t.stage) = (c.name, c.size, c.files, Stage::Offered);
            let t = t.clone();
            keep(id, &t)?;
            let files = if t.files == 1 { String::new() } else { format!(", {} files", t.files) };
            // A toast over the rate limit is not shown; the offer is on the panel all the same.
            let _ = notify::toast(&format!("{} offers {} ({}{files})", t.peer.1, t.name, human_bytes(t.size)));
        }
        Err(why) => t.stage = Stage::Unchecked(why),
    }
    Ok(())
}

fn outgoing(state: &State, id: &str, from: &Member) -> Option<Transfer> {
    state.transfers.get(id).filter(|t| t.outgoing && t.peer.0 == from.id).cloned()
}

/// Only the member a transfer is with may move it along.
fn set_stage(state: &mut State, id: &str, from: &Member, stage: Stage) {
    if let Some(t) = state.transfers.get_mut(id).filter(|t| t.peer.0 == from.id) {
        t.stage = stage;
    }
}

fn act(state: &mut State, id: &str, value: Option<String>) -> Result<(), String> {
    let (verb, target) = id.split_once(':').unwrap_or((id, ""));
    match verb {
        "send" => {
            let value = value.unwrap_or_default();
            let (name, path) = value.split_once('\n').ok_or("send needs NAME and PATH")?;
            let to = member_named(name.trim())?;
            send(state, (to.id, to.name), path.trim())
        }
        "path" => {
            state.chosen = value.filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_owned());
            Ok(())
        }
        "to" => {
            let path = state.chosen.clone().ok_or("type a path first")?;
            let to = party::members()?.into_iter().find(|m| m.id == target).ok_or("that member left")?;
            send(state, (to.id, to.name), &path)
        }
        "accept" => {
            let t = state.transfers.get_mut(target).filter(|t| !t.outgoing).ok_or("no such offer")?;
            if t.stage != Stage::Offered {
                return Err("this offer cannot be accepted: what it is could not be checked".into());
            }
            blobs::get(target, &t.name)?;
            t.stage = Stage::Going { done: 0, total: t.size };
            tell(&t.peer.0, &["accept", target])
        }
        "decline" => {
            let t = state.transfers.get_mut(target).filter(|t| !t.outgoing).ok_or("no such offer")?;
            t.stage = Stage::Declined;
            let _ = storage::delete(&format!("{INCOMING}{target}"));
            tell(&t.peer.0, &["decline", target])
        }
        "cancel" => {
            let t = state.transfers.get_mut(target).ok_or("no such transfer")?;
            if !t.outgoing {
                let _ = blobs::cancel(target);
                let _ = storage::delete(&format!("{INCOMING}{target}"));
            }
            t.stage = Stage::Cancelled;
            let peer = t.peer.0.clone();
            tell(&peer, &["cancel", target])
        }
        _ => Ok(()),
    }
}

fn draw(state: &State) -> Result<(), String> {
    let mut panel = Panel::new("Files");
    for (id, t) in &state.transfers {
        let (dir, who) = if t.outgoing { ("to", &t.peer.1) } else { ("from", &t.peer.1) };
        let what = format!("{} ({}) {dir} {who}", t.name, human_bytes(t.size));
        panel = match &t.stage {
            Stage::Checking => panel
                .text(&format!("{who} offers something: checking what it is…"))
                .button(&format!("decline:{id}"), "Decline"),
            Stage::Unchecked(why) => panel
                .text(&format!("{who} offers something that cannot be checked ({why})"))
                .button(&format!("decline:{id}"), "Decline"),
            Stage::Offered if t.outgoing => panel.text(&format!("{what}: offered")),
            Stage::Offered => panel
                .text(&format!("{what}: offered"))
                .button(&format!("accept:{id}"), "Accept")
                .button(&format!("decline:{id}"), "Decline"),
            Stage::Going { done, total } => {
                panel.progress(&what, *done, (*total).max(t.size)).button(&format!("cancel:{id}"), "Cancel")
            }
            Stage::Done(path) if path.is_empty() => panel.text(&format!("{what}: done")),
            Stage::Done(path) => panel.text(&format!("{what}: done, in {path}")),
            Stage::Declined => panel.text(&format!("{what}: declined")),
            Stage::Cancelled => panel.text(&format!("{what}: cancelled")),
            Stage::Failed(why) => panel.text(&format!("{what}: failed ({why})")),
        };
    }
    for (who, n) in &state.flooding {
        panel = panel.text(&format!("{who} offered too many files at once: {n} more declined unseen"));
    }
    // The host shows an input holding a path empty: what was chosen is said beside it.
    panel = panel.input("path", "Path of a file or folder to send", "");
    if let Some(chosen) = &state.chosen {
        panel = panel.text(&format!("To send: {chosen}"));
        for m in party::members()?.into_iter().filter(|m| !m.me) {
            panel = panel.button(&format!("to:{}", m.id), &format!("Send to {}", m.name));
        }
    }
    if !state.history.is_empty() {
        panel = panel.heading("History").items(state.history.iter().take(10).cloned().collect());
    }
    panel.show()
}

fn on_event(state: &mut State, event: Event) -> Result<(), String> {
    match event {
        Event::Message(m) => heard(state, m.from, &m.data)?,
        Event::Action(a) => act(state, &a.id, a.value)?,
        Event::Blob(answer) => {
            if let Some(id) = state.inspecting.remove(&answer.request) {
                inspected(state, &id, answer.outcome)?;
                inspect_next(state);
            } else if let Some((to_id, to_name)) = state.sharing.remove(&answer.request) {
                let c = match answer.outcome {
                    Ok(c) => c,
                    Err(why) => return notify::report(&format!("Cannot send to {to_name}: {why}"), Outcome::Failed),
                };
                tell(&to_id, &["offer", &c.id, &c.size.to_string(), &c.files.to_string(), &c.name])?;
                notify::report(&format!("Offered {} to {to_name}", c.name), Outcome::Working)?;
                let t = Transfer {
                    peer: (to_id, to_name),
                    name: c.name,
                    size: c.size,
                    files: c.files,
                    outgoing: true,
                    stage: Stage::Offered,
                };
                state.transfers.insert(c.id, t);
            } else if let Some(id) = state.placing.remove(&answer.request) {
                let t = state.transfers.get(&id).cloned();
                match (answer.outcome, t) {
                    (Ok(c), Some(t)) => {
                        let path = c.path.unwrap_or_default();
                        let _ = storage::delete(&format!("{INCOMING}{id}"));
                        tell(&t.peer.0, &["done", &id])?;
                        if let Some(t) = state.transfers.get_mut(&id) {
                            t.stage = Stage::Done(path.clone());
                        }
                        note(state, format!("{} from {} is in {path}", t.name, t.peer.1), Outcome::Done)?;
                    }
                    (Err(why), Some(t)) => {
                        tell(&t.peer.0, &["failed", &id, &why])?;
                        note(state, format!("{}: {why}", t.name), Outcome::Failed)?;
                    }
                    _ => {}
                }
            }
        }
        Event::Transfer(p) => {
            if let Some(t) = state.transfers.get_mut(&p.id).filter(|t| !t.outgoing) {
                let before = t.stage.clone();
                t.stage = Stage::Going { done: p.done, total: p.total };
                // The sender hears of every 5% (and the start).
                let step = |s: &Stage| match s {
                    Stage::Going { done, total } if *total > 0 => done * 20 / total,
                    _ => u64::MAX,
                };
                if step(&before) != step(&t.stage) {
                    let peer = t.peer.0.clone();
                    tell(&peer, &["progress", &p.id, &p.done.to_string(), &p.total.to_string()])?;
                }
            }
        }
        Event::TransferDone(c) => {
            let request = blobs::place(&c.id, Destination::Downloads)?;
            state.placing.insert(request, c.id);
        }
        Event::TransferFailed((id, why)) => {
            if let Some(t) = state.transfers.get_mut(&id).filter(|t| !t.outgoing) {
                t.stage = Stage::Failed(why.clone());
                let (peer, name) = (t.peer.0.clone(), t.name.clone());
                if why != "cancelled" {
                    let _ = tell(&peer, &["failed", &id, &why]);
                    note(state, format!("{name}: {why}"), Outcome::Failed)?;
                }
            }
        }
        Event::Joined(_) | Event::MemberJoined(_) | Event::MemberLeft(_) => {}
        _ => return Ok(()),
    }
    draw(state)
}

impl Guest for FileTransfer {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        with(|state| {
            if let Some(history) = storage::get(HISTORY)? {
                state.history = String::from_utf8_lossy(&history).lines().map(str::to_owned).collect();
            }
            // Offers accepted before a restart: the download resumes by itself; finish it here.
            for key in storage::keys()? {
                let Some(id) = key.strip_prefix(INCOMING) else { continue };
                if let Some(value) = storage::get(&key)?
                    && let [peer_id, peer_name, name, size] = &fields(&value)[..]
                {
                    let t = Transfer {
                        peer: (peer_id.clone(), peer_name.clone()),
                        name: name.clone(),
                        size: size.parse().unwrap_or(0),
                        files: 0,
                        outgoing: false,
                        stage: Stage::Offered,
                    };
                    state.transfers.insert(id.to_owned(), t);
                }
            }
            draw(state)
        })
    }

    fn handle(event: Event) -> Result<(), String> {
        with(|state| on_event(state, event))
    }
}

export!(FileTransfer);
