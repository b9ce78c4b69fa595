//! The WebAssembly engine every plugin shares: compiling components (cached on disk, keyed by
//! the engine's compatibility hash and the plugin's hash), checking which plugin API a component
//! was built against, and the clock that stops runaway calls (epoch interruption).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::{Plugin, PluginPre};
use super::host_api::HostState;
use super::manifest::check_api;

/// The clock ticks this often; a call may run [`DEADLINE_TICKS`] ticks (100 ms).
pub(crate) const TICK: Duration = Duration::from_millis(5);
pub(crate) const DEADLINE_TICKS: u64 = 20;
/// Native stack wasm code may use; plugin threads get [`THREAD_STACK`].
const MAX_WASM_STACK: usize = 1 << 20;
pub(crate) const THREAD_STACK: usize = 8 << 20;
/// The package plugins import and export, whose version is the plugin API's.
const PACKAGE: &str = "partyline:plugin/";

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<PathBuf>,
}

/// A plugin ready to instantiate, and whether it came from the cache.
pub struct Loaded {
    pub(crate) pre: PluginPre<HostState>,
    pub cached: bool,
}

impl Runtime {
    /// `cache`: where compiled plugins are kept (`None`: compile every time).
    pub fn new(cache: Option<PathBuf>) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true).max_wasm_stack(MAX_WASM_STACK);
        let engine = Engine::new(&config).map_err(|e| anyhow!("cannot start WebAssembly: {e}"))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("partyline-wasm-clock".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .context("cannot start the plugin clock")?;
        let mut linker = Linker::new(&engine);
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        Ok(Self { engine, linker, cache })
    }

    /// Compiles (or takes from the cache) and links a plugin's component.
    pub fn load(&self, wasm: &[u8]) -> Result<Loaded> {
        let (component, cached) = self.compile(wasm)?;
        check_api_versions(component_names(&self.engine, &component))?;
        let mut linker = self.linker.clone();
        // Plugins get no WASI: what else they import (the Rust standard library imports some)
        // traps when called.
        linker.define_unknown_imports_as_traps(&component)?;
        let pre = PluginPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Loaded { pre, cached })
    }

    fn cache_file(&self, wasm: &[u8]) -> Option<PathBuf> {
        let dir = self.cache.as_ref()?;
        let mut engine = std::hash::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut engine);
        let key = blake3::Hasher::new().update(&engine.finish().to_le_bytes()).update(wasm).finalize();
        Some(dir.join(format!("{}.cwasm", key.to_hex())))
    }

    fn compile(&self, wasm: &[u8]) -> Result<(Component, bool)> {
        let file = self.cache_file(wasm);
        if let Some(file) = file.as_ref().filter(|f| f.exists()) {
            // SAFETY: the file was written below, from `Component::serialize` of an engine with
            // the same compatibility hash (it is in the name), into the user's own cache
            // directory; `deserialize_file` also checks the engine and version it was made by.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(&self.engine, file) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!("compiled plugin {} unusable ({e}); compiling again", file.display())
                }
            }
        }
        let component =
            Component::new(&self.engine, wasm).map_err(|e| anyhow!("not a valid plugin: {e:#}"))?;
        if let Some(file) = &file
            && let Err(e) =
                component.serialize().map_err(|e| anyhow!("{e}")).and_then(|b| write_atomically(file, &b))
        {
            // A full disk costs the next start a compile, nothing more.
            tracing::warn!("cannot cache the compiled plugin: {e:#}");
        }
        Ok((component, false))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("no cache directory")?;
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), bytes)?;
    tmp.persist(path)?;
    Ok(())
}

/// The names a component imports and exports.
fn component_names(engine: &Engine, component: &Component) -> Vec<(bool, String)> {
    let ty = component.component_type();
    let imports = ty.imports(engine).map(|(name, _)| (true, name.to_owned()));
    imports.chain(ty.exports(engine).map(|(name, _)| (false, name.to_owned()))).collect()
}

/// Refuses a component that imports or exports the plugin API at an incompatible version, or
/// does not export the plugin interface at all, saying which.
fn check_api_versions(names: Vec<(bool, String)>) -> Result<()> {
    let mut exports_guest = false;
    for (import, name) in &names {
        let Some(rest) = name.strip_prefix(PACKAGE) else { continue };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        check_api(version)
            .with_context(|| format!("it {} `{name}`", if *import { "imports" } else { "exports" }))?;
        exports_guest |= !import && interface == "guest";
    }
    anyhow::ensure!(exports_guest, "it does not export `{PACKAGE}guest`: not a Partyline plugin");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(bool, &str)]) -> Vec<(bool, String)> {
        list.iter().map(|(i, n)| (*i, (*n).to_owned())).collect()
    }

    #[test]
    fn components_on_another_api_version_are_refused_with_the_reason() {
        let ok = [
            (true, "partyline:plugin/party@0.2.0"),
            (true, "wasi:cli/environment@0.2.0"),
            (false, "partyline:plugin/guest@0.2.3"),
        ];
        assert!(check_api_versions(names(&ok)).is_ok());
        let newer = [(true, "partyline:plugin/party@0.3.0"), (false, "partyline:plugin/guest@0.3.0")];
        let e = format!("{:#}", check_api_versions(names(&newer)).unwrap_err());
        assert!(e.contains("imports `partyline:plugin/party@0.3.0`") && e.contains("provides 0.2.0"), "{e}");
        let e = format!(
            "{:#}",
            check_api_versions(names(&[(true, "partyline:plugin/party@0.2.0")])).unwrap_err()
        );
        assert!(e.contains("not a Partyline plugin"), "{e}");
    }
}
