//! The companion gateway as the session runs it: started with the session while a plugin granted
//! `companion` runs (the bundled `companion`, once the user enables it), serving that plugin's
//! page; the user's pairing commands; what devices do going to the plugins (and, for the user,
//! a device asking to pair, connecting, leaving); and what the plugin asks, done.

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::Session;
use super::input::{CompanionInput, Input};
use crate::companion::cert;
use crate::companion::gateway::{DeviceEvent, Gateway};
use crate::config::CompanionSettings;
use crate::events::NodeEvent;
use crate::net::VoiceControl;
use crate::paths::Dirs;
use crate::plugins::CompanionAct;
use crate::voice::headset::Headset;

/// Starts the gateway serving `page` (when a companion plugin runs): on every address, the
/// certificate naming the LAN addresses of now, pairing links naming the first of them (IPv4
/// first).
pub(super) async fn start(
    dirs: &Dirs,
    settings: &CompanionSettings,
    page: Option<std::path::PathBuf>,
) -> Result<Option<(Gateway, mpsc::Receiver<DeviceEvent>)>> {
    let Some(page) = page else { return Ok(None) };
    let ips = cert::lan_ips();
    let cert = cert::load_or_make(&dirs.data.join("companion"), &ips)?;
    let host = ips.iter().find(|ip| !ip.is_loopback()).or(ips.first()).copied().expect("loopback at least");
    // Both IPv6 and IPv4 where the system allows it, else IPv4 only.
    let (db, port) = (dirs.companion_database(), settings.port);
    let any6 = (std::net::Ipv6Addr::UNSPECIFIED, port).into();
    let gateway = match Gateway::start(any6, host, &cert, &db, &page).await {
        Ok(gateway) => gateway,
        Err(_) => {
            let any4 = (std::net::Ipv4Addr::UNSPECIFIED, port).into();
            Gateway::start(any4, host, &cert, &db, &page).await?
        }
    };
    let (tx, rx) = mpsc::channel(256);
    let gateway = gateway.notifying(tx);
    Ok(Some((gateway, rx)))
}

impl Session {
    /// Starts the gateway if it is not running and a plugin granted `companion` runs: at the
    /// start, and when the user grants it.
    pub(super) async fn start_companion(&mut self) {
        let Some((dirs, settings)) = &self.companion_setup else { return };
        if self.companion.is_some() {
            return;
        }
        match start(dirs, settings, self.plugins.companion_page()).await {
            Ok(started) => (self.companion, self.companion_events) = started.unzip(),
            Err(e) => self.error(&format!("the companion gateway is off: {e:#}")),
        }
    }

    /// What a device did: the user hears of devices asking to pair, connecting and leaving;
    /// plugins hear all of it.
    pub(super) fn on_device(&mut self, event: DeviceEvent) {
        self.plugins.on_device(&event);
        if matches!(event, DeviceEvent::Connected { .. }) {
            // The page draws every panel there is.
            for panel in self.panels.values() {
                self.plugins.on_event(panel);
            }
        }
        let event = match event {
            DeviceEvent::Waiting { name, code } => NodeEvent::DeviceWaiting { name, code },
            DeviceEvent::Connected { device } => NodeEvent::DeviceConnected { name: device },
            DeviceEvent::Left { device } => NodeEvent::DeviceLeft { name: device },
            DeviceEvent::Message { .. } => return,
        };
        self.publish(&event);
    }

    /// What the companion plugin asks for: a message to the devices, or acting for the player.
    pub(super) async fn on_companion(&mut self, act: CompanionAct) {
        use partyline_protocol::wire::Presence;
        let input = match act {
            CompanionAct::Send { device, text } => {
                if let Some(gateway) = &self.companion {
                    gateway.send(device.as_deref(), &text);
                }
                return;
            }
            CompanionAct::PushToTalk(down) => Input::Voice(VoiceControl::Key(down)),
            CompanionAct::Muted(true) => Input::Presence(Presence::Muted),
            CompanionAct::Muted(false) => Input::Presence(Presence::Online),
            CompanionAct::Deafened(on) => Input::Voice(VoiceControl::Deafened(on)),
            CompanionAct::Volume { name, volume } => Input::Voice(VoiceControl::Volume { name, volume }),
            CompanionAct::Chat(text) => Input::Chat(text),
            CompanionAct::Press { plugin, id, value } => Input::PluginAction { plugin, id, value },
            CompanionAct::Headset { device, on: true } => {
                let Some(gateway) = &self.companion else { return };
                let (headset, mic, mix) = Headset::new(&device);
                if let Err(e) = gateway.headset(&device, mic, mix) {
                    return self.error(&format!("{e:#}"));
                }
                Input::Voice(VoiceControl::Headset(Some(headset)))
            }
            CompanionAct::Headset { on: false, .. } => {
                if let Some(gateway) = &self.companion {
                    gateway.headset_off();
                }
                Input::Voice(VoiceControl::Headset(None))
            }
        };
        self.run_input(input).await;
    }

    pub(super) fn companion(&mut self, input: CompanionInput) -> Result<()> {
        let gateway = self.companion.as_ref().context(
            "the companion gateway is off: turn on its plugin (`partyline plugins enable companion`)",
        )?;
        let event = match input {
            CompanionInput::Pair => NodeEvent::CompanionPairing { url: gateway.pair() },
            CompanionInput::Confirm(code) => NodeEvent::DevicePaired { name: gateway.confirm(&code)? },
            CompanionInput::Devices => NodeEvent::Devices {
                devices: gateway.devices()?.into_iter().map(|d| (d.name, d.last_used_ms)).collect(),
            },
            CompanionInput::Revoke(name) => {
                anyhow::ensure!(gateway.revoke(&name)?, "no device named {name:?} (/devices lists them)");
                NodeEvent::DeviceRevoked { name }
            }
        };
        self.publish(&event);
        Ok(())
    }
}
