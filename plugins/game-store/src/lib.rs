//! The game store: games members share with each other instead of each downloading them from the
//! internet.
//!
//! - **Library**: games on this machine (shared from where they are, or downloaded into
//!   `<data>/library`), remembered in storage.
//! - **In the party**: each member's copy announces its library (`have` messages); a game is
//!   offered with the members who have it. Offers are keyed by content id, never by name: a name
//!   that two ids claim is shown as two entries with their holders, and getting it by that name
//!   is refused with both ids named (a member cannot redirect a name to their own build).
//! - **Store**: a catalog read from a store feed over HTTP (`feed` in `[config]`, granted with
//!   `http:<host>`): names, versions, sizes and content ids (STORE-FEED.md). The id pins every
//!   byte, so a game fetched from members is exactly the store's.
//! - **Get** downloads a game from every member who has it (verified piece by piece by
//!   Partyline). A name the store's catalog lists resolves only to the catalog's id. It then moves it into the library and announces it, so the next member gets it
//!   from one more.
//!
//! Actions: `share` (a folder's path), `get` (a name or id), `get:<id>`, `cancel:<id>`,
//! `refresh` (the feed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use partyline_plugin_sdk::blobs::{self, Destination};
use partyline_plugin_sdk::notify::Outcome;
use partyline_plugin_sdk::{
    Content, Event, Guest, Panel, export, fields, http, human_bytes, line, messaging, notify, storage,
};
use serde::Deserialize;

struct GameStore;

#[derive(Clone, Debug)]
struct Game {
    id: String,
    size: u64,
    path: String,
}

/// A game members have (keyed by its content id): the names its holders gave it, its size and
/// who has it.
#[derive(Clone, Debug, Default)]
struct Offer {
    names: BTreeSet<String>,
    size: u64,
    holders: BTreeSet<String>,
}

impl Offer {
    fn name(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }
}

#[derive(Clone, Debug, Deserialize)]
struct StoreGame {
    name: String,
    #[serde(default)]
    version: String,
    id: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct Feed {
    #[serde(default)]
    store: String,
    games: Vec<StoreGame>,
}

#[derive(Default)]
struct State {
    feed: String,
    store: String,
    library: BTreeMap<String, Game>,
    /// Downloads to move into the library when done: id → name.
    pending: BTreeMap<String, String>,
    /// By content id, from members' announcements.
    party: BTreeMap<String, Offer>,
    /// Member id → its name and the ids of the games it announced.
    announced: BTreeMap<String, (String, Vec<String>)>,
    catalog: Vec<StoreGame>,
    /// id → (done, total, peers).
    progress: BTreeMap<String, (u64, u64, u32)>,
    /// Shares and places under way: request → what for.
    requests: BTreeMap<u64, Request>,
    note: Option<String>,
}

#[derive(Clone, Debug)]
enum Request {
    Share,
    Place(String),
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut State) -> Result<T, String>) -> Result<T, String> {
    let mut guard = STATE.lock().map_err(|e| e.to_string())?;
    f(guard.get_or_insert_with(State::default))
}

const GAME: &str = "game:";
const PENDING: &str = "get:";

fn load(state: &mut State) -> Result<(), String> {
    for key in storage::keys()? {
        let Some(value) = storage::get(&key)? else { continue };
        let f = fields(&value);
        if let Some(name) = key.strip_prefix(GAME) {
            if let [id, size, path] = &f[..] {
                let game = Game { id: id.clone(), size: size.parse().unwrap_or(0), path: path.clone() };
                state.library.insert(name.to_owned(), game);
            }
        } else if let Some(id) = key.strip_prefix(PENDING) {
            state.pending.insert(id.to_owned(), f.concat());
        }
    }
    Ok(())
}

fn remember(name: &str, game: &Game) -> Result<(), String> {
    storage::set(&format!("{GAME}{name}"), line(&[&game.id, &game.size.to_string(), &game.path]).as_bytes())
}

