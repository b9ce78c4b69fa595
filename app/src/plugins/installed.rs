//! Installed plugins: a folder each under the data directory (`plugin.toml`, `plugin.wasm`),
//! with whether each is enabled and what it was granted in the plugins database. This is what
//! `partyline plugins …` works on, and what the host loads at start.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::db::PluginDb;
use super::manifest::Manifest;
use super::permission::Permission;
use super::runtime::{CompiledCache, Runtime};
use crate::paths::Dirs;

/// One installed plugin as listed.
#[derive(Debug, Clone)]
pub struct InstalledPlugin {
    pub manifest: Manifest,
    pub enabled: bool,
    pub granted: Vec<Permission>,
    pub dir: PathBuf,
}

/// Which of the permissions a plugin asks for to grant.
#[derive(Debug, Clone, PartialEq)]
pub enum Grant {
    All,
    Only(Vec<Permission>),
}

pub struct Installed {
    dir: PathBuf,
    db: PluginDb,
    cache: CompiledCache,
}

impl Installed {
    pub fn open(dirs: &Dirs) -> Result<Self> {
        let dir = dirs.plugins();
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { dir, db: PluginDb::open(&dirs.plugins_database())?, cache: CompiledCache::of(dirs) })
    }

    pub fn list(&self) -> Result<Vec<InstalledPlugin>> {
        let mut plugins = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let dir = entry?.path();
            // Installs under way (staging, the version being replaced) start with a dot.
            if dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            let manifest = match read_manifest(&dir.join("plugin.toml")) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("{}: {e:#}", dir.display());
                    continue;
                }
            };
            let id = manifest.id.clone();
            plugins.push(InstalledPlugin {
                enabled: self.db.enabled(&id)?,
                granted: self.db.grants(&id)?,
                manifest,
                dir,
            });
        }
        plugins.sort_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
        Ok(plugins)
    }

    pub fn get(&self, id: &str) -> Result<InstalledPlugin> {
        self.list()?
            .into_iter()
            .find(|p| p.manifest.id == id)
            .with_context(|| format!("no plugin `{id}` installed"))
    }

    /// Installs the plugin whose `plugin.toml` is `source` (or in folder `source`), with its
    /// component from `wasm` (default: the only `.wasm` file beside the manifest). It is checked
    /// (manifest, API version, that it compiles and links) before anything is copied; a plugin
    /// with the same id is replaced, keeping its storage.
    pub fn install(&mut self, source: &Path, wasm: Option<&Path>, grant: &Grant) -> Result<InstalledPlugin> {
        let toml = if source.is_dir() { source.join("plugin.toml") } else { source.to_owned() };
        let manifest = read_manifest(&toml)?;
        let wasm = match wasm {
            Some(w) => w.to_owned(),
            None => only_wasm_beside(&toml)?,
        };
        let bytes = std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
        Runtime::new(Some(self.cache.clone()))?
            .load(&bytes)
            .with_context(|| format!("plugin `{}` ({})", manifest.id, wasm.display()))?;
        let granted = match grant {
            Grant::All => manifest.permissions.clone(),
            Grant::Only(list) => {
                if let Some(p) = list.iter().find(|p| !manifest.permissions.contains(p)) {
                    bail!("plugin `{}` does not ask for `{p}`", manifest.id);
                }
                list.clone()
            }
        };
        // Into a fresh folder first, then swapped in: a failed copy (a full disk) or rename
        // leaves the installed version as it was.
        let target = self.dir.join(&manifest.id);
        let staging = tempfile::tempdir_in(&self.dir).context("cannot stage the plugin")?;
        std::fs::copy(&toml, staging.path().join("plugin.toml")).context("cannot copy plugin.toml")?;
        std::fs::write(staging.path().join("plugin.wasm"), &bytes).context("cannot copy the component")?;
        if let Some(dir) = toml.parent() {
            copy_assets(&dir.join(ASSETS), &staging.path().join(ASSETS))?;
        }
        let previous = self.dir.join(format!(".{}.previous", manifest.id));
        let _ = std::fs::remove_dir_all(&previous);
        if target.exists() {
            std::fs::rename(&target, &previous)
                .with_context(|| format!("cannot replace {}", target.display()))?;
        }
        if let Err(e) = std::fs::rename(staging.path(), &target) {
            // Put the installed version back.
            let _ = std::fs::rename(&previous, &target);
            return Err(e).context("cannot install the plugin");
        }
        let _ = std::fs::remove_dir_all(&previous);
        self.db.set_grants(&manifest.id, &granted)?;
        self.db.set_enabled(&manifest.id, true)?;
        self.get(&manifest.id)
    }

    /// Installs the plugins that come with Partyline: the first time, with what they ask for
    /// granted, and again when a newer one ships (keeping whether it is enabled). One the user
    /// removed stays removed. Returns what went wrong.
    pub fn ensure_bundled(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for bundled in super::BUNDLED {
            if let Err(e) = self.ensure_one(bundled) {
                problems.push(format!("bundled plugin {}: {e:#}", bundled.id));
            }
        }
        problems
    }

    fn ensure_one(&mut self, bundled: &super::Bundled) -> Result<()> {
        let manifest = Manifest::parse(bundled.manifest)?;
        let installed = self.get(bundled.id).ok();
        let seen = self.db.bundled(bundled.id)?;
        let wanted = match (&installed, &seen) {
            (_, None) => true,
            (Some(i), Some(_)) => i.manifest.version != manifest.version,
            (None, Some(_)) => false,
        };
        if !wanted {
            return Ok(());
        }
        // An update keeps what the user set: its settings, and the hosts those let it reach.
        let mut toml: toml::Table = toml::from_str(bundled.manifest)?;
        if let Some(previous) = &installed {
            for (key, value) in &previous.manifest.config {
                configure(&mut toml, key, value);
            }
        }
        let staging = tempfile::tempdir().context("cannot stage a bundled plugin")?;
        std::fs::write(staging.path().join("plugin.toml"), toml::to_string(&toml)?)?;
        std::fs::write(staging.path().join("plugin.wasm"), bundled.wasm)?;
        if !bundled.assets.is_empty() {
            std::fs::create_dir(staging.path().join(ASSETS))?;
        }
        for (name, bytes) in bundled.assets {
            std::fs::write(staging.path().join(ASSETS).join(name), bytes)?;
        }
        self.install(staging.path(), None, &Grant::All)?;
        let enabled = installed.map_or(bundled.enabled, |previous| previous.enabled);
        self.db.set_enabled(bundled.id, enabled)?;
        self.db.set_bundled(bundled.id, &manifest.version)
    }

    /// Sets `[config]` `key` of an installed plugin (it applies when the plugin starts next). A
    /// URL lets the plugin reach its host: `http:<host>` is added to what it asks for, and
    /// granted, since the user named it.
    pub fn set_config(&mut self, id: &str, key: &str, value: &str) -> Result<InstalledPlugin> {
        let plugin = self.get(id)?;
        let path = plugin.dir.join("plugin.toml");
        let mut toml: toml::Table = toml::from_str(&std::fs::read_to_string(&path)?)?;
        let host = configure(&mut toml, key, value);
        let text = toml::to_string(&toml)?;
        Manifest::parse(&text).context("the plugin would not load with that setting")?;
        let staged = path.with_extension("toml.new");
        std::fs::write(&staged, text).context("cannot write plugin.toml")?;
        std::fs::rename(&staged, &path).context("cannot write plugin.toml")?;
        if let Some(host) = host {
            self.change_grants(id, &[Permission::Http(host)], true)?;
        }
        self.get(id)
    }

    pub fn set_enabled(&self, id: &str, enabled: bool) -> Result<()> {
        self.get(id)?;
        self.db.set_enabled(id, enabled)
    }

    /// Grants (`true`) or revokes permissions the plugin asked for.
    pub fn change_grants(
        &mut self,
        id: &str,
        permissions: &[Permission],
        grant: bool,
    ) -> Result<Vec<Permission>> {
        let plugin = self.get(id)?;
        let mut granted = plugin.granted;
        for p in permissions {
            if grant && !plugin.manifest.permissions.contains(p) {
                bail!("plugin `{id}` does not ask for `{p}`");
            }
            granted.retain(|g| g != p);
            if grant {
                granted.push(p.clone());
            }
        }
        self.db.set_grants(id, &granted)?;
        self.db.grants(id)
    }

    /// Removes the plugin and forgets its storage and grants.
    pub fn remove(&mut self, id: &str) -> Result<()> {
        let plugin = self.get(id)?;
        std::fs::remove_dir_all(&plugin.dir)
            .with_context(|| format!("cannot remove {}", plugin.dir.display()))?;
        self.db.forget(id)
    }
}

