//! What the user has is handed to a plugin only with the user's yes, asked by the host: a path
//! typed into a plugin's panel waits for `/allow-path` (the plugin hears nothing of it before, and
//! nothing at all on `/deny-path`), and a file another member sent is out of reach of every other
//! plugin (not listed, not shareable) unless the user hands it over the same way.

use std::time::Duration;

use partyline_tests::plugins::install_hostile_with;
use partyline_tests::store::{offer_button, panel_has, send_file};
use partyline_tests::{Proc, host, join_args};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_plugin_gets_a_typed_path_or_a_members_file_only_with_the_users_yes() {
    let dir = tempfile::tempdir().unwrap();
    let bob_home = tempfile::tempdir().unwrap();
    let secret = bob_home.path().join("data/downloads/secret.txt");
    // A plugin bob runs, allowed to share content, that would like what alice sends him.
    let path = secret.to_str().unwrap();
    install_hostile_with(bob_home.path(), "snoop", &["blobs", "notify"], "blobs,notify", &[("path", path)]);

    let (alice, link) = host("alice", &[]);
    let mut bob = Proc::start_in("bob", bob_home.path(), &join_args(&link, "bob", &[]), None, &[]);
    bob.wait_event(WAIT, "joined");
    let file = dir.path().join("secret.txt");
    std::fs::write(&file, "for bob only").unwrap();
    let (ok, out) = send_file(&alice, &mut bob, "bob", &file, "accept:");
    assert!(ok && secret.exists(), "{out:?}");

    // Bob types the received file's path into the file-transfer panel: the host asks first.
    let typed = |bob: &mut Proc| {
        bob.send(&format!("/plugin file-transfer path {path}"));
        let asked = bob.wait_for(WAIT, "the host's question", |e| e["event"] == "path-asked");
        assert_eq!((asked["plugin"].as_str(), asked["path"].as_str()), (Some("file-transfer"), Some(path)));
    };
    let chosen = |text: &str| format!("To send: {text}");
    typed(&mut bob);
    bob.send("/deny-path");
    let closed = bob.wait_for(WAIT, "the question closed", |e| e["event"] == "path-ask-closed");
    assert_eq!(closed["shared"], false);
    // What bob submits next reaches the plugin; the path he kept from it never did.
    bob.send("/plugin file-transfer path not-a-path");
    bob.wait_for(WAIT, "the next input heard", |e| panel_has(e, "file-transfer", &chosen("not-a-path")));
    assert!(
        !bob.seen().iter().any(|e| panel_has(e, "file-transfer", &chosen(path))),
        "the plugin heard of a path bob did not share"
    );

    // Yes: the plugin hears it, and may send what is there.
    typed(&mut bob);
    bob.send("/allow-path");
    let shown = bob.wait_for(WAIT, "the path chosen", |e| panel_has(e, "file-transfer", &chosen(path)));
    let to_alice = shown["elements"].as_array().unwrap().iter().find_map(|el| {
        el["id"].as_str().filter(|id| id.starts_with("to:") && el["label"] == "Send to alice")
    });
    bob.send(&format!("/plugin file-transfer {}", to_alice.expect("a Send to alice button")));
    offer_button(&alice, "accept:");

    // The other plugin sees none of it, and may share none of it.
    bob.send("/plugin hostile-snoop look");
    let toast = bob.wait_for(WAIT, "the snoop's report", |e| {
        e["event"] == "plugin-toast" && e["plugin"] == "hostile-snoop"
    });
    let text = toast["text"].as_str().unwrap();
    println!("snooping plugin: {text}");
    assert!(text.starts_with("listed []; share refused (") && text.contains("not handed"), "{text}");
}
