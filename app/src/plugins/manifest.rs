//! A plugin's manifest, `plugin.toml`: who it is, the plugin API it was built against, what it
//! asks to be allowed, and its settings (handed to its `init`).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::permission::Permission;

/// The plugin API this host provides: the version of the WIT package `partyline:plugin`.
pub const API_VERSION: &str = "0.3.0";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and `-`, starting with a letter; names the plugin everywhere
    /// (its storage, its messages between members).
    pub id: String,
    pub name: String,
    pub version: String,
    /// The plugin API it was built against.
    pub api: String,
    #[serde(default)]
    pub permissions: Vec<Permission>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Self = toml::from_str(text).context("not a valid plugin.toml")?;
        let id = &manifest.id;
        if !partyline_protocol::wire::valid_plugin_id(id) {
            bail!("plugin id {id:?}: use 1 to 64 lower-case letters, digits and -, starting with a letter");
        }
        check_api(&manifest.api).with_context(|| format!("plugin `{id}`"))?;
        Ok(manifest)
    }
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// Whether a plugin built against API `wanted` runs on this host: the same major version (the
/// same minor while the major is 0), and nothing newer than the host's.
pub fn check_api(wanted: &str) -> Result<()> {
    let Some(w) = parse_version(wanted) else {
        bail!("API version {wanted:?} is not MAJOR.MINOR.PATCH");
    };
    let h = parse_version(API_VERSION).expect("the host's version parses");
    let same_track = if h.0 == 0 { w.0 == 0 && w.1 == h.1 } else { w.0 == h.0 };
    if !same_track {
        let track = if h.0 == 0 { format!("0.{}.x", h.1) } else { format!("{}.x", h.0) };
        bail!(
            "built for the plugin API {wanted}, but this Partyline provides {API_VERSION} (it runs plugins built for {track})"
        );
    }
    // A newer patch may call functions this host does not have.
    anyhow::ensure!(
        w <= h,
        "built for the plugin API {wanted}, but this Partyline provides {API_VERSION}, an older one: update Partyline"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_read_and_checked() {
        let m = Manifest::parse(
            r#"id = "game-store"
name = "Game store"
version = "1.2.0"
api = "0.3.0"
permissions = ["ui", "http:store.example.com"]
[config]
feed = "https://store.example.com/feed.json"
"#,
        )
        .unwrap();
        assert_eq!(m.permissions, [Permission::Ui, Permission::Http("store.example.com".into())]);
        assert_eq!(m.config["feed"], "https://store.example.com/feed.json");
        let with =
            |field: &str| format!("id = \"x\"\nname = \"X\"\nversion = \"1\"\napi = \"0.3.0\"\n{field}");
        assert!(Manifest::parse(&with("permissions = [\"root\"]")).is_err());
        assert!(Manifest::parse(&with("unknown = 1")).is_err());
        assert!(Manifest::parse(&with("").replace("\"x\"", "\"X Y\"")).is_err());
    }

    #[test]
    fn api_versions_on_the_same_track_are_accepted_others_refused_saying_why() {
        assert!(check_api("0.3.0").is_ok());
        let e = check_api("0.3.7").unwrap_err().to_string();
        assert!(e.contains("provides 0.3.0"), "a newer patch may use what this host lacks: {e}");
        let e = check_api("0.4.0").unwrap_err().to_string();
        assert!(e.contains("built for the plugin API 0.4.0") && e.contains("0.3.x"), "{e}");
        let e = check_api("0.2.1").unwrap_err().to_string();
        assert!(e.contains("built for the plugin API 0.2.1") && e.contains("0.3.x"), "{e}");
        let e = check_api("0.1.0").unwrap_err().to_string();
        assert!(e.contains("built for the plugin API 0.1.0"), "older plugins too: {e}");
        assert!(check_api("1.0.0").is_err());
        assert!(check_api("zero").is_err());
    }
}
