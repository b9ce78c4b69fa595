//! The companion page as the player's remote, in headless Chromium against a running Partyline
//! with another member in the party: push-to-talk held in the page makes the other member see
//! this player speaking (and stop when it is let go), so does a gamepad's first button, the
//! latch holds it, mute and deafen go
//! round the voice engine and back, and chat goes both ways; a game Bob shares is got from the
//! page, its progress shown there.

use std::time::{Duration, Instant};

use partyline_tests::companion::{Remote, pressed};
use partyline_tests::games;
use partyline_tests::store::games_cli;

#[test]
fn the_page_talks_mutes_deafens_and_chats_for_the_player() {
    let _turn = partyline_tests::exclusive();
    let mut r = Remote::start();

    // The party's invite link, and its QR code, for a friend.
    let link = r.browser.wait_text("invite-link", Duration::from_secs(10), |t| t.starts_with("partyline://"));
    assert!(r.ana.seen().iter().any(|e| e["event"] == "link" && e["link"] == link.as_str()), "{link}");
    let qr = r.browser.script("return document.querySelector('#invite-qr canvas')?.width ?? 0");
    assert!(qr.as_u64().unwrap() > 100, "a QR code is drawn: {qr}");

    // Held: Bob sees Ana speak, and so does the page; let go: she stops.
    for _ in 0..2 {
        let pressed_at = Instant::now();
        r.browser.press("ptt");
        r.bob_sees_ana(true, Duration::from_secs(10));
        println!("push-to-talk in the page → speaking at bob: {:?}", pressed_at.elapsed());
        let ana_speaks = "return document.querySelector('#members li.speaking')?.textContent ?? ''";
        r.browser.wait_script(ana_speaks, Duration::from_secs(5), |t| {
            t.as_str().is_some_and(|t| t.contains("ana"))
        });
        r.browser.release();
        r.bob_sees_ana(false, Duration::from_secs(10));
    }

    // A gamepad's first button is push-to-talk too. Headless Chromium has no gamepad, and
    // WebDriver cannot make one: the page's `navigator.getGamepads` is stood in for, the rest
    // (the page's polling, the socket, the plugin, the voice engine) is real.
    r.browser.script(
        "window.pad = { buttons: [{ pressed: true }] }; navigator.getGamepads = () => [window.pad]; \
         window.dispatchEvent(new Event('gamepadconnected')); return true",
    );
    r.bob_sees_ana(true, Duration::from_secs(10));
    r.browser.script("window.pad.buttons[0].pressed = false; return true");
    r.bob_sees_ana(false, Duration::from_secs(10));
    r.browser.script("navigator.getGamepads = () => []; return true");

    // The latch holds it without a finger on it, until tapped again.
    r.browser.click("latch");
    r.bob_sees_ana(true, Duration::from_secs(10));
    r.browser.wait_script(
        "return document.getElementById('latch').getAttribute('aria-pressed')",
        Duration::from_secs(5),
        |v| v == "true",
    );
    r.browser.click("latch");
    r.bob_sees_ana(false, Duration::from_secs(10));

    // Mute and deafen: the voice engine says so, and the page shows what it says.
    for (button, field) in [("mute", "muted"), ("deafen", "deafened")] {
        for on in [true, false] {
            r.browser.click(button);
            let state = r.ana.wait_for(Duration::from_secs(10), "voice-state", |e| {
                e["event"] == "voice-state" && e[field] == on
            });
            assert_eq!(state[field], on);
            let want = if on { "true" } else { "false" };
            let script = format!("return document.getElementById('{button}').getAttribute('aria-pressed')");
            r.browser.wait_script(&script, Duration::from_secs(5), |v| v == want);
            assert_eq!(pressed(&r.browser, button), want, "{button}");
        }
    }

    // Chat both ways.
    r.browser.type_into("line", "hello from the couch");
    r.browser.click("send");
    let heard =
        r.bob.wait_for(Duration::from_secs(10), "ana's chat", |e| e["event"] == "chat" && e["from"] == "ana");
    assert_eq!(heard["text"], "hello from the couch");
    r.bob.send("hi couch");
    r.browser.wait_text("chat", Duration::from_secs(10), |t| t.contains("bob: hi couch"));
    assert!(r.browser.text("chat").contains("ana: hello from the couch"), "{}", r.browser.text("chat"));
}

#[test]
fn a_game_another_member_shares_is_got_from_the_page_with_its_progress() {
    let _turn = partyline_tests::exclusive();
    // Bob uploads slowly, so that the download takes a few seconds to watch.
    let r = Remote::with_bob(&["--upload-limit", "8"]);
    let dir = tempfile::tempdir().unwrap();
    let game = games::generate(dir.path(), "Long Road", 48 << 20, 7);
    let (ok, out) = games_cli(&r.bob, &["share", game.to_str().unwrap()], Duration::from_secs(60));
    assert!(ok, "{out:?}");

    // The game store's panel, on the page: Bob's game, with a button to get it.
    let get = "return [...document.querySelectorAll('[data-plugin=\"game-store\"] button')]\
               .find(b => b.textContent.startsWith('Get Long Road'))?.dataset.id ?? null";
    let id = r.browser.wait_script(get, Duration::from_secs(20), |v| v.is_string());
    let press = format!(
        "document.querySelector('[data-plugin=\"game-store\"] button[data-id=\"{}\"]').click(); return true",
        id.as_str().unwrap()
    );
    r.browser.script(&press);

    // Its progress shows while it comes, and the library has it at the end.
    let progress = "const p = document.querySelector('[data-plugin=\"game-store\"] progress'); \
                    return p ? [Number(p.dataset.done), Number(p.dataset.total)] : null";
    let seen = r.browser.wait_script(progress, Duration::from_secs(30), |v| {
        v[0].as_u64().is_some_and(|done| done > 0) && v[0].as_u64() < v[1].as_u64()
    });
    println!("progress on the page: {seen}");
    r.ana.wait_event(Duration::from_secs(60), "transfer-complete");
    let library = "return document.querySelector('[data-plugin=\"game-store\"]')?.textContent ?? ''";
    r.browser.wait_script(library, Duration::from_secs(10), |t| {
        t.as_str().is_some_and(|t| t.contains("Long Road") && !t.contains("Get Long Road"))
    });
}
