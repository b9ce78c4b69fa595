//! The plugin host with real components (built from `plugins/` by the build script): the
//! template plugin through its life, and the hostile plugin's misdeeds, each stopped or refused
//! while the host and other plugins carry on.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::bindings::partyline::plugin::types::{Event, Member, PeerMessage, UiAction};
use super::db::PluginDb;
use super::host_api::HostState;
use super::sandbox::{CallError, Sandbox};
use super::thread::PluginThread;
use super::*;
use crate::events::PanelElement as Element;

fn wasm(name: &str) -> Vec<u8> {
    let path = Path::new(BUILT).join(format!("partyline_plugin_{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Started {
    sandbox: Sandbox,
    started: Result<(), CallError>,
    out: mpsc::Receiver<PluginOut>,
}

fn start(
    rt: &Runtime,
    name: &str,
    grants: &[Permission],
    config: &[(&str, &str)],
    db: Option<&Path>,
) -> Started {
    start_component(rt, &wasm(name), name, grants, config, db)
}

fn start_component(
    rt: &Runtime,
    component: &[u8],
    name: &str,
    grants: &[Permission],
    config: &[(&str, &str)],
    db: Option<&Path>,
) -> Started {
    let loaded = rt.load(component).unwrap();
    let (tx, out) = mpsc::channel(64);
    let db = db.map(|p| PluginDb::open(p).unwrap());
    let state = HostState::new(name, grants, db, tx).with_membership(ana_and_bob());
    let config = config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let (sandbox, started) = Sandbox::start(loaded.pre, state, config);
    Started { sandbox, started, out }
}

fn drain(out: &mut mpsc::Receiver<PluginOut>) -> Vec<PluginOut> {
    std::iter::from_fn(|| out.try_recv().ok()).collect()
}

fn texts(outs: &[PluginOut]) -> Vec<String> {
    let mut texts = Vec::new();
    for out in outs {
        match out {
            PluginOut::Panel { elements, .. } => {
                for e in elements {
                    match e {
                        Element::Text(t) | Element::Heading(t) => texts.push(t.clone()),
                        Element::Items(items) => texts.extend(items.iter().cloned()),
                        _ => {}
                    }
                }
            }
            PluginOut::Toast { text, .. } => texts.push(text.clone()),
            _ => {}
        }
    }
    texts
}

pub(super) fn peer_of(name: &str) -> libp2p::PeerId {
    libp2p::identity::Keypair::ed25519_from_bytes([name.as_bytes()[0]; 32]).unwrap().public().to_peer_id()
}

fn member(name: &str, me: bool) -> Member {
    Member { id: peer_of(name).to_string(), name: name.into(), me, owner: me }
}

/// The party every plugin under test is in, as the node would publish it: ana (this node, its
/// owner) and bob.
pub(super) fn ana_and_bob() -> crate::membership::MembershipView {
    use crate::events::{MemberInfo, Path};
    let info = |name: &str, me: bool| MemberInfo {
        peer: peer_of(name),
        name: name.into(),
        presence: partyline_protocol::wire::Presence::Online,
        owner: me,
        me,
        path: Path::Direct,
    };
    let members = [info("ana", true), info("bob", false)];
    crate::membership::Membership::new(members.map(|info| crate::membership::Member { info, ips: vec![] }))
        .fixed()
}

fn all_template_permissions() -> Vec<Permission> {
    ["party", "party.message", "storage", "ui", "notify", "log"].iter().map(|p| p.parse().unwrap()).collect()
}

#[test]
fn the_template_plugin_renders_stores_and_messages() {
    let rt = Runtime::new(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plugins.db");
    let grants = all_template_permissions();
    let mut t = start(&rt, "template", &grants, &[("greeting", "Hi party")], Some(&db));
    assert_eq!(t.started, Ok(()));
    assert!(texts(&drain(&mut t.out)).contains(&"Hi party".to_owned()), "init draws the panel");

    let (ana, bob) = (member("ana", true), member("bob", false));
    t.sandbox.handle(&Event::Joined(vec![ana.clone(), bob.clone()])).unwrap();
    let shown = texts(&drain(&mut t.out));
    assert!(shown.contains(&"ana".to_owned()) && shown.contains(&"bob".to_owned()), "{shown:?}");

    // Waving: counted in storage, sent to the plugin on the others.
    t.sandbox.handle(&Event::Action(UiAction { id: "wave".into(), value: None })).unwrap();
    let outs = drain(&mut t.out);
    assert!(outs.contains(&PluginOut::Message {
        plugin: "template".into(),
        to: None,
        data: b"wave".to_vec()
    }));
    assert!(texts(&outs).contains(&"You waved 1 times".to_owned()), "{outs:?}");

    // A wave from bob: a toast, and who waved.
    let from_bob = PeerMessage { from: bob, data: b"wave".to_vec() };
    t.sandbox.handle(&Event::Message(from_bob)).unwrap();
    let shown = texts(&drain(&mut t.out));
    assert!(
        shown.contains(&"bob waves at you".to_owned()) && shown.contains(&"bob waved at you".to_owned()),
        "{shown:?}"
    );

    // Storage outlives the instance.
    let (sandbox, restarted) = t.sandbox.restart(None);
    assert_eq!(restarted, Ok(()));
    let mut sandbox = sandbox;
    sandbox.handle(&Event::Action(UiAction { id: "wave".into(), value: None })).unwrap();
    assert!(texts(&drain(&mut t.out)).contains(&"You waved 2 times".to_owned()));
}

/// The template as built for API 0.2.0 (kept in `tests/fixtures`) is refused by this host, saying
/// why: 0.3.0 added events, so its `handle` would not understand what it is handed.
#[test]
fn a_plugin_built_for_an_older_minor_api_is_refused_saying_why() {
    let rt = Runtime::new(None).unwrap();
    let old =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/template-0.2.0.wasm")).unwrap();
    let e = format!("{:#}", rt.load(&old).err().expect("refused"));
    assert!(e.contains("built for the plugin API 0.2.0") && e.contains("0.3.x"), "{e}");
}

/// A request the user made that the plugin refuses (sending to a member who is not there) is
/// reported to the user as failed, with the plugin's reason: before, it was only logged, and
/// `partyline send` waited forever.
#[test]
fn an_action_the_plugin_refuses_is_reported_as_failed() {
    let rt = Runtime::new(None).unwrap();
    let grants: Vec<Permission> = ["party", "party.message", "storage", "ui", "notify", "blobs"]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut t = start(&rt, "file_transfer", &grants, &[], Some(&dir.path().join("plugins.db")));
    assert_eq!(t.started, Ok(()));
    t.sandbox.handle(&Event::Joined(vec![member("ana", true), member("bob", false)])).unwrap();
    drain(&mut t.out);
    let send = UiAction { id: "send".into(), value: Some("carl\n/tmp/a file".into()) };
    assert!(matches!(t.sandbox.handle(&Event::Action(send)), Err(CallError::Plugin(_))));
    let outs = drain(&mut t.out);
    let failed = outs.iter().find_map(|o| match o {
        PluginOut::Toast { text, outcome: Some(crate::events::Outcome::Failed), .. } => Some(text.clone()),
        _ => None,
    });
    assert_eq!(failed.as_deref(), Some("no member named \"carl\""), "{outs:?}");
}

/// The hostile plugin in `mode`, granted `grants`.
fn hostile(rt: &Runtime, mode: &str, grants: &[&str]) -> Started {
    let grants: Vec<Permission> = grants.iter().map(|p| p.parse().unwrap()).collect();
    let t = start(rt, "hostile", &grants, &[("mode", mode)], None);
    assert_eq!(t.started, Ok(()), "{mode} starts");
    t
}

fn stopped_for(rt: &Runtime, mode: &str) -> (String, Duration) {
    let mut t = hostile(rt, mode, &[]);
    let at = Instant::now();
    let result = t.sandbox.handle(&Event::Left);
    let took = at.elapsed();
    let Err(CallError::Stopped(reason)) = result else { panic!("{mode}: {result:?}") };
    assert!(drain(&mut t.out).iter().any(|o| matches!(o, PluginOut::Stopped { .. })), "reported");
    // Stopped stays stopped, without running anything.
    assert!(matches!(t.sandbox.handle(&Event::Left), Err(CallError::Stopped(_))));
    (reason, took)
}

#[test]
fn a_runaway_plugin_is_stopped_at_its_deadline_and_can_be_restarted() {
    let rt = Runtime::new(None).unwrap();
    let (reason, took) = stopped_for(&rt, "loop");
    assert!(reason.contains("deadline"), "{reason}");
    assert!(took >= Duration::from_millis(90), "stopped after {took:?}");
    let mut t = hostile(&rt, "loop", &[]);
    let _ = t.sandbox.handle(&Event::Left);
    let (mut sandbox, restarted) = t.sandbox.restart(None);
    assert_eq!(restarted, Ok(()), "a fresh instance");
    assert!(matches!(sandbox.handle(&Event::Left), Err(CallError::Stopped(r)) if r.contains("deadline")));
}

#[test]
fn memory_bombs_recursion_and_traps_stop_only_the_plugin_that_did_them() {
    let rt = Runtime::new(None).unwrap();
    let (reason, _) = stopped_for(&rt, "memory");
    assert!(reason.contains("64 MiB"), "{reason}");
    let (reason, _) = stopped_for(&rt, "recursion");
    assert!(reason.contains("stack"), "{reason}");
    let (reason, _) = stopped_for(&rt, "trap");
    assert!(reason.contains("crashed"), "{reason}");
    // Meanwhile another plugin on the same engine works as before.
    let mut well = hostile(&rt, "well", &["notify"]);
    well.sandbox.handle(&Event::Left).unwrap();
    assert_eq!(texts(&drain(&mut well.out)), ["event 1"]);
}

#[test]
fn host_functions_not_granted_are_refused() {
    let rt = Runtime::new(None).unwrap();
    let mut t = hostile(&rt, "ungranted", &["notify"]);
    t.sandbox.handle(&Event::Left).unwrap();
    let report = texts(&drain(&mut t.out)).join("");
    for what in ["party", "party.message", "storage", "ui", "http", "timers", "log"] {
        assert!(report.contains(&format!("{what}=refused")), "{what}: {report}");
    }
    assert_eq!(t.sandbox.counters().refused, 7);
}

#[test]
fn a_flooding_plugin_is_bounded_and_the_others_keep_working() {
    let rt = Runtime::new(None).unwrap();
    let mut flood = hostile(&rt, "flood", &["party.message", "notify", "log"]);
    let _ = flood.sandbox.handle(&Event::Left);
    let outs = drain(&mut flood.out);
    assert!(outs.len() <= 64, "the outbox is bounded: {}", outs.len());
    let c = flood.sandbox.counters();
    assert!(c.rate_limited > 1000, "{c:?}");
    let mut well = hostile(&rt, "well", &["notify"]);
    well.sandbox.handle(&Event::Left).unwrap();
    assert_eq!(texts(&drain(&mut well.out)), ["event 1"]);

    // Events pile up for a plugin that is busy: its queue is bounded too.
    let slow = hostile(&rt, "loop", &[]);
    let (sandbox, started) = (slow.sandbox, slow.started);
    let thread = PluginThread::spawn("slow", move || (sandbox, started), super::thread::queue()).unwrap();
    let sent = (0..2000).filter(|_| thread.send(Event::Left)).count();
    assert!(sent < 2000 && thread.status().dropped_events > 0, "sent {sent}");
}

#[test]
fn compiled_plugins_are_cached_and_a_damaged_cache_is_rebuilt() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cache = |key: &str| CompiledCache { dir: dir.path().to_owned(), key: keys.path().join(key) };
    let rt = Runtime::new(Some(cache("key"))).unwrap();
    let wasm = wasm("template");
    assert!(!rt.load(&wasm).unwrap().cached);
    assert!(rt.load(&wasm).unwrap().cached);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    assert!(!rt.load(&wasm).unwrap().cached, "compiled again");
    assert!(rt.load(b"not wasm").is_err());
}

/// Compiled code is native code: a file planted in the cache (another plugin's compiled code
/// under this plugin's name, or one written with another key) is never loaded.
#[test]
fn compiled_code_not_signed_by_this_partyline_is_not_loaded() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cache = |key: &str| CompiledCache { dir: dir.path().to_owned(), key: keys.path().join(key) };
    let rt = Runtime::new(Some(cache("key"))).unwrap();
    let files = || -> Vec<_> { std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect() };
    let (template, hostile) = (wasm("template"), wasm("hostile"));
    rt.load(&template).unwrap();
    let template_file = files().pop().unwrap();
    rt.load(&hostile).unwrap();
    let hostile_file = files().into_iter().find(|f| *f != template_file).unwrap();

    // The hostile plugin's compiled code, moved under the template's name.
    std::fs::copy(&hostile_file, &template_file).unwrap();
    assert!(!rt.load(&template).unwrap().cached, "a signature covers the name too");
    // Compiled by a Partyline with another key.
    let other = Runtime::new(Some(cache("other key"))).unwrap();
    std::fs::remove_file(&template_file).unwrap();
    assert!(!other.load(&template).unwrap().cached);
    assert!(!rt.load(&template).unwrap().cached, "signed with another key");
    assert!(rt.load(&template).unwrap().cached, "signed again, with this key");
    let key = keys.path().join("key");
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&key).unwrap()) & 0o777, 0o600);
}

