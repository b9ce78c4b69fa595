//! Plugins in the real binary: `partyline plugins …` (install checked, compiled and copied; list,
//! grant, revoke, disable, remove; another API version refused), and the template plugin
//! exchanging messages with itself between two processes while a runaway plugin is stopped.

use std::time::Duration;

use partyline_tests::plugins::{install, install_hostile, plugins, template_dir, template_wasm};
use partyline_tests::{LOOPBACK, NO_VOICE, Proc, join_args};
use serde_json::Value;

fn granted(line: &Value) -> Vec<String> {
    line["granted"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_owned()).collect()
}

#[test]
fn plugins_are_installed_granted_revoked_disabled_and_removed() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (template, wasm) = (template_dir(), template_wasm());
    let (ok, out) = plugins(
        h,
        &["install", template.to_str().unwrap(), "--wasm", wasm.to_str().unwrap(), "--grant", "ui,storage"],
    );
    assert!(ok, "{out:?}");
    assert_eq!(out[0]["id"], "template");
    assert_eq!(granted(&out[0]), ["storage", "ui"]);
    assert!(h.join("data/plugins/template/plugin.wasm").exists());
    assert!(std::fs::read_dir(h.join("cache/plugins")).unwrap().count() > 0, "compiled and cached");

    // Installing again replaces it in place; the bundled plugins are there beside it.
    install(h, &template, &wasm, "ui,storage");
    let (_, listed) = plugins(h, &["list"]);
    let ids: Vec<&str> = listed.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["companion", "file-transfer", "game-store", "template"], "{listed:?}");
    assert!(listed[1..3].iter().all(|p| granted(p).contains(&"blobs".to_owned())), "bundled: all granted");
    // The companion serves a page on the local network: installed with its page, but off until
    // the user turns it on.
    assert_eq!(listed[0]["enabled"], Value::Bool(false), "{listed:?}");
    assert!(listed[1..3].iter().all(|p| p["enabled"] == Value::Bool(true)), "{listed:?}");
    assert!(h.join("data/plugins/companion/assets/index.html").exists());

    let (ok, out) = plugins(h, &["grant", "template", "party,log"]);
    assert!(ok && granted(&out[0]) == ["log", "party", "storage", "ui"], "{out:?}");
    let (ok, out) = plugins(h, &["revoke", "template", "storage"]);
    assert!(ok && granted(&out[0]) == ["log", "party", "ui"], "{out:?}");
    let (ok, out) = plugins(h, &["grant", "template", "http:evil.example"]);
    assert!(!ok, "only what it asks for: {out:?}");
    assert!(
        out.iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains("does not ask for"))),
        "{out:?}"
    );

    assert!(plugins(h, &["disable", "template"]).0);
    let (_, out) = plugins(h, &["list"]);
    assert_eq!(out.iter().find(|p| p["id"] == "template").unwrap()["enabled"], Value::Bool(false));
    assert!(plugins(h, &["remove", "template"]).0);
    assert!(!h.join("data/plugins/template").exists());
    // A bundled plugin the user removes stays removed.
    assert!(plugins(h, &["remove", "game-store"]).0);
    let ids: Vec<String> =
        plugins(h, &["list"]).1.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["companion", "file-transfer"]);
}

#[test]
fn a_plugin_built_for_another_api_version_is_refused_saying_so() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(template_dir().join("plugin.toml")).unwrap();
    std::fs::write(dir.path().join("plugin.toml"), manifest.replace("api = \"0.3.0\"", "api = \"0.4.0\""))
        .unwrap();
    std::fs::copy(template_wasm(), dir.path().join("template.wasm")).unwrap();
    let (ok, out) = plugins(home.path(), &["install", dir.path().to_str().unwrap()]);
    assert!(!ok);
    let message = out.iter().find_map(|e| e["message"].as_str()).unwrap_or_default().to_owned();
    assert!(
        message.contains("built for the plugin API 0.4.0") && message.contains("provides 0.3.0"),
        "{message}"
    );
    let (_, listed) = plugins(home.path(), &["list"]);
    assert!(listed.iter().all(|p| p["id"] != "template"), "nothing installed: {listed:?}");
}

fn panel_texts(e: &Value) -> Vec<String> {
    let mut texts = Vec::new();
    for el in e["elements"].as_array().unwrap() {
        if let Some(t) = el["text"].as_str() {
            texts.push(t.to_owned());
        }
        for item in el["items"].as_array().into_iter().flatten() {
            texts.push(item.as_str().unwrap().to_owned());
        }
    }
    texts
}

