//! The `companion` interface: a plugin talks to the player's paired devices (the companion page)
//! and acts for the player from them. Each call needs the `companion` permission and fits a rate
//! of its own; what it asks for goes to the session, which owns the gateway and the voice.

use std::time::Instant;

use super::bindings::partyline::plugin::companion;
use super::companion_act::CompanionAct;
use super::host_api::{HostState, PluginOut};
use super::permission::Permission;

/// Largest message to a device (a page takes at most 4096 bytes the other way).
pub(crate) const MAX_DEVICE_TEXT: usize = 64 * 1024;
/// Largest chat line or press from the page.
const MAX_ASK: usize = 4096;

impl HostState {
    fn companion(&mut self, act: CompanionAct) -> Result<(), String> {
        self.allow(&Permission::Companion)?;
        if !self.companion_rate.take(Instant::now()) {
            self.counters.rate_limited += 1;
            return Err("too fast: `companion` is rate limited".into());
        }
        self.put(PluginOut::Companion { plugin: self.plugin.clone(), act })
    }
}

fn sized(text: String, what: &str) -> Result<String, String> {
    if text.len() > MAX_DEVICE_TEXT {
        return Err(format!("{what} are at most {MAX_DEVICE_TEXT} bytes"));
    }
    Ok(text)
}

impl companion::Host for HostState {
    fn send(&mut self, device: String, text: String) -> Result<(), String> {
        let text = sized(text, "messages to a device")?;
        self.companion(CompanionAct::Send { device: Some(device), text })
    }

    fn broadcast(&mut self, text: String) -> Result<(), String> {
        let text = sized(text, "messages to a device")?;
        self.companion(CompanionAct::Send { device: None, text })
    }

    fn push_to_talk(&mut self, down: bool) -> Result<(), String> {
        self.companion(CompanionAct::PushToTalk(down))
    }

    fn set_muted(&mut self, muted: bool) -> Result<(), String> {
        self.companion(CompanionAct::Muted(muted))
    }

    fn set_deafened(&mut self, deafened: bool) -> Result<(), String> {
        self.companion(CompanionAct::Deafened(deafened))
    }

    fn set_volume(&mut self, member: String, percent: u32) -> Result<(), String> {
        self.allow(&Permission::Companion)?;
        let name = self
            .membership
            .borrow()
            .others()
            .find(|m| m.info.peer.to_string() == member)
            .map(|m| m.info.name.clone());
        let name = name.ok_or_else(|| format!("no other member with id {member}"))?;
        let volume = percent.min(200) as f32 / 100.0;
        self.companion(CompanionAct::Volume { name, volume })
    }

    fn chat(&mut self, text: String) -> Result<(), String> {
        if text.len() > MAX_ASK {
            return Err(format!("chat lines are at most {MAX_ASK} bytes"));
        }
        if text.trim().is_empty() {
            return Err("a chat line needs some text".into());
        }
        self.companion(CompanionAct::Chat(text))
    }

    fn use_headset(&mut self, device: String, on: bool) -> Result<(), String> {
        self.companion(CompanionAct::Headset { device, on })
    }

    fn press(&mut self, plugin: String, id: String, value: Option<String>) -> Result<(), String> {
        let size = plugin.len() + id.len() + value.as_ref().map_or(0, String::len);
        if size > MAX_ASK {
            return Err(format!("a press is at most {MAX_ASK} bytes"));
        }
        if plugin == self.plugin {
            return Err("a plugin presses only other plugins' buttons".into());
        }
        self.companion(CompanionAct::Press { plugin, id, value })
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::super::tests::{ana_and_bob, peer_of};
    use super::*;
    use crate::plugins::bindings::partyline::plugin::companion::Host;

    fn state(grants: &[&str]) -> (HostState, mpsc::Receiver<PluginOut>) {
        let (tx, rx) = mpsc::channel(512);
        let grants: Vec<Permission> = grants.iter().map(|p| p.parse().unwrap()).collect();
        (HostState::new("pad", &grants, None, tx).with_membership(ana_and_bob()), rx)
    }

    #[test]
    fn acting_for_the_player_needs_companion_and_stays_within_bounds() {
        let (mut other, mut out) = state(&["party", "ui"]);
        let e = other.push_to_talk(true).unwrap_err();
        assert!(e.contains("not granted `companion`"), "{e}");
        assert!(other.broadcast("hi".into()).is_err() && other.chat("hi".into()).is_err());
        assert!(out.try_recv().is_err(), "nothing reached the session");

        let (mut pad, mut out) = state(&["companion"]);
        pad.push_to_talk(true).unwrap();
        pad.set_volume(peer_of("bob").to_string(), 250).unwrap();
        pad.press("game-store".into(), "get:1".into(), None).unwrap();
        let acts: Vec<CompanionAct> = std::iter::from_fn(|| out.try_recv().ok())
            .filter_map(|o| match o {
                PluginOut::Companion { act, .. } => Some(act),
                _ => None,
            })
            .collect();
        assert_eq!(
            acts,
            [
                CompanionAct::PushToTalk(true),
                CompanionAct::Volume { name: "bob".into(), volume: 2.0 },
                CompanionAct::Press { plugin: "game-store".into(), id: "get:1".into(), value: None },
            ]
        );
        // Itself, a member who is not there, blank or oversized lines: refused, saying why.
        assert!(pad.press("pad".into(), "x".into(), None).unwrap_err().contains("other plugins"));
        assert!(pad.set_volume(peer_of("carl").to_string(), 50).unwrap_err().contains("no other member"));
        assert!(pad.set_volume(peer_of("ana").to_string(), 50).is_err(), "not the player's own");
        assert!(pad.chat("  ".into()).is_err());
        assert!(pad.chat("x".repeat(MAX_ASK + 1)).is_err());
        assert!(pad.send("Pixel".into(), "x".repeat(MAX_DEVICE_TEXT + 1)).is_err());
        // A flood is cut off by the rate.
        let passed = (0..500).filter(|_| pad.broadcast("x".into()).is_ok()).count();
        assert!((90..200).contains(&passed), "{passed} of 500 passed");
        assert!(pad.counters.rate_limited > 0);
    }
}