/// A one-shot HTTP server on loopback answering `answer`; its URL.
fn serve_once(answer: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/feed", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            request.push(byte[0]);
        }
        let _ = stream.write_all(answer.as_bytes());
    });
    url
}

#[test]
fn plugins_fetch_from_granted_hosts_and_redirects_are_not_followed() {
    let rt = Runtime::new(None).unwrap();
    let fetch = |url: &str| fetch_granted(&rt, url, "http:127.0.0.1");
    let ok = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    assert_eq!(fetch(&ok), "200 hello");
    let moved = serve_once(
        "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(fetch(&moved), "302 ");
    // Nobody listens there: the failure comes back as an event.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(fetch(&format!("http://127.0.0.1:{closed}/")).starts_with("failed: "));
}

/// A granted name that resolves to this machine (as a rebinding name or a hostile feed would)
/// is not connected to; the address granted by itself, on its port, is.
#[test]
fn a_granted_name_that_resolves_to_this_machine_is_not_reached() {
    let rt = Runtime::new(None).unwrap();
    let url = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret");
    let by_name = url.replace("127.0.0.1", "localhost");
    let refused = fetch_granted(&rt, &by_name, "http:localhost");
    assert!(refused.starts_with("failed: ") && refused.contains("resolves to 127.0.0.1"), "{refused}");
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    assert_eq!(fetch_granted(&rt, &url, &format!("http:127.0.0.1:{port}")), "200 secret");
}

/// What the hostile plugin's `fetch` mode shows for `url`, granted `grant` and `notify`.
fn fetch_granted(rt: &Runtime, url: &str, grant: &str) -> String {
    let loaded = rt.load(&wasm("hostile")).unwrap();
    let (tx, mut out) = mpsc::channel(16);
    let queue = super::thread::queue();
    let grants = [grant.parse().unwrap(), Permission::Notify];
    let state = HostState::new("hostile", &grants, None, tx).with_fetcher(super::thread::deliver(&queue.0));
    let config = vec![("mode".to_owned(), "fetch".to_owned()), ("url".to_owned(), url.to_owned())];
    let thread =
        PluginThread::spawn("hostile", move || Sandbox::start(loaded.pre, state, config), queue).unwrap();
    assert!(thread.send(Event::Left));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(text) = texts(&drain(&mut out)).pop() {
            return text;
        }
        assert!(Instant::now() < deadline, "no answer");
        std::thread::sleep(Duration::from_millis(20));
    }
}