fn wait_panel(p: &Proc, what: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let e = p.wait_for(Duration::from_secs(20), what, |e| {
        e["event"] == "plugin-panel" && e["plugin"] == "template" && want(&panel_texts(e))
    });
    panel_texts(&e)
}

#[test]
fn the_template_plugin_talks_to_itself_on_another_member_and_remembers() {
    let (alice_home, bob_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for home in [alice_home.path(), bob_home.path()] {
        install(home, &template_dir(), &template_wasm(), "all");
    }
    // Alice also runs a plugin that never returns: it is stopped, and nothing else suffers.
    install_hostile(alice_home.path(), "loop", &["notify"], "notify");

    let mut alice_args = vec!["host", "--name", "alice"];
    alice_args.extend_from_slice(LOOPBACK);
    alice_args.extend_from_slice(NO_VOICE);
    let mut alice = Proc::start_in("alice", alice_home.path(), &alice_args, None, &[]);
    let link = alice.wait_event(Duration::from_secs(20), "link")["link"].as_str().unwrap().to_owned();
    let stopped = alice.seen_or_wait(Duration::from_secs(20), "the hostile plugin stopped", |e| {
        e["event"] == "plugin-stopped" && e["plugin"] == "hostile-loop"
    });
    assert!(stopped["reason"].as_str().unwrap().contains("deadline"), "{stopped}");

    let bob_args = join_args(&link, "bob", &[]);
    let mut bob = Proc::start_in("bob", bob_home.path(), &bob_args, None, &[]);
    bob.wait_event(Duration::from_secs(20), "joined");
    wait_panel(&bob, "bob's panel with both", |t| t.contains(&"alice".into()) && t.contains(&"bob".into()));

    // Bob waves: alice's template hears it from bob's, over the party connection.
    bob.send("/plugin template wave");
    wait_panel(&bob, "one wave counted", |t| t.contains(&"You waved 1 times".into()));
    let toast = alice.wait_for(Duration::from_secs(20), "the wave", |e| e["event"] == "plugin-toast");
    assert_eq!(toast["text"], "bob waves at you");
    wait_panel(&alice, "who waved", |t| t.contains(&"bob waved at you".into()));
    alice.send("still chatting");
    bob.wait_for(Duration::from_secs(10), "chat", |e| e["event"] == "chat" && e["text"] == "still chatting");

    // Bob's Partyline restarts: the count was stored.
    bob.send("/leave");
    bob.wait_exit(Duration::from_secs(10));
    let mut bob = Proc::start_in("bob", bob_home.path(), &bob_args, None, &[]);
    bob.wait_event(Duration::from_secs(20), "joined");
    bob.send("/plugin template wave");
    wait_panel(&bob, "two waves counted", |t| t.contains(&"You waved 2 times".into()));
    alice.send("/plugins");
    let status = alice.wait_for(Duration::from_secs(5), "status", |e| {
        e["event"] == "help" && e["text"].as_str().is_some_and(|t| t.starts_with("hostile-loop"))
    });
    assert!(status["text"].as_str().unwrap().contains("stopped"), "{status}");
}

#[test]
fn a_plugin_asks_for_what_it_was_not_granted_and_works_once_allowed() {
    let home = tempfile::tempdir().unwrap();
    install(home.path(), &template_dir(), &template_wasm(), "");
    let mut args = vec!["host", "--name", "alice"];
    args.extend_from_slice(LOOPBACK);
    args.extend_from_slice(NO_VOICE);
    let mut alice = Proc::start_in("alice", home.path(), &args, None, &[]);
    let asks = alice.wait_for(Duration::from_secs(20), "the plugin asking", |e| e["event"] == "plugin-asks");
    let asked: Vec<&str> =
        asks["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(asked, ["party", "party.message", "storage", "ui", "notify", "log"]);
    assert!(
        !alice.seen().iter().any(|e| e["event"] == "plugin-panel" && e["plugin"] == "template"),
        "without `ui` it cannot show a panel"
    );
    alice.send("/grant-plugin template");
    let asks = alice.wait_for(Duration::from_secs(10), "nothing more asked", |e| e["event"] == "plugin-asks");
    assert_eq!(asks["permissions"], serde_json::json!([]));
    wait_panel(&alice, "its panel, now allowed", |t| t.contains(&"alice".into()));
    let (_, listed) = plugins(home.path(), &["list"]);
    let template = listed.iter().find(|p| p["id"] == "template").unwrap();
    assert_eq!(granted(template).len(), 6, "remembered: {listed:?}");
}
