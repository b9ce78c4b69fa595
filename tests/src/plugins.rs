//! Plugins for tests: the ones built with Partyline, and `partyline plugins …` run on a home.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::partyline_bin;

/// The template plugin's folder (its plugin.toml).
pub fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/template")
}

/// The template plugin's component, as built.
pub fn template_wasm() -> PathBuf {
    Path::new(partyline::plugins::BUILT).join("partyline_plugin_template.wasm")
}

/// Runs `partyline --json plugins ARGS`; its exit status and the JSON lines it printed.
pub fn plugins(home: &Path, args: &[&str]) -> (bool, Vec<Value>) {
    let out = Command::new(partyline_bin())
        .arg("--home")
        .arg(home)
        .args(["--json", "plugins"])
        .args(args)
        .output()
        .unwrap();
    let lines =
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (out.status.success(), lines)
}

/// Installs the plugin of folder `dir` with component `wasm` into `home`, granting `grant`.
pub fn install(home: &Path, dir: &Path, wasm: &Path, grant: &str) {
    let (ok, out) = plugins(
        home,
        &["install", dir.to_str().unwrap(), "--wasm", wasm.to_str().unwrap(), "--grant", grant],
    );
    assert!(ok, "{out:?}");
}

/// Installs the hostile plugin (built with Partyline) into `home`: it misbehaves in `mode` (see
/// plugins/hostile), asks for `permissions` and is granted `grant`.
pub fn install_hostile(home: &Path, mode: &str, permissions: &[&str], grant: &str) {
    install_hostile_with(home, mode, permissions, grant, &[]);
}

/// [`install_hostile`], with more settings (`url`, `path`) beside its mode.
pub fn install_hostile_with(
    home: &Path,
    mode: &str,
    permissions: &[&str],
    grant: &str,
    config: &[(&str, &str)],
) {
    let dir = tempfile::tempdir().unwrap();
    let asked: Vec<String> = permissions.iter().map(|p| format!("\"{p}\"")).collect();
    let settings: String = config.iter().map(|(k, v)| format!("{k} = {v:?}\n")).collect();
    let api = partyline::plugins::API_VERSION;
    let manifest = format!(
        "id = \"hostile-{mode}\"\nname = \"Hostile ({mode})\"\nversion = \"0.1.0\"\napi = \"{api}\"\n\
         permissions = [{}]\n[config]\nmode = \"{mode}\"\n{settings}",
        asked.join(", ")
    );
    std::fs::write(dir.path().join("plugin.toml"), manifest).unwrap();
    let wasm = Path::new(partyline::plugins::BUILT).join("partyline_plugin_hostile.wasm");
    install(home, dir.path(), &wasm, grant);
}
