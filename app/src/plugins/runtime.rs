//! The WebAssembly engine every plugin shares: compiling components (cached on disk, keyed by
//! the engine's compatibility hash and the plugin's hash, and signed with a key kept in the data
//! folder so that no compiled code is loaded that this Partyline did not write), checking which
//! plugin API a component was built against, and the clock that stops runaway calls (epoch
//! interruption).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::{Plugin, PluginPre};
use super::budget::TICK;
use super::host_api::HostState;
use super::manifest::check_api;

/// Native stack wasm code may use; plugin threads get [`THREAD_STACK`].
const MAX_WASM_STACK: usize = 1 << 20;
pub(crate) const THREAD_STACK: usize = 8 << 20;
/// The package plugins import and export, whose version is the plugin API's.
const PACKAGE: &str = "partyline:plugin/";

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<Keyed>,
}

/// Where compiled plugins are kept, and the file of the key that signs them (outside the cache
/// folder: whoever can write there cannot sign).
#[derive(Clone, Debug)]
pub struct CompiledCache {
    pub dir: PathBuf,
    pub key: PathBuf,
}

impl CompiledCache {
    /// The cache of a Partyline using `dirs`.
    pub fn of(dirs: &crate::paths::Dirs) -> Self {
        Self { dir: dirs.plugins_cache(), key: dirs.plugins_cache_key() }
    }
}

struct Keyed {
    dir: PathBuf,
    key: [u8; 32],
}

/// The cache's key, made on first use (a private file).
fn cache_key(file: &Path) -> Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(file)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::paths::private_file(file)?;
    std::fs::write(file, key).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(key)
}

/// A plugin ready to instantiate, and whether it came from the cache.
pub struct Loaded {
    pub(crate) pre: PluginPre<HostState>,
    pub cached: bool,
}

impl Runtime {
    /// `cache`: where compiled plugins are kept (`None`: compile every time).
    pub fn new(cache: Option<CompiledCache>) -> Result<Self> {
        let cache = cache.and_then(|c| match cache_key(&c.key) {
            Ok(key) => Some(Keyed { dir: c.dir, key }),
            Err(e) => {
                tracing::warn!("compiled plugins are not cached: {e:#}");
                None
            }
        });
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
        stub_foreign_imports(&self.engine, &mut linker, &component)?;
        let pre = PluginPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Loaded { pre, cached })
    }

    /// The cache file for `wasm`, and the key name it is signed under.
    fn cache_file(&self, wasm: &[u8]) -> Option<(PathBuf, blake3::Hash)> {
        let cache = self.cache.as_ref()?;
        let mut engine = std::hash::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut engine);
        let name = blake3::Hasher::new().update(&engine.finish().to_le_bytes()).update(wasm).finalize();
        Some((cache.dir.join(format!("{}.cwasm", name.to_hex())), name))
    }

    /// The signature of compiled `bytes` cached under `name`: a keyed hash of both, so a file
    /// moved from another name, or written by anyone without the key, does not pass.
    fn signature(&self, name: &blake3::Hash, bytes: &[u8]) -> Option<blake3::Hash> {
        let key = &self.cache.as_ref()?.key;
        Some(blake3::Hasher::new_keyed(key).update(name.as_bytes()).update(bytes).finalize())
    }

    /// A compiled component from the cache, if its signature holds.
    fn cached(&self, file: &Path, name: &blake3::Hash) -> Result<Component> {
        let signed = std::fs::read(file)?;
        let (signature, bytes) = signed.split_at_checked(blake3::OUT_LEN).context("too short")?;
        // `Hash`'s comparison takes the same time wherever the bytes differ.
        if self.signature(name, bytes) != Some(blake3::Hash::from_slice(signature)?) {
            anyhow::bail!("not signed by this Partyline's key");
        }
        // SAFETY: the bytes are signed with this user's key (kept in the private data folder)
        // over the name that holds the engine's compatibility hash, so they were written below
        // from `Component::serialize` of a compatible engine; `deserialize` also checks the
        // engine and version they were made by.
        #[allow(unsafe_code)]
        unsafe { Component::deserialize(&self.engine, bytes) }.map_err(|e| anyhow!("{e}"))
    }

    fn compile(&self, wasm: &[u8]) -> Result<(Component, bool)> {
        let file = self.cache_file(wasm);
        if let Some((file, name)) = file.as_ref().filter(|(f, _)| f.exists()) {
            match self.cached(file, name) {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!("compiled plugin {} unusable ({e:#}); compiling again", file.display())
                }
            }
        }
        let component =
            Component::new(&self.engine, wasm).map_err(|e| anyhow!("not a valid plugin: {e:#}"))?;
        if let Some((file, name)) = &file
            && let Err(e) = component.serialize().map_err(|e| anyhow!("{e}")).and_then(|bytes| {
                let signature = self.signature(name, &bytes).context("no key")?;
                write_atomically(file, &[signature.as_bytes(), &bytes[..]].concat())
            })
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

/// Plugins get no WASI: what they import besides the plugin API (the Rust standard library
/// imports some) traps when called. Wasmtime's `define_unknown_imports_as_traps` would stub the
/// plugin API too when a plugin imports an older patch of it (0.3.0 of a 0.3.1 host), shadowing
/// the host's own functions, which the linker matches to it by semver.
fn stub_foreign_imports(
    engine: &Engine,
    linker: &mut Linker<HostState>,
    component: &Component,
) -> Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else { continue };
        if name.starts_with(PACKAGE) {
            continue;
        }
        let mut stub = linker.instance(name)?;
        for (export, item) in instance.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let what = format!("{name}#{export}");
                    stub.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!("`{what}` is not available to plugins")
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stub.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?
                }
                _ => {}
            }
        }
    }
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
            (true, "partyline:plugin/party@0.3.0"),
            (true, "wasi:cli/environment@0.2.0"),
            (false, "partyline:plugin/guest@0.3.0"),
        ];
        assert!(check_api_versions(names(&ok)).is_ok());
        let newer = [(true, "partyline:plugin/party@0.4.0"), (false, "partyline:plugin/guest@0.4.0")];
        let e = format!("{:#}", check_api_versions(names(&newer)).unwrap_err());
        assert!(e.contains("imports `partyline:plugin/party@0.4.0`") && e.contains("provides 0.3.0"), "{e}");
        let e = format!(
            "{:#}",
            check_api_versions(names(&[(true, "partyline:plugin/party@0.3.0")])).unwrap_err()
        );
        assert!(e.contains("not a Partyline plugin"), "{e}");
    }
}
