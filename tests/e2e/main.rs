//! Partyline's integration tests: one binary, one module per area.
//!
//! Multi-process tests run the real `partyline` binary on loopback (or in network namespaces) and
//! read its `--json` events; in-process tests drive `partyline::Node` directly.

mod companion;
mod companion_headset;
mod companion_remote;
mod consent;
mod crowd;
mod devices;
mod hostile;
mod inprocess;
mod local;
mod overlay;
mod plugins;
mod poisoning;
mod processes;
mod rejection;
mod relay;
mod relay_abuse;
mod transfers;
mod voice;
mod wire;
