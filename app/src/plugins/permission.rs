//! What a plugin may do. Each host function needs exactly one permission; a plugin asks for them
//! in its manifest and gets those the user grants (deny by default).

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Permission {
    /// `party`: who is in the party (`party.members`, `party.me`).
    Party,
    /// `party.message`: bytes to the same plugin on other members.
    PartyMessage,
    /// `storage`: its own key-value store.
    Storage,
    /// `ui`: a panel in the overlay.
    Ui,
    /// `notify`: toasts.
    Notify,
    /// `http:<host>` or `http:<host>:<port>`: HTTP requests to that host (on that port only).
    Http(String),
    /// `timers`: timer events.
    Timers,
    /// `log`: lines in Partyline's log.
    Log,
    /// `blobs`: share files and folders the user hands it, download content from members.
    Blobs,
    /// `companion`: the player's paired phones and handhelds (messages to and from the companion
    /// page), and acting for the player from them: push-to-talk, mute, deafen, volume, chat.
    Companion,
}

impl FromStr for Permission {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "party" => Self::Party,
            "party.message" => Self::PartyMessage,
            "storage" => Self::Storage,
            "ui" => Self::Ui,
            "notify" => Self::Notify,
            "timers" => Self::Timers,
            "log" => Self::Log,
            "blobs" => Self::Blobs,
            "companion" => Self::Companion,
            other => match other.strip_prefix("http:") {
                Some(target) if valid_target(target) => Self::Http(target.to_ascii_lowercase()),
                Some(target) => bail!("`http:{target}`: not a host name (with a port, if any)"),
                None => bail!(
                    "unknown permission {other:?} (party, party.message, storage, ui, notify, \
                     http:HOST, timers, log, blobs, companion)"
                ),
            },
        })
    }
}

/// `host` or `host:port` (a port from 1 to 65535).
fn valid_target(target: &str) -> bool {
    match target.split_once(':') {
        Some((host, port)) => valid_host(host) && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => valid_host(target),
    }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
        })
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Party => f.write_str("party"),
            Self::PartyMessage => f.write_str("party.message"),
            Self::Storage => f.write_str("storage"),
            Self::Ui => f.write_str("ui"),
            Self::Notify => f.write_str("notify"),
            Self::Http(host) => write!(f, "http:{host}"),
            Self::Timers => f.write_str("timers"),
            Self::Log => f.write_str("log"),
            Self::Blobs => f.write_str("blobs"),
            Self::Companion => f.write_str("companion"),
        }
    }
}

impl TryFrom<String> for Permission {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_back_as_written_and_nonsense_is_refused() {
        for p in [
            "party",
            "party.message",
            "storage",
            "ui",
            "notify",
            "http:store.example.com",
            "http:192.168.1.20:8080",
            "timers",
            "log",
            "blobs",
            "companion",
        ] {
            assert_eq!(p.parse::<Permission>().unwrap().to_string(), p);
        }
        assert_eq!(
            "http:Store.Example.COM".parse::<Permission>().unwrap(),
            Permission::Http("store.example.com".into())
        );
        for bad in [
            "",
            "everything",
            "http:",
            "http:a b",
            "http:-x.com",
            "http:a..b",
            "http:a.com:0",
            "http:a.com:x",
            "http:a.com:1:2",
        ] {
            assert!(bad.parse::<Permission>().is_err(), "{bad}");
        }
    }
}
