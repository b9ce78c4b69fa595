//! Plugins' persistent state, in SQLite (`plugins.db` in the data directory, apart from the
//! node's database): each plugin's key-value storage, and what the user granted each plugin.
//! Each plugin's thread opens its own connection; the plugin host opens one for grants.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::permission::Permission;

/// Per plugin: longest key, largest value, and all its values together.
pub(crate) const MAX_KEY: usize = 256;
pub(crate) const MAX_VALUE: usize = 64 * 1024;
pub(crate) const MAX_TOTAL: i64 = 4 * 1024 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (plugin, key)
);
CREATE TABLE IF NOT EXISTS enabled (
    plugin TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    plugin TEXT NOT NULL,
    permission TEXT NOT NULL,
    PRIMARY KEY (plugin, permission)
);
CREATE TABLE IF NOT EXISTS bundled (
    plugin TEXT PRIMARY KEY,
    version TEXT NOT NULL
);
";

pub(crate) struct PluginDb {
    db: Connection,
}

impl PluginDb {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let db = crate::paths::private_database(path)?;
        db.execute_batch(SCHEMA).context("cannot set up the plugins database")?;
        Ok(Self { db })
    }

    pub(crate) fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .query_row("SELECT value FROM kv WHERE plugin = ?1 AND key = ?2", params![plugin, key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Stores a value, within the per-plugin limits.
    pub(crate) fn set(&mut self, plugin: &str, key: &str, value: &[u8]) -> Result<(), String> {
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(format!("keys are at most {MAX_KEY} bytes and values {MAX_VALUE}"));
        }
        let tx = self.db.transaction().map_err(|e| e.to_string())?;
        let others: i64 = tx
            .query_row(
                "SELECT COALESCE(SUM(LENGTH(value) + LENGTH(key)), 0) FROM kv WHERE plugin = ?1 AND key != ?2",
                params![plugin, key],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())?;
        if others + (key.len() + value.len()) as i64 > MAX_TOTAL {
            return Err(format!("storage full ({} MiB per plugin)", MAX_TOTAL >> 20));
        }
        tx.execute(
            "INSERT INTO kv (plugin, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
            params![plugin, key, value],
        )
        .and_then(|_| tx.commit())
        .map_err(|e| format!("cannot store: {e}"))
    }

    pub(crate) fn delete(&self, plugin: &str, key: &str) -> Result<()> {
        self.db.execute("DELETE FROM kv WHERE plugin = ?1 AND key = ?2", params![plugin, key])?;
        Ok(())
    }

    pub(crate) fn keys(&self, plugin: &str) -> Result<Vec<String>> {
        let mut q = self.db.prepare("SELECT key FROM kv WHERE plugin = ?1 ORDER BY key")?;
        let keys = q.query_map(params![plugin], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(keys)
    }

    pub(crate) fn grants(&self, plugin: &str) -> Result<Vec<Permission>> {
        let mut q = self.db.prepare("SELECT permission FROM grants WHERE plugin = ?1 ORDER BY permission")?;
        let rows: Vec<String> =
            q.query_map(params![plugin], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        // A permission this version no longer knows is simply not granted.
        Ok(rows.iter().filter_map(|p| p.parse().ok()).collect())
    }

    /// Replaces what `plugin` is granted.
    pub(crate) fn set_grants(&mut self, plugin: &str, granted: &[Permission]) -> Result<()> {
        let tx = self.db.transaction()?;
        tx.execute("DELETE FROM grants WHERE plugin = ?1", params![plugin])?;
        for p in granted {
            tx.execute(
                "INSERT OR IGNORE INTO grants (plugin, permission) VALUES (?1, ?2)",
                params![plugin, p.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether `plugin` runs (installed plugins do until disabled).
    pub(crate) fn enabled(&self, plugin: &str) -> Result<bool> {
        let q = "SELECT enabled FROM enabled WHERE plugin = ?1";
        Ok(self.db.query_row(q, params![plugin], |r| r.get(0)).optional()?.unwrap_or(true))
    }

    pub(crate) fn set_enabled(&self, plugin: &str, enabled: bool) -> Result<()> {
        self.db.execute(
            "INSERT INTO enabled (plugin, enabled) VALUES (?1, ?2)
             ON CONFLICT (plugin) DO UPDATE SET enabled = excluded.enabled",
            params![plugin, enabled],
        )?;
        Ok(())
    }

    /// The version of a bundled plugin last installed here (kept when the user removes it, so
    /// that it stays removed).
    pub(crate) fn bundled(&self, plugin: &str) -> Result<Option<String>> {
        let q = "SELECT version FROM bundled WHERE plugin = ?1";
        Ok(self.db.query_row(q, params![plugin], |r| r.get(0)).optional()?)
    }

    pub(crate) fn set_bundled(&self, plugin: &str, version: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO bundled (plugin, version) VALUES (?1, ?2)
             ON CONFLICT (plugin) DO UPDATE SET version = excluded.version",
            params![plugin, version],
        )?;
        Ok(())
    }

    /// Forgets a removed plugin: its storage, grants and state.
    pub(crate) fn forget(&mut self, plugin: &str) -> Result<()> {
        let tx = self.db.transaction()?;
        tx.execute("DELETE FROM kv WHERE plugin = ?1", params![plugin])?;
        tx.execute("DELETE FROM grants WHERE plugin = ?1", params![plugin])?;
        tx.execute("DELETE FROM enabled WHERE plugin = ?1", params![plugin])?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_per_plugin_bounded_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugins.db");
        let mut db = PluginDb::open(&path).unwrap();
        db.set("a", "k", b"one").unwrap();
        db.set("b", "k", b"two").unwrap();
        db.set("a", "k", b"three").unwrap();
        assert!(db.set("a", &"x".repeat(MAX_KEY + 1), b"").is_err());
        assert!(db.set("a", "big", &vec![0; MAX_VALUE + 1]).is_err());
        let chunk = vec![7u8; MAX_VALUE];
        let refused = (0..100).map(|i| db.set("a", &format!("fill{i}"), &chunk)).find_map(Result::err);
        assert!(refused.is_some_and(|e| e.contains("storage full")), "the total is capped");
        drop(db);
        let db = PluginDb::open(&path).unwrap();
        assert_eq!(db.get("a", "k").unwrap().as_deref(), Some(&b"three"[..]));
        assert_eq!(db.get("b", "k").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(db.keys("b").unwrap(), ["k"]);
    }

    #[test]
    fn grants_are_remembered_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = PluginDb::open(&dir.path().join("plugins.db")).unwrap();
        db.set_grants("a", &[Permission::Ui, Permission::Storage]).unwrap();
        assert_eq!(db.grants("a").unwrap(), [Permission::Storage, Permission::Ui]);
        db.set_grants("a", &[Permission::Ui]).unwrap();
        assert_eq!(db.grants("a").unwrap(), [Permission::Ui]);
        db.forget("a").unwrap();
        assert!(db.grants("a").unwrap().is_empty());
    }
}
