//! Builds the plugins in `plugins/` (WebAssembly components) for `wasm32-wasip2`, with a cargo of
//! their own and a target directory of their own beside this build's (a nested cargo on this
//! build's target directory would wait for its lock forever). The host finds them through
//! `PARTYLINE_PLUGINS_BUILT`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin crates whose components are kept (file stems of the `.wasm` files).
const BUILT: [&str; 5] = [
    "partyline_plugin_template",
    "partyline_plugin_hostile",
    "partyline_plugin_game_store",
    "partyline_plugin_file_transfer",
    "partyline_plugin_companion",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let plugins = manifest_dir.join("../plugins");
    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        "wit",
        "sdk",
        "template",
        "hostile",
        "game-store",
        "file-transfer",
        "companion",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
    let target = out.ancestors().nth(4).unwrap_or(&out).join("plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // This build's flags are for the host, not for wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cannot run cargo to build the plugins");
    assert!(
        status.success(),
        "building the plugins failed (scripts/setup.sh installs the wasm32-wasip2 target: \
         `rustup target add wasm32-wasip2`)"
    );
    let built = target.join("wasm32-wasip2/release");
    for name in BUILT {
        copy(&built.join(format!("{name}.wasm")), &out.join(format!("{name}.wasm")));
    }
    println!("cargo:rustc-env=PARTYLINE_PLUGINS_BUILT={}", out.display());
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}
