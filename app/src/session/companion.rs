//! The companion gateway as the session runs it: started with the session when the settings turn
//! it on, the user's pairing commands, and what the gateway tells the user (a device asking to
//! pair) going out as events.

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::Session;
use super::input::CompanionInput;
use crate::companion::{cert, gateway::Gateway};
use crate::config::CompanionSettings;
use crate::events::NodeEvent;
use crate::paths::Dirs;

/// Starts the gateway if the settings ask for it: on every address, the certificate naming the
/// LAN addresses of now, pairing links naming the first of them (IPv4 first).
pub(super) async fn start(
    dirs: &Dirs,
    settings: &CompanionSettings,
) -> Result<Option<(Gateway, mpsc::Receiver<NodeEvent>)>> {
    if !settings.enabled {
        return Ok(None);
    }
    let ips = cert::lan_ips();
    let cert = cert::load_or_make(&dirs.data.join("companion"), &ips)?;
    let host = ips.iter().find(|ip| !ip.is_loopback()).or(ips.first()).copied().expect("loopback at least");
    // Both IPv6 and IPv4 where the system allows it, else IPv4 only.
    let (db, port) = (dirs.companion_database(), settings.port);
    let gateway = match Gateway::start((std::net::Ipv6Addr::UNSPECIFIED, port).into(), host, &cert, &db).await
    {
        Ok(gateway) => gateway,
        Err(_) => Gateway::start((std::net::Ipv4Addr::UNSPECIFIED, port).into(), host, &cert, &db).await?,
    };
    let (tx, rx) = mpsc::channel(16);
    let gateway = gateway.notifying(tx);
    Ok(Some((gateway, rx)))
}

impl Session {
    pub(super) fn companion(&mut self, input: CompanionInput) -> Result<()> {
        let gateway = self.companion.as_ref().context(
            "the companion gateway is off: set `enabled = true` under [companion] in the settings",
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
