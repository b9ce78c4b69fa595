//! Plugins: WebAssembly components run sandboxed by wasmtime, speaking the WIT API of
//! `plugins/wit` (`partyline:plugin`). Each plugin has its own store (memory and table limits, a
//! deadline per call), its own thread and a bounded queue of events; it reaches the rest of
//! Partyline only through host functions, each behind one permission the user granted.
//!
//! - `manifest`, `permission`: `plugin.toml`, and what a plugin may ask for;
//! - `runtime`: the shared engine, the compiled-plugin cache, API version checks, the clock;
//! - `sandbox`: one plugin's store and calls, stopping it when it misbehaves; `budget`: a call's
//!   time (CPU time of its thread, so a busy machine does not stop plugins);
//! - `host_api`: what each host function does (checks, limits, outputs); `fetch`: their HTTP;
//!   `blobs`: sharing and downloading through the transfer engine;
//! - `thread`: the plugin's thread, queue and timers;
//! - `host`: the running plugins of a session, events in, outputs out;
//! - `installed`: the installed plugins (`partyline plugins …`);
//! - `bench`: what the plugin benchmark measures;
//! - `db`: plugins' storage, grants and enabled state in SQLite.

pub mod bench;
mod blob_access;
mod blobs;
mod budget;
mod companion_act;
mod companion_api;
mod db;
mod fetch;
mod host;
mod host_api;
mod installed;
mod limits;
pub mod manifest;
mod panel;
pub mod permission;
mod runtime;
mod sandbox;
mod thread;

#[cfg(test)]
mod tests;

/// The host side of the WIT API, generated.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({ path: "../plugins/wit", world: "plugin", additional_derives: [PartialEq] });
}

pub use companion_act::CompanionAct;
pub use host::PluginHost;
pub use host_api::{Counters, PluginOut};
pub use installed::{Grant, Installed, InstalledPlugin};
pub use manifest::{API_VERSION, Manifest};
pub use permission::Permission;
pub use runtime::{CompiledCache, Loaded, Runtime};
pub use sandbox::CallError;
pub use thread::Status;

/// Where the plugins built with Partyline (`plugins/`) are, as `<crate name>.wasm`.
pub const BUILT: &str = env!("PARTYLINE_PLUGINS_BUILT");

/// A plugin that comes with Partyline, inside its binary.
pub struct Bundled {
    pub id: &'static str,
    pub manifest: &'static str,
    pub wasm: &'static [u8],
    /// Files of its `assets/` folder: name, content.
    pub assets: &'static [(&'static str, &'static [u8])],
    /// Whether it runs from the first start; otherwise the user turns it on.
    pub enabled: bool,
}

macro_rules! companion_asset {
    ($name:literal) => {
        ($name, include_bytes!(concat!("../../../plugins/companion/assets/", $name)))
    };
}

/// The game store and file transfer; the companion (off until the user turns it on: it serves
/// the companion page on the local network).
pub const BUNDLED: &[Bundled] = &[
    Bundled {
        id: "game-store",
        manifest: include_str!("../../../plugins/game-store/plugin.toml"),
        wasm: include_bytes!(concat!(env!("PARTYLINE_PLUGINS_BUILT"), "/partyline_plugin_game_store.wasm")),
        assets: &[],
        enabled: true,
    },
    Bundled {
        id: "file-transfer",
        manifest: include_str!("../../../plugins/file-transfer/plugin.toml"),
        wasm: include_bytes!(concat!(
            env!("PARTYLINE_PLUGINS_BUILT"),
            "/partyline_plugin_file_transfer.wasm"
        )),
        assets: &[],
        enabled: true,
    },
    Bundled {
        id: "companion",
        manifest: include_str!("../../../plugins/companion/plugin.toml"),
        wasm: include_bytes!(concat!(env!("PARTYLINE_PLUGINS_BUILT"), "/partyline_plugin_companion.wasm")),
        assets: &[
            companion_asset!("index.html"),
            companion_asset!("app.js"),
            companion_asset!("remote.js"),
            companion_asset!("panels.js"),
            companion_asset!("headset.js"),
            companion_asset!("worklet.js"),
            companion_asset!("style.css"),
        ],
        enabled: false,
    },
];