/// Sets `[config]` `key` in a manifest's TOML; for a URL, adds `http:<its host>` to the
/// permissions and returns the host.
fn configure(toml: &mut toml::Table, key: &str, value: &str) -> Option<String> {
    let config = toml.entry("config").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(config) = config.as_table_mut() {
        config.insert(key.to_owned(), toml::Value::String(value.to_owned()));
    }
    let (host, _) = super::host_api::url_target(value)?;
    let permission = format!("http:{host}");
    let permissions = toml.entry("permissions").or_insert_with(|| toml::Value::Array(Vec::new()));
    if let Some(list) = permissions.as_array_mut()
        && !list.iter().any(|p| p.as_str() == Some(permission.as_str()))
    {
        list.push(toml::Value::String(permission));
    }
    Some(host)
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Manifest::parse(&text).with_context(|| path.display().to_string())
}

fn only_wasm_beside(toml: &Path) -> Result<PathBuf> {
    let dir = toml.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let wasm: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    match wasm.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no .wasm file beside {}; say which with --wasm", toml.display()),
        _ => bail!("several .wasm files beside {}; say which with --wasm", toml.display()),
    }
}

/// The folder of files a plugin serves (the companion page), beside its `plugin.toml`.
pub(crate) const ASSETS: &str = "assets";
const MAX_ASSETS: usize = 64;
const MAX_ASSET_BYTES: u64 = 4 << 20;

/// Copies a plugin's `assets/` (when it has one): plain files only, at most [`MAX_ASSETS`] of
/// them and [`MAX_ASSET_BYTES`] in all; anything else refuses the install, saying what.
fn copy_assets(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    std::fs::create_dir(to).context("cannot copy the assets")?;
    let (mut count, mut bytes) = (0, 0);
    for entry in entries {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        let name = entry.file_name();
        anyhow::ensure!(meta.is_file(), "assets/{}: only plain files can be assets", name.to_string_lossy());
        count += 1;
        bytes += meta.len();
        anyhow::ensure!(
            count <= MAX_ASSETS && bytes <= MAX_ASSET_BYTES,
            "a plugin's assets are at most {MAX_ASSETS} files and {} MiB",
            MAX_ASSET_BYTES >> 20
        );
        std::fs::copy(entry.path(), to.join(&name)).context("cannot copy the assets")?;
    }
    Ok(())
}
