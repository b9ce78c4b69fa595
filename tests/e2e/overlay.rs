//! The overlay in a real window under Xvfb (Bevy on Mesa's lavapipe): screenshots checked for
//! what must be on them, clicks going through to the game until the overlay is made
//! interactive; under real window managers, staying over a game (windowed and full screen) and
//! out of its focus; and a second `partyline partyline://…` handing its link to the running one.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use partyline_tests::wm::{
    WindowManager, activate, active_window, atom, eventually, input_focus, stacked_over,
};
use partyline_tests::xvfb::{GameWindow, Picture, Xvfb, click, drag, focus, key, window_titled};
use partyline_tests::{LOOPBACK, Proc, audio, host, join, partyline_bin, plugins};
use serde_json::{Value, json};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt as _, EventMask, StackMode,
};
use x11rb::wrapper::ConnectionExt as _;

/// Where the overlay's window sits: the default anchor (top left) and margin.
const ORIGIN: (f64, f64) = (24.0, 24.0);

fn ipc(proc: &Proc, request: Value) -> Value {
    let socket = proc.home.join("data/partyline.sock");
    let mut stream = UnixStream::connect(&socket).unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    writeln!(stream, "{request}").unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

struct Shot {
    picture: Picture,
    layout: Value,
}

impl Shot {
    fn take(proc: &Proc, name: &str) -> Self {
        // Screenshots are written only into the data directory.
        let path = proc.home.join(format!("data/{name}.png"));
        assert_eq!(ipc(proc, json!({"request": "screenshot", "path": path})), json!("ok"));
        let start = Instant::now();
        while !path.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no screenshot {name}:\n{}",
                proc.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let layout = std::fs::read_to_string(format!("{}.json", path.display())).unwrap();
        Self { picture: Picture::read(&path), layout: serde_json::from_str(&layout).unwrap() }
    }

    /// Screenshots until `ready` holds (the overlay reacts to a click within a few frames).
    fn until(proc: &Proc, name: &str, ready: impl Fn(&Shot) -> bool) -> Self {
        let start = Instant::now();
        loop {
            let _ = std::fs::remove_file(proc.home.join(format!("data/{name}.png")));
            let shot = Self::take(proc, name);
            if ready(&shot) || start.elapsed() > Duration::from_secs(10) {
                return shot;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn texts(&self) -> Vec<String> {
        self.layout["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["text"].as_str().unwrap().to_owned())
            .collect()
    }

    fn has_text(&self, text: &str) -> bool {
        self.texts().iter().any(|t| t == text)
    }

    fn rect(&self, kind: &str, key: &str, value: &str) -> Option<[f64; 4]> {
        self.layout[kind].as_array().unwrap().iter().find(|r| r[key] == value).map(|r| {
            let a = r["rect"].as_array().unwrap();
            [0, 1, 2, 3].map(|i| a[i].as_f64().unwrap())
        })
    }

    fn region(&self, name: &str) -> Option<[f64; 4]> {
        self.rect("regions", "name", name)
    }

    /// Clicks the middle of the text `label` on the real screen.
    fn click_text(&self, x: &Xvfb, label: &str) {
        let r =
            self.rect("texts", "text", label).unwrap_or_else(|| panic!("no {label:?} in {:?}", self.texts()));
        click(x, ((ORIGIN.0 + r[0] + r[2] / 2.0) as i32, (ORIGIN.1 + r[1] + r[3] / 2.0) as i32));
    }

    /// Clicks `label` until the overlay shows `ready` (three tries): on a loaded machine a frame can
    /// take longer than the pointer's arrival before the click, and the click then lands nowhere.
    fn click_until(
        &self,
        proc: &Proc,
        x: &Xvfb,
        label: &str,
        name: &str,
        ready: impl Fn(&Shot) -> bool,
    ) -> Shot {
        let mut tries = 0;
        loop {
            self.click_text(x, label);
            let shot = Shot::until(proc, name, &ready);
            tries += 1;
            if ready(&shot) || tries == 3 {
                return shot;
            }
        }
    }

    /// Whether text is drawn inside the rect: light glyph pixels over the dark backdrop.
    fn drawn_text_in(&self, rect: [f64; 4]) -> bool {
        let px = self.picture.pixels(rect);
        let light = px.iter().filter(|p| p.iter().all(|c| *c > 170)).count();
        let dark = px.iter().filter(|p| p.iter().all(|c| *c < 90)).count();
        light * 20 > px.len() && dark * 20 > px.len()
    }
}

fn is_green(p: &[u8; 3]) -> bool {
    p[1] > 170 && p[0] < 130 && p[2] < 160
}

/// Hosts a party with the overlay, the template plugin installed.
fn overlay_host(x: &Xvfb, name: &str) -> (Proc, String) {
    let mut args =
        vec!["host", "--name", name, "--overlay", "--mic-device", "none", "--speaker-device", "none"];
    args.extend_from_slice(LOOPBACK);
    let home = tempfile::Builder::new().prefix(&format!("pl-{name}-")).tempdir().unwrap();
    plugins::install(home.path(), &plugins::template_dir(), &plugins::template_wasm(), "all");
    let path = home.path().to_owned();
    let proc = Proc::start_full(name, &path, &args, Some(home), &[], &x.env());
    let link = proc.wait_event(Duration::from_secs(60), "link")["link"].as_str().unwrap().to_owned();
    (proc, link)
}

#[test]
fn overlay_draws_the_party_and_lets_clicks_through_until_interactive() {
    partyline_tests::init_logs();
    // Rendering on the CPU takes both cores for a while: not next to the audio timing tests.
    let _exclusive = partyline_tests::exclusive();
    let x = Xvfb::start();
    let game = GameWindow::open(&x);
    let (ana, link) = overlay_host(&x, "ana");

    // An empty party: just me, nobody speaking.
    // (Glyphs reach the screen a few frames after the layout: screenshots are retried until they do.)
    let name_drawn = |s: &Shot| s.region("member:ana").is_some_and(|r| s.drawn_text_in(r));
    let empty = Shot::until(&ana, "empty", name_drawn);
    assert!(empty.has_text("ana") && empty.has_text("1 in party"), "{:?}", empty.texts());
    assert!(empty.drawn_text_in(empty.region("member:ana").expect("ana's row")), "ana's name is not drawn");
    assert!(empty.region("speaking:ana").is_none());

    // Not interactive: a click on the overlay's Chat button reaches the game underneath.
    // (Clicked again for a few seconds: the window's input shape is set by the X server
    // asynchronously after the window appears.)
    let through = (0..8).any(|_| {
        empty.click_text(&x, "Chat");
        game.clicks(Duration::from_millis(700)) >= 1
    });
    assert!(through, "the click did not go through to the game:\n{}", ana.stderr_tail());

    // Deafened from another process (the local socket, as a script or a stream deck would): the
    // overlay's button says so, because it shows what the voice engine reports.
    assert_eq!(ipc(&ana, json!({"request": "line", "line": "/deafen"})), json!("ok"));
    ana.wait_for(Duration::from_secs(10), "voice-state", |e| {
        e["event"] == "voice-state" && e["deafened"] == true
    });
    let deaf = Shot::until(&ana, "deafened", |s| s.has_text("Undeafen"));
    assert!(deaf.has_text("Undeafen") && deaf.has_text("Mute"), "{:?}", deaf.texts());
    assert_eq!(ipc(&ana, json!({"request": "line", "line": "/undeafen"})), json!("ok"));
    let heard = Shot::until(&ana, "undeafened", |s| s.has_text("Deafen"));
    assert!(heard.has_text("Deafen") && !heard.has_text("Undeafen"), "{:?}", heard.texts());

    // Four members, one speaking.
    let speech = audio::speech_wav().display().to_string();
    let bob = join("bob", &link, &["--mic-file", &speech, "--speaker-device", "none"]);
    let mut carl = join("carl", &link, &[]);
    let dana = join("dana", &link, &[]);
    if carl.try_wait_for(Duration::from_secs(60), |e| e["event"] == "joined").is_none() {
        panic!("carl did not join: {:?}\n{}", carl.seen(), carl.stderr_tail());
    }
    ana.wait_roster(Duration::from_secs(90), &["ana", "bob", "carl", "dana"]);
    ana.wait_for(Duration::from_secs(30), "bob speaking", |e| {
        e["event"] == "speaking" && e["name"] == "bob" && e["on"] == true
    });
    let light_on = |s: &Shot| {
        s.region("speaking:bob")
            .is_some_and(|r| s.picture.pixels(r).iter().filter(|p| is_green(p)).count() >= 6)
    };
    let four = Shot::until(&ana, "four", light_on);
    for name in ["ana", "bob", "carl", "dana", "4 in party"] {
        assert!(four.has_text(name), "{name} missing: {:?}", four.texts());
    }
    let light = four.region("speaking:bob").expect("bob's speaking light");
    assert!(
        four.picture.pixels(light).iter().filter(|p| is_green(p)).count() >= 6,
        "bob's light is not green"
    );
    assert!(four.region("speaking:carl").is_none() && four.region("speaking:dana").is_none());

    // Interactive: the same click opens the chat instead of reaching the game.
    carl.send("hello from carl");
    ana.wait_for(Duration::from_secs(10), "carl's chat", |e| {
        e["event"] == "chat" && e["text"] == "hello from carl"
    });
    assert_eq!(ipc(&ana, json!({"request": "interactive", "on": true})), json!("ok"));
    std::thread::sleep(Duration::from_millis(500));
    four.click_text(&x, "Chat");
    assert_eq!(game.clicks(Duration::from_millis(700)), 0, "an interactive overlay let a click through");
    let chat = Shot::until(&ana, "chat", |s| s.region("chat").is_some());
    assert!(chat.region("chat").is_some(), "the chat did not open: {:?}", chat.texts());
    assert!(chat.has_text("hello from carl") && chat.has_text("carl:"), "{:?}", chat.texts());

    // The invite link as a QR code: black modules on white with a white quiet zone.
    chat.click_text(&x, "Link");
    let invite = Shot::until(&ana, "invite", |s| s.region("qr").is_some());
    let qr = invite.region("qr").expect("QR code");
    let px = invite.picture.pixels(qr);
    let dark = px.iter().filter(|p| p.iter().all(|c| *c < 60)).count() as f64 / px.len() as f64;
    let white = px.iter().filter(|p| p.iter().all(|c| *c > 200)).count() as f64 / px.len() as f64;
    assert!(
        (0.2..0.6).contains(&dark) && dark + white > 0.8,
        "not a QR code: {dark:.2} dark, {white:.2} white"
    );
    let quiet = invite.picture.pixels([qr[0], qr[1], qr[2], 4.0]);
    assert!(quiet.iter().all(|p| p.iter().all(|c| *c > 200)), "no quiet zone");
    assert!(invite.texts().iter().any(|t| t.starts_with("partyline://join/")), "{:?}", invite.texts());

    // Settings.
    invite.click_text(&x, "⚙");
    let settings = Shot::until(&ana, "settings", |s| s.region("settings").is_some());
    assert!(settings.region("settings").is_some(), "{:?}", settings.texts());
    for text in ["Settings", "Push-to-talk key", "F9", "Overlay key", "shift+F10", "top-left", "Microphone"] {
        assert!(settings.has_text(text), "{text} missing: {:?}", settings.texts());
    }
    // A new push-to-talk key: click it, press the key; shown, and saved.
    let waiting =
        settings.click_until(&ana, &x, "F9", "rebinding", |s| s.has_text("press a key… (Esc: keep)"));
    assert!(waiting.has_text("press a key… (Esc: keep)"), "{:?}", waiting.texts());
    focus(&x, "Partyline");
    key(&x, "F8");
    let rebound = Shot::until(&ana, "rebound", |s| s.has_text("F8"));
    assert!(rebound.has_text("F8") && !rebound.has_text("F9"), "{:?}", rebound.texts());
    let saved = std::fs::read_to_string(ana.home.join("config/settings.toml")).unwrap();
    assert!(saved.contains("ptt_key = \"F8\""), "{saved}");

    // The template plugin's panel, drawn from what it declared (under its tab, beside the bundled
    // plugins' tabs); its button goes back to it.
    let tabs = rebound.click_until(&ana, &x, "▦", "plugin tabs", |s| s.region("tab:template").is_some());
    for tab in ["tab:file-transfer", "tab:game-store", "tab:template"] {
        assert!(tabs.region(tab).is_some(), "{tab}: {:?}", tabs.layout);
    }
    let panel = tabs.click_until(&ana, &x, "Template", "plugin", |s| {
        s.region("plugin:template").is_some() && s.has_text("dana")
    });
    for text in ["Template", "Wave at your party", "Wave", "You waved 0 times", "dana"] {
        assert!(panel.has_text(text), "{text} missing: {:?}", panel.texts());
    }
    panel.click_text(&x, "Wave");
    let waved = Shot::until(&ana, "waved", |s| s.has_text("You waved 1 times"));
    assert!(waved.has_text("You waved 1 times"), "{:?}", waved.texts());
    drop((bob, carl, dana));
}

#[test]
fn overlay_stays_over_the_game_under_openbox() {
    over_the_game_under("openbox");
}

#[test]
fn overlay_stays_over_the_game_under_fluxbox() {
    over_the_game_under("fluxbox");
}

#[test]
fn overlay_stays_over_the_game_under_icewm() {
    over_the_game_under("icewm");
}

/// A game that has the keyboard, Partyline started beside it under a real window manager: the
/// game keeps the keyboard; the overlay is over it, and again after the game is activated and
/// raised (as a click into it does), windowed and full screen; a click on the overlay reaches the
/// game; interactive, the overlay has the keyboard, and after, the game has it back.
fn over_the_game_under(wm: &'static str) {
    partyline_tests::init_logs();
    let _exclusive = partyline_tests::exclusive();
    let x = Xvfb::start();
    let _wm = WindowManager::start(&x, wm);
    let conn = x.connect();
    let game = GameWindow::open(&x);
    let g = game.window;
    let game_has_keys = || active_window(&conn) == Some(g) && input_focus(&conn) == g;
    activate(&conn, g);
    assert!(eventually(Duration::from_secs(10), game_has_keys), "{wm}: the game never got the keyboard");

    let (ana, _link) = overlay_host(&x, "ana");
    let mut overlay = None;
    let shown = eventually(Duration::from_secs(60), || {
        overlay = window_titled(&conn, "Partyline");
        overlay.is_some()
    });
    assert!(shown, "{wm}: no top-level Partyline window:\n{}", ana.stderr_tail());
    let overlay = overlay.unwrap();
    Shot::until(&ana, "shown", |s| s.has_text("ana"));
    let mut results = vec![("focus kept", game_has_keys())];
    let over = || eventually(Duration::from_secs(5), || stacked_over(&conn, overlay, g));
    results.push(("above", over()));
    // Activated and raised (the frame raised directly as well, so that something did cover it).
    let raise = || {
        activate(&conn, g);
        let frame = partyline_tests::wm::top_level(&conn, g);
        conn.configure_window(frame, &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE)).unwrap();
        conn.sync().unwrap();
    };
    raise();
    results.push(("above after the game is raised", over()));

    // Full screen, asked of the window manager as a game does.
    let (state, full) = (atom(&conn, "_NET_WM_STATE"), atom(&conn, "_NET_WM_STATE_FULLSCREEN"));
    let message = ClientMessageEvent::new(32, g, state, [1, full, 0, 1, 0]);
    let mask = EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY;
    conn.send_event(false, conn.setup().roots[0].root, mask, message).unwrap();
    conn.sync().unwrap();
    let is_full = || {
        let reply = conn.get_property(false, g, state, AtomEnum::ATOM, 0, 16).unwrap().reply().unwrap();
        reply.value32().is_some_and(|mut v| v.any(|a| a == full))
    };
    assert!(eventually(Duration::from_secs(5), is_full), "{wm}: the game did not go full screen");
    raise();
    results.push(("above the full-screen game", over()));
    results.push(("full-screen game keeps the keyboard", eventually(Duration::from_secs(5), game_has_keys)));

    // Not interactive: a click on the overlay reaches the game.
    let through = (0..8).any(|_| {
        click(&x, (ORIGIN.0 as i32 + 60, ORIGIN.1 as i32 + 20));
        game.clicks(Duration::from_millis(700)) >= 1
    });
    results.push(("click-through", through));
    results.push(("above after the click", over()));

    assert_eq!(ipc(&ana, json!({"request": "interactive", "on": true})), json!("ok"));
    results.push((
        "interactive takes the keyboard",
        eventually(Duration::from_secs(5), || input_focus(&conn) == overlay),
    ));
    // Moved by its handle (by hand: no window manager moves it).
    let at = |conn: &x11rb::rust_connection::RustConnection| {
        let root = conn.setup().roots[0].root;
        let t = conn.translate_coordinates(overlay, root, 0, 0).unwrap().reply().unwrap();
        (i32::from(t.dst_x), i32::from(t.dst_y))
    };
    let before = at(&conn);
    let shot = Shot::until(&ana, "interactive", |s| s.rect("texts", "text", "↔ move").is_some());
    let handle = shot.rect("texts", "text", "↔ move").expect("the move handle");
    let from =
        ((ORIGIN.0 + handle[0] + handle[2] / 2.0) as i32, (ORIGIN.1 + handle[1] + handle[3] / 2.0) as i32);
    drag(&x, from, (from.0 + 200, from.1 + 100));
    let moved = eventually(Duration::from_secs(5), || {
        let now = at(&conn);
        (now.0 - before.0 - 200).abs() <= 4 && (now.1 - before.1 - 100).abs() <= 4
    });
    results.push(("moved by its handle", moved));
    results.push(("above after the move", over()));
    assert_eq!(ipc(&ana, json!({"request": "interactive", "on": false})), json!("ok"));
    results.push(("the game has it back after", eventually(Duration::from_secs(5), game_has_keys)));

    let report: Vec<String> =
        results.iter().map(|(what, ok)| format!("{what}: {}", if *ok { "pass" } else { "FAIL" })).collect();
    println!("{wm}: {}", report.join(", "));
    assert!(results.iter().all(|(_, ok)| *ok), "{wm}: {}\n{}", report.join(", "), ana.stderr_tail());
}

/// A link from outside (a web page through the desktop's link handler, or a second `partyline`)
/// never moves a user who is in a party: they are asked, and nothing moves until they say yes.
#[test]
fn a_link_from_outside_asks_before_moving_the_user_to_its_party() {
    partyline_tests::init_logs();
    let (ana, link) = host("ana", &[]);
    let (mut bob, _) = host("bob", &[]);
    let bob_home = bob.home.clone();
    let hand = |link: &str| {
        let out = std::process::Command::new(partyline_bin())
            .arg("--home")
            .arg(&bob_home)
            .arg(link)
            .env_remove("DISPLAY")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && said.contains("handed"),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let owner = link.parse::<partyline_protocol::JoinLink>().unwrap().owner().to_string();
    let offered = |e: &Value| e["event"] == "link-offered" && e["owner"] == owner.as_str();
    // Declined: bob stays where he is.
    hand(&link);
    bob.wait_for(Duration::from_secs(10), "the link offered", offered);
    bob.send("/decline-link");
    bob.wait_for(Duration::from_secs(10), "declined", |e| {
        e["event"] == "link-offer-closed" && e["joining"] == false
    });
    // Asked again, and not answered: bob has not left his party, and ana's has not heard of him.
    hand(&link);
    bob.wait_for(Duration::from_secs(10), "the link offered again", offered);
    let left = bob.try_wait_for(Duration::from_secs(3), |e| e["event"] == "left");
    assert!(left.is_none(), "a link from outside moved bob out of his party without asking");
    assert!(!ana.seen().iter().any(|e| e["event"] == "member-joined"), "bob was moved into ana's party");
    // Accepted: he leaves his party for ana's.
    bob.send("/accept-link");
    bob.wait_event(Duration::from_secs(10), "left");
    bob.wait_for(Duration::from_secs(20), "joined ana's party", |e| {
        e["event"] == "joined" && e["members"].as_array().is_some_and(|m| m.iter().any(|n| n == "ana"))
    });
    ana.wait_roster(Duration::from_secs(20), &["ana", "bob"]);
    // A broken link is refused by the running one, with the reason, and it keeps its party.
    let bad = std::process::Command::new(partyline_bin())
        .arg("--home")
        .arg(&bob.home)
        .arg("partyline://join/garbage")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&bad.stdout), String::from_utf8_lossy(&bad.stderr));
    assert!(!bad.status.success() && said.contains("cannot use this link"), "{said}");
    assert!(Path::new(&bob.home.join("data/partyline.sock")).exists());
}