/// Tells the other members what this library has.
fn announce(state: &State) -> Result<(), String> {
    let mut lines = vec!["have".to_owned()];
    for (name, game) in &state.library {
        lines.push(line(&[&game.id, &game.size.to_string(), name]));
    }
    messaging::broadcast(lines.join("\n").as_bytes())
}

fn heard(state: &mut State, from: &str, from_name: &str, data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    match lines.next() {
        Some("have") => {
            forget(state, from);
            let mut ids = Vec::new();
            for l in lines.take(1000) {
                if let [id, size, name] = &fields(l.as_bytes())[..] {
                    let offer = state.party.entry(id.clone()).or_default();
                    if offer.names.len() < 4 {
                        offer.names.insert(name.clone());
                    }
                    offer.size = size.parse().unwrap_or(0);
                    offer.holders.insert(from_name.to_owned());
                    ids.push(id.clone());
                }
            }
            state.announced.insert(from.to_owned(), (from_name.to_owned(), ids));
            Ok(())
        }
        Some("who") => announce(state),
        _ => Ok(()),
    }
}

/// A member left (or announced again): what it had is no longer offered by it.
fn forget(state: &mut State, member: &str) {
    let Some((who, ids)) = state.announced.remove(member) else { return };
    for id in ids {
        if let Some(offer) = state.party.get_mut(&id) {
            offer.holders.remove(&who);
            if offer.holders.is_empty() {
                state.party.remove(&id);
            }
        }
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// The id and name of a game asked for by its id, or by name (any case): a name the store's catalog
/// lists means the catalog's id; otherwise the one id members announced under that name. A name
/// two ids claim is refused, naming them.
fn find(state: &State, wanted: &str) -> Result<(String, String), String> {
    let wanted = wanted.trim();
    // An id, or its first 12 or more digits (as the panel shows them).
    let by_id: Vec<_> =
        state.party.iter().filter(|(id, _)| wanted.len() >= 12 && id.starts_with(wanted)).collect();
    if let [(id, offer)] = &by_id[..] {
        return Ok(((*id).clone(), offer.name().to_owned()));
    }
    let listed: Vec<_> =
        state.catalog.iter().filter(|g| g.id == wanted || g.name.eq_ignore_ascii_case(wanted)).collect();
    let claims: Vec<(String, String)> = match &listed[..] {
        [game] => return Ok((game.id.clone(), game.name.clone())),
        [] => state
            .party
            .iter()
            .filter(|(_, o)| o.names.iter().any(|n| n.eq_ignore_ascii_case(wanted)))
            .map(|(id, o)| (id.clone(), o.holders.iter().cloned().collect::<Vec<_>>().join(", ")))
            .collect(),
        many => many.iter().map(|g| (g.id.clone(), state.store.clone())).collect(),
    };
    match &claims[..] {
        [] => Err(format!("nobody in the party has {wanted:?} and the store does not list it")),
        [(id, _)] => Ok((id.clone(), state.party[id].name().to_owned())),
        many => {
            let each: Vec<_> = many.iter().map(|(id, who)| format!("{} ({who})", short(id))).collect();
            Err(format!(
                "{wanted:?} names {} different games: {}. Get one by its id (the Get button, or /get ID)",
                many.len(),
                each.join(", ")
            ))
        }
    }
}

fn get(state: &mut State, wanted: &str) -> Result<(), String> {
    let (id, name) = match find(state, wanted) {
        Ok(found) => found,
        Err(why) => return notify::report(&why, Outcome::Failed),
    };
    if state.library.values().any(|g| g.id == id) {
        notify::report(&format!("{name} is already in your library"), Outcome::Done)?;
        return Ok(());
    }
    blobs::get(&id, &name)?;
    storage::set(&format!("{PENDING}{id}"), name.as_bytes())?;
    state.pending.insert(id.clone(), name.clone());
    state.progress.insert(id, (0, 0, 0));
    notify::report(&format!("Getting {name}"), Outcome::Working)
}

fn placed(state: &mut State, id: &str, content: Content) -> Result<(), String> {
    let mut name = state.pending.remove(id).unwrap_or_else(|| content.name.clone());
    if state.library.get(&name).is_some_and(|g| g.id != content.id) {
        name = format!("{name} ({})", short(&content.id));
    }
    let _ = storage::delete(&format!("{PENDING}{id}"));
    state.progress.remove(id);
    let game = Game { id: content.id, size: content.size, path: content.path.unwrap_or_default() };
    remember(&name, &game)?;
    let path = game.path.clone();
    state.library.insert(name.clone(), game);
    announce(state)?;
    notify::report(&format!("{name} installed: {path}"), Outcome::Done)
}

fn draw(state: &State) -> Result<(), String> {
    let mut panel = Panel::new("Games").heading("Library");
    if state.library.is_empty() {
        panel = panel.text("No games yet: share a game's folder below, or get one from the party.");
    } else {
        let items = state.library.iter().map(|(n, g)| format!("{n} — {} — installed", human_bytes(g.size)));
        panel = panel.items(items.collect());
    }
    for (id, (done, total, peers)) in &state.progress {
        let name = state.pending.get(id).cloned().unwrap_or_else(|| id.chars().take(12).collect());
        let label = match (*total, *peers) {
            (0, _) => format!("{name}: looking for members who have it"),
            (_, 0) => format!("{name}: waiting for members who have it"),
            (_, p) => format!("{name} from {p} member(s)"),
        };
        panel =
            panel.progress(&label, *done, *total).button(&format!("cancel:{id}"), &format!("Cancel {name}"));
    }
    let offered: Vec<_> =
        state.party.iter().filter(|(id, _)| !state.library.values().any(|g| &g.id == *id)).collect();
    if !offered.is_empty() {
        panel = panel.heading("In the party");
        // How many ids claim each name (any case): a name two ids claim is flagged on each.
        let mut claims: BTreeMap<String, usize> = BTreeMap::new();
        for offer in state.party.values() {
            for name in &offer.names {
                *claims.entry(name.to_lowercase()).or_default() += 1;
            }
        }
        for (id, offer) in offered {
            let who = offer.holders.iter().cloned().collect::<Vec<_>>().join(", ");
            let names = offer.names.iter().cloned().collect::<Vec<_>>().join(" / ");
            let clash = offer.names.iter().any(|n| claims[&n.to_lowercase()] > 1);
            let warning = if clash { " — another game uses this name" } else { "" };
            panel = panel
                .text(&format!("{names} — {} — {who} — id {}{warning}", human_bytes(offer.size), short(id)))
                .button(&format!("get:{id}"), &format!("Get {} ({})", offer.name(), short(id)));
        }
    }
    if !state.catalog.is_empty() {
        panel = panel.heading(if state.store.is_empty() { "Store" } else { &state.store });
        for g in &state.catalog {
            let holders = state.party.get(&g.id).map_or(0, |o| o.holders.len());
            panel = panel.text(&format!(
                "{} {} — {} — {} — {holders} member(s) have it",
                g.name,
                g.version,
                human_bytes(g.size),
                g.description
            ));
            if holders > 0 && !state.library.values().any(|l| l.id == g.id) {
                panel = panel.button(&format!("get:{}", g.id), &format!("Get {}", g.name));
            }
        }
    }
    if let Some(note) = &state.note {
        panel = panel.text(note);
    }
    panel.input("share", "Path of a game's folder to share", "").show()
}

fn fetch_feed(state: &State) -> Result<(), String> {
    if state.feed.is_empty() {
        return Ok(());
    }
    let request =
        http::Request { method: "GET".into(), url: state.feed.clone(), headers: vec![], body: vec![] };
    http::fetch(&request).map(|_| ())
}

fn on_event(state: &mut State, event: Event) -> Result<(), String> {
    match event {
        Event::Joined(_) => {
            announce(state)?;
            messaging::broadcast(b"who")?;
        }
        Event::MemberJoined(_) => announce(state)?,
        Event::MemberLeft(m) => forget(state, &m.id),
        Event::Left => {
            state.party.clear();
            state.announced.clear();
        }
        Event::Message(m) => heard(state, &m.from.id, &m.from.name, &m.data)?,
        Event::Action(a) => match (a.id.as_str(), a.value) {
            ("share", Some(path)) if !path.trim().is_empty() => {
                let request = blobs::share(path.trim())?;
                state.requests.insert(request, Request::Share);
                state.note = Some(format!("Hashing {}…", path.trim()));
            }
            ("get", Some(wanted)) => get(state, &wanted)?,
            ("refresh", _) => fetch_feed(state)?,
            (id, _) if id.starts_with("get:") => get(state, &id["get:".len()..])?,
            (id, _) if id.starts_with("cancel:") => {
                let id = &id["cancel:".len()..];
                blobs::cancel(id)?;
            }
            _ => return Ok(()),
        },
        Event::Blob(answer) => match (state.requests.remove(&answer.request), answer.outcome) {
            (Some(Request::Share), Ok(content)) => {
                let game =
                    Game { id: content.id, size: content.size, path: content.path.unwrap_or_default() };
                remember(&content.name, &game)?;
                state.library.insert(content.name.clone(), game);
                state.note = None;
                announce(state)?;
                notify::report(&format!("Sharing {} with the party", content.name), Outcome::Done)?;
            }
            (Some(Request::Place(id)), Ok(content)) => placed(state, &id, content)?,
            (_, Err(why)) => {
                state.note = Some(why.clone());
                notify::report(&why, Outcome::Failed)?;
            }
            (None, Ok(_)) => {}
        },
        Event::Transfer(p) => {
            let now = (p.done, p.total, p.peers);
            let before = state.progress.insert(p.id, now);
            // Redraw when the bar moves a visible step (1%) or the members change.
            let step = |(d, t, _): (u64, u64, u32)| (d * 100).checked_div(t).unwrap_or(0);
            if before.is_some_and(|b| step(b) == step(now) && b.2 == now.2) {
                return Ok(());
            }
        }
        Event::TransferDone(content) => {
            let request = blobs::place(&content.id, Destination::Library)?;
            state.requests.insert(request, Request::Place(content.id));
        }
        Event::TransferFailed((id, why)) => {
            state.progress.remove(&id);
            let name = state.pending.get(&id).cloned().unwrap_or(id);
            notify::report(&format!("{name}: {why}"), Outcome::Failed)?;
        }
        Event::Http(answer) => match serde_json::from_slice::<Feed>(&answer.body) {
            Ok(feed) if answer.status == 200 => {
                state.store = feed.store;
                state.catalog = feed.games.into_iter().take(500).collect();
            }
            Ok(_) => state.note = Some(format!("the store answered {}", answer.status)),
            Err(e) => state.note = Some(format!("the store's feed is not readable: {e}")),
        },
        Event::HttpFailed((_, why)) => state.note = Some(format!("cannot reach the store: {why}")),
        _ => return Ok(()),
    }
    draw(state)
}

impl Guest for GameStore {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        with(|state| {
            state.feed = partyline_plugin_sdk::config(&config, "feed").unwrap_or("").to_owned();
            load(state)?;
            // Partyline resumes unfinished downloads by itself, and tells again of finished ones
            // not yet placed: only their progress bars are shown here.
            for id in state.pending.keys() {
                state.progress.insert(id.clone(), (0, 0, 0));
            }
            if let Err(e) = fetch_feed(state) {
                state.note = Some(format!("cannot read the store: {e}"));
            }
            draw(state)
        })
    }

    fn handle(event: Event) -> Result<(), String> {
        with(|state| on_event(state, event))
    }
}

export!(GameStore);
