//! Misbehaves on purpose, so that the host's tests can show it stays in charge. What it does on
//! each event is its `mode` setting:
//! - `loop`: never returns;
//! - `memory`: allocates until refused;
//! - `recursion`: recurses until the stack runs out;
//! - `trap`: executes an unreachable instruction;
//! - `ungranted`: calls a host function of each permission and reports the answers in a toast
//!   (grant it `notify` only);
//! - `flood`: sends messages, toasts and log lines as fast as it can;
//! - `fetch`: fetches its `url` on its first event and shows the answer in a toast (grant it
//!   `http:<host>` and `notify`);
//! - `snoop`: on an action, lists the content it can see and tries to share its `path` setting
//!   (a file a member sent the user), and says what came of both in a toast (grant it `blobs`
//!   and `notify`);
//! - `well`: behaves (counts events in a toast), to show the others keep working.

use std::sync::Mutex;

use partyline_plugin_sdk::{Event, Guest, blobs, export, http, log, messaging, notify, party, storage, timers, ui};

struct Hostile;

static MODE: Mutex<String> = Mutex::new(String::new());
static URL: Mutex<String> = Mutex::new(String::new());
static PATH: Mutex<String> = Mutex::new(String::new());
static EVENTS: Mutex<u64> = Mutex::new(0);

/// Never returns: it recurses until the stack runs out (its frames hold nothing in memory, so
/// it is the wasm stack that overflows).
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))).wrapping_add(1)
}

fn answers() -> String {
    // Toasts are short: "refused" for a missing permission, else what was said.
    let show = |r: Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) if e.contains("was not granted") => "refused".to_owned(),
        Err(e) => e,
    };
    let request = http::Request {
        method: "GET".into(),
        url: "http://example.com/".into(),
        headers: vec![],
        body: vec![],
    };
    [
        ("party", show(party::members().map(|_| ()))),
        ("party.message", show(messaging::broadcast(b"hi"))),
        ("storage", show(storage::set("k", b"v"))),
        ("ui", show(ui::set_panel("x", &[]))),
        ("http", show(http::fetch(&request).map(|_| ()))),
        ("timers", show(timers::after(10).map(|_| ()))),
        ("log", show(log::write(log::Level::Info, "hi"))),
    ]
    .iter()
    .map(|(what, answer)| format!("{what}={answer}"))
    .collect::<Vec<_>>()
    .join(" ")
}

impl Guest for Hostile {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mode = partyline_plugin_sdk::config(&config, "mode").unwrap_or("well");
        *MODE.lock().map_err(|e| e.to_string())? = mode.to_owned();
        *URL.lock().map_err(|e| e.to_string())? =
            partyline_plugin_sdk::config(&config, "url").unwrap_or("").to_owned();
        *PATH.lock().map_err(|e| e.to_string())? =
            partyline_plugin_sdk::config(&config, "path").unwrap_or("").to_owned();
        Ok(())
    }

    fn handle(event: Event) -> Result<(), String> {
        let mode = MODE.lock().map_err(|e| e.to_string())?.clone();
        match mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recursion" => {
                let depth = recurse(0);
                Err(format!("recursed {depth} deep"))
            }
            "trap" => std::process::abort(),
            "ungranted" => notify::toast(&answers()),
            "fetch" => match event {
                Event::Http(answer) => {
                    notify::toast(&format!("{} {}", answer.status, String::from_utf8_lossy(&answer.body)))
                }
                Event::HttpFailed((_, why)) => notify::toast(&format!("failed: {why}")),
                _ => {
                    let url = URL.lock().map_err(|e| e.to_string())?.clone();
                    let request = http::Request { method: "GET".into(), url, headers: vec![], body: vec![] };
                    http::fetch(&request).map(|_| ())
                }
            },
            "snoop" => match event {
                Event::Action(_) => {
                    let seen = blobs::list()?.into_iter().map(|c| c.name).collect::<Vec<_>>();
                    let path = PATH.lock().map_err(|e| e.to_string())?.clone();
                    let shared = match blobs::share(&path) {
                        Ok(_) => "ok".to_owned(),
                        Err(e) => format!("refused ({e})"),
                    };
                    notify::toast(&format!("listed [{}]; share {shared}", seen.join(", ")))
                }
                _ => Ok(()),
            },
            "flood" => {
                for i in 0..100_000u32 {
                    let _ = messaging::broadcast(&i.to_le_bytes());
                    let _ = notify::toast("flood");
                    let _ = log::write(log::Level::Info, "flood");
                }
                Ok(())
            }
            _ => {
                let mut events = EVENTS.lock().map_err(|e| e.to_string())?;
                *events += 1;
                notify::toast(&format!("event {events}"))
            }
        }
    }
}

export!(Hostile);
