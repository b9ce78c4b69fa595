//! What the plugin benchmark measures (tests/benches/plugins.rs), on the real host: loading a
//! plugin without and with the compiled-component cache, delivering one event, and how long
//! after its deadline a runaway call is stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::mpsc;

use super::bindings::partyline::plugin::types::Event;
use super::budget::{DEADLINE_TICKS, TICK};
use super::host_api::HostState;
use super::runtime::{CompiledCache, Runtime};
use super::sandbox::{CallError, Sandbox};
use super::{Permission, PluginOut};

/// A plugin started from `wasm` with `config`: compiled or taken from `cache`, linked,
/// instantiated and its `init` run.
fn started(
    runtime: &Runtime,
    wasm: &[u8],
    config: &[(&str, &str)],
    grants: &[Permission],
) -> Result<(Sandbox, mpsc::Receiver<PluginOut>)> {
    let loaded = runtime.load(wasm)?;
    let (tx, rx) = mpsc::channel(1024);
    let config = config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let (sandbox, init) = Sandbox::start(loaded.pre, HostState::new("bench", grants, None, tx), config);
    if let Err(CallError::Stopped(why)) = init {
        bail!("the plugin stopped in init: {why}");
    }
    Ok((sandbox, rx))
}

/// From nothing to a started plugin: `(cold, warm)`, without and with the cache in `cache`
/// (a fresh engine each time, as a new Partyline process has).
pub fn load(wasm: &[u8], config: &[(&str, &str)], cache: &Path) -> Result<(Duration, Duration)> {
    let _ = std::fs::remove_dir_all(cache);
    let mut times = Vec::new();
    for _ in 0..2 {
        let at = Instant::now();
        let runtime =
            Runtime::new(Some(CompiledCache { dir: cache.to_owned(), key: cache.with_extension("key") }))?;
        started(&runtime, wasm, config, &[])?;
        times.push(at.elapsed());
    }
    Ok((times[0], times[1]))
}

/// The time one event takes to go into a plugin whose handler does nothing with it, and back.
pub fn event_cost(wasm: &[u8], config: &[(&str, &str)], events: u32) -> Result<Duration> {
    let runtime = Runtime::new(None)?;
    let (mut sandbox, _out) = started(&runtime, wasm, config, &[])?;
    let event = Event::Timer(7);
    for _ in 0..100 {
        let _ = sandbox.handle(&event);
    }
    let at = Instant::now();
    for _ in 0..events {
        if let Err(CallError::Stopped(why)) = sandbox.handle(&event) {
            bail!("stopped: {why}");
        }
    }
    Ok(at.elapsed() / events)
}

/// How long after its deadline a call that never returns is stopped (the hostile plugin in
/// `loop` mode), once per run.
pub fn overrun(wasm: &[u8], runs: usize) -> Result<Vec<Duration>> {
    let runtime = Runtime::new(None)?;
    let deadline = TICK * DEADLINE_TICKS as u32;
    let mut overruns = Vec::new();
    for _ in 0..runs {
        let (mut sandbox, _out) = started(&runtime, wasm, &[("mode", "loop")], &[])?;
        let at = Instant::now();
        match sandbox.handle(&Event::Left) {
            Err(CallError::Stopped(_)) => overruns.push(at.elapsed().saturating_sub(deadline)),
            other => bail!("the runaway call ended otherwise: {other:?}"),
        }
    }
    Ok(overruns)
}
