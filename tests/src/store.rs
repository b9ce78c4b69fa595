//! Driving the game store and file transfers of a running Partyline from a test: `partyline games …`
//! against it, its panels and offers, its library, and a store feed served by `partyline store-feed`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Proc, partyline_bin, run_cli};

/// Whether `e` is a panel of `plugin` with an element whose text or label holds `text`.
pub fn panel_has(e: &Value, plugin: &str, text: &str) -> bool {
    e["event"] == "plugin-panel"
        && e["plugin"] == plugin
        && e["elements"].as_array().is_some_and(|els| {
            els.iter()
                .any(|el| el["text"].as_str().or(el["label"].as_str()).is_some_and(|t| t.contains(text)))
        })
}

/// The game store's Get buttons for `game` in the panel `e` (one per content id offered).
pub fn get_buttons(e: &Value, game: &str) -> usize {
    if e["event"] != "plugin-panel" || e["plugin"] != "game-store" {
        return 0;
    }
    let label = format!("Get {game} (");
    e["elements"].as_array().map_or(0, |els| {
        els.iter()
            .filter(|el| {
                el["kind"] == "button" && el["label"].as_str().is_some_and(|l| l.starts_with(&label))
            })
            .count()
    })
}

/// Until the other members' game stores have heard of each other.
pub fn wait_offered(p: &Proc, game: &str) {
    p.wait_for(Duration::from_secs(30), &format!("{game} offered"), |e| get_buttons(e, game) > 0);
}

/// Where a game lands in `p`'s library.
pub fn library(p: &Proc, game: &str) -> PathBuf {
    p.home.join("data/library").join(game)
}

/// `partyline send PATH --to NAME` against the running `from`, while `to` (named `name`) presses
/// its offer's `accept:` or `decline:` button; whether the command succeeded, and what it printed.
pub fn send_file(from: &Proc, to: &mut Proc, name: &str, path: &Path, button: &str) -> (bool, Vec<Value>) {
    let (home, path, name_owned) = (from.home.clone(), path.to_path_buf(), name.to_owned());
    let sender = std::thread::spawn(move || {
        run_cli(&home, &["send", path.to_str().unwrap(), "--to", &name_owned], Duration::from_secs(120))
    });
    let pressed = offer_button(to, button);
    to.send(&format!("/plugin file-transfer {pressed}"));
    sender.join().unwrap()
}

/// The id of the newest offer button (`accept:…` or `decline:…`) on a file-transfer panel.
pub fn offer_button(p: &Proc, prefix: &str) -> String {
    let started = Instant::now();
    loop {
        let panel = p.wait_for(Duration::from_secs(30), "an offer", |e| {
            e["event"] == "plugin-panel" && e["plugin"] == "file-transfer"
        });
        let buttons: Vec<String> = panel["elements"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["id"].as_str().filter(|id| id.starts_with(prefix)).map(str::to_owned))
            .collect();
        if let Some(last) = buttons.last() {
            return last.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no offer to {prefix}");
    }
}

/// Runs `partyline games ARGS` against `p`'s running Partyline.
pub fn games_cli(p: &Proc, args: &[&str], timeout: Duration) -> (bool, Vec<Value>) {
    let mut all = vec!["games"];
    all.extend_from_slice(args);
    run_cli(&p.home, &all, timeout)
}

/// `partyline store-feed DIR` in the background: the process and its feed's URL.
pub struct FeedServer {
    child: std::process::Child,
    pub url: String,
}

impl FeedServer {
    pub fn start(dir: &Path) -> Self {
        let mut child = std::process::Command::new(partyline_bin())
            .args(["--json", "store-feed"])
            .arg(dir)
            .args(["--name", "Club store"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("store-feed runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a line");
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        Self { child, url: event["url"].as_str().expect("url").to_owned() }
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
