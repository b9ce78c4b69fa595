//! Where Partyline keeps its files: the platform's config, data and cache directories (through
//! `directories`), or three folders under one `--home` directory, which is how tests and bots run
//! several independent nodes on one machine.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(Clone, Debug)]
pub struct Dirs {
    pub config: PathBuf,
    pub data: PathBuf,
    pub cache: PathBuf,
}

impl Dirs {
    /// `home` wins; otherwise `PARTYLINE_HOME`; otherwise the platform's directories.
    pub fn resolve(home: Option<&Path>) -> Result<Self> {
        if let Some(home) = home {
            return Ok(Self::under(home));
        }
        if let Some(home) = std::env::var_os("PARTYLINE_HOME").filter(|h| !h.is_empty()) {
            return Ok(Self::under(Path::new(&home)));
        }
        let dirs = directories::ProjectDirs::from("org", "Partyline", "partyline")
            .context("cannot find a home directory for Partyline's files; pass --home DIR")?;
        Ok(Self {
            config: dirs.config_dir().to_path_buf(),
            data: dirs.data_dir().to_path_buf(),
            cache: dirs.cache_dir().to_path_buf(),
        })
    }

    pub fn under(home: &Path) -> Self {
        Self { config: home.join("config"), data: home.join("data"), cache: home.join("cache") }
    }

    /// Creates the three folders, private to this user (0700): they hold the node's key, the
    /// local socket, chat history and what members sent.
    pub fn create(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for dir in [&self.config, &self.data, &self.cache] {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private", dir.display()))?;
        }
        Ok(())
    }

    pub fn settings_file(&self) -> PathBuf {
        self.config.join("settings.toml")
    }

    /// Where the running Partyline listens for links and commands from other invocations.
    pub fn socket(&self) -> PathBuf {
        self.data.join("partyline.sock")
    }

    pub fn database(&self) -> PathBuf {
        self.data.join("partyline.sqlite3")
    }

    /// Installed plugins, a folder each (`plugin.toml`, `plugin.wasm`).
    pub fn plugins(&self) -> PathBuf {
        self.data.join("plugins")
    }

    /// Plugins' storage and grants.
    pub fn plugins_database(&self) -> PathBuf {
        self.data.join("plugins.sqlite3")
    }

    /// The devices paired as companions (phones, handhelds).
    pub fn companion_database(&self) -> PathBuf {
        self.data.join("companion.sqlite3")
    }

    /// Downloads under way and finished ones not yet placed, and what is known of them.
    pub fn transfers(&self) -> PathBuf {
        self.data.join("transfers")
    }

    /// Games downloaded from members (the game store's library).
    pub fn library(&self) -> PathBuf {
        self.data.join("library")
    }

    /// Files members sent.
    pub fn downloads(&self) -> PathBuf {
        self.data.join("downloads")
    }

    /// Compiled plugins (rebuilt when missing).
    pub fn plugins_cache(&self) -> PathBuf {
        self.cache.join("plugins")
    }

    /// The key compiled plugins are signed with: in the data folder, not beside them.
    pub fn plugins_cache_key(&self) -> PathBuf {
        self.data.join("plugins-cache.key")
    }
}

/// Makes `path` (created if missing) readable and writable by this user only (0600), before a
/// database is opened on it; SQLite gives its journal files the same mode.
/// A SQLite database only this user can read, opened for the node's use: write-ahead log, and a
/// wait of up to 5 s when another connection holds it.
pub fn private_database(path: &Path) -> Result<rusqlite::Connection> {
    private_file(path)?;
    let db = rusqlite::Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    Ok(db)
}

pub fn private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))
}
