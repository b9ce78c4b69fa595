//! The template plugin: copy this folder to start a plugin of your own.
//!
//! It shows who is in the party and a "Wave" button. A wave travels to the same plugin on every
//! other member, which shows a toast and who waved last; how many times you waved is kept in the
//! plugin's storage, so it survives restarts.

use std::sync::Mutex;

use partyline_plugin_sdk::{Event, Guest, Panel, export, messaging, notify, party, storage};

struct Template;

/// The greeting from `[config]`, and who waved last.
static STATE: Mutex<(String, Option<String>)> = Mutex::new((String::new(), None));

const WAVES: &str = "waves-sent";
const WAVE: &[u8] = b"wave";

fn waves_sent() -> u64 {
    let stored = storage::get(WAVES).ok().flatten();
    stored.and_then(|bytes| bytes.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0)
}

fn draw() -> Result<(), String> {
    let (greeting, last) = STATE.lock().map_err(|e| e.to_string())?.clone();
    let members = party::members()?;
    let mut panel = Panel::new("Template")
        .heading(&greeting)
        .items(members.iter().map(|m| m.name.clone()).collect())
        .button("wave", "Wave")
        .text(&format!("You waved {} times", waves_sent()));
    if let Some(name) = last {
        panel = panel.text(&format!("{name} waved at you"));
    }
    panel.show()
}

impl Guest for Template {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let greeting = partyline_plugin_sdk::config(&config, "greeting").unwrap_or("Template");
        STATE.lock().map_err(|e| e.to_string())?.0 = greeting.to_owned();
        partyline_plugin_sdk::info("template plugin started");
        draw()
    }

    fn handle(event: Event) -> Result<(), String> {
        match event {
            Event::Joined(_) | Event::MemberJoined(_) | Event::MemberLeft(_) | Event::Left => draw(),
            Event::Action(action) if action.id == "wave" => {
                storage::set(WAVES, &(waves_sent() + 1).to_le_bytes())?;
                messaging::broadcast(WAVE)?;
                draw()
            }
            Event::Message(message) if message.data == WAVE => {
                notify::toast(&format!("{} waves at you", message.from.name))?;
                STATE.lock().map_err(|e| e.to_string())?.1 = Some(message.from.name);
                draw()
            }
            _ => Ok(()),
        }
    }
}

export!(Template);
