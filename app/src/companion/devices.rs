//! The paired devices, in SQLite (`companion.sqlite3` in the data directory): a name, the hash of
//! the device's credential (never the credential), when it was paired and last used. A
//! credential is 32 random bytes, so one SHA-256 of it is as good as a slow password hash; a
//! copy of the database lets no one in. Revoking a device deletes its row: its credential stops
//! working at once (the gateway closes its connections).

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// Devices paired at most: pairing another asks the user to revoke one first.
pub const MAX_DEVICES: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY,
    credential_hash BLOB NOT NULL UNIQUE,
    paired_ms INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL
);
";

/// A paired device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub paired_ms: u64,
    pub last_used_ms: u64,
}

pub struct Devices {
    db: Connection,
}

/// The stored form of a credential.
pub fn hash(credential: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, credential.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl Devices {
    pub fn open(path: &Path) -> Result<Self> {
        let db = crate::paths::private_database(path)?;
        db.execute_batch(SCHEMA).context("cannot set up the companion database")?;
        Ok(Self { db })
    }

    /// Pairs a device under `name` (made unique: "Pixel (2)"); the name it got.
    pub fn add(&mut self, name: &str, credential_hash: &[u8; 32], now_ms: u64) -> Result<String> {
        let list = self.list()?;
        anyhow::ensure!(
            list.len() < MAX_DEVICES,
            "{MAX_DEVICES} devices are paired already: revoke one first (/devices, /revoke-device NAME)"
        );
        let taken = |n: &str| list.iter().any(|d| d.name.eq_ignore_ascii_case(n));
        let name = (1..).map(|i| if i == 1 { name.to_owned() } else { format!("{name} ({i})") });
        let name = name.into_iter().find(|n| !taken(n)).expect("a free name");
        self.db.execute(
            "INSERT INTO devices (name, credential_hash, paired_ms, last_used_ms) VALUES (?1, ?2, ?3, ?3)",
            params![name, &credential_hash[..], now_ms as i64],
        )?;
        Ok(name)
    }

    /// The device this credential belongs to, its last use set to now; `None`: not paired (or
    /// revoked).
    pub fn check(&mut self, credential: &str, now_ms: u64) -> Result<Option<Device>> {
        let h = hash(credential);
        let name: Option<String> = self
            .db
            .query_row("SELECT name FROM devices WHERE credential_hash = ?1", params![&h[..]], |r| r.get(0))
            .optional()?;
        let Some(name) = name else { return Ok(None) };
        self.db
            .execute("UPDATE devices SET last_used_ms = ?1 WHERE name = ?2", params![now_ms as i64, name])?;
        Ok(self.list()?.into_iter().find(|d| d.name == name))
    }

    /// Paired devices, the most recently used first.
    pub fn list(&self) -> Result<Vec<Device>> {
        let mut q = self
            .db
            .prepare("SELECT name, paired_ms, last_used_ms FROM devices ORDER BY last_used_ms DESC")?;
        let rows = q.query_map([], |r| {
            Ok(Device {
                name: r.get(0)?,
                paired_ms: r.get::<_, i64>(1)? as u64,
                last_used_ms: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Revokes the device called `name` (ignoring case); false if there is none.
    pub fn revoke(&mut self, name: &str) -> Result<bool> {
        Ok(self.db.execute("DELETE FROM devices WHERE name = ?1 COLLATE NOCASE", params![name])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_checked_by_credential_renamed_when_taken_capped_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("companion.sqlite3");
        let mut devices = Devices::open(&path).unwrap();
        assert_eq!(devices.add("Pixel", &hash("secret-1"), 10).unwrap(), "Pixel");
        assert_eq!(devices.add("pixel", &hash("secret-2"), 20).unwrap(), "pixel (2)");
        assert_eq!(
            devices.check("secret-1", 30).unwrap().map(|d| (d.name, d.last_used_ms)),
            Some(("Pixel".into(), 30))
        );
        assert_eq!(devices.check("secret-3", 30).unwrap(), None);
        // What is stored is the hash only.
        let raw = std::fs::read(&path).unwrap_or_default();
        let wal = std::fs::read(dir.path().join("companion.sqlite3-wal")).unwrap_or_default();
        assert!(![raw, wal].iter().any(|b| b.windows(8).any(|w| w == b"secret-1")));
        // Still paired after the desktop restarts.
        drop(devices);
        let mut devices = Devices::open(&path).unwrap();
        assert!(devices.check("secret-2", 40).unwrap().is_some());
        assert_eq!(devices.list().unwrap()[0].name, "pixel (2)", "most recently used first");
        assert!(devices.revoke("PIXEL").unwrap());
        assert_eq!(devices.check("secret-1", 50).unwrap(), None, "revoked at once");
        assert!(!devices.revoke("Pixel").unwrap());
        for i in 0..MAX_DEVICES - 1 {
            devices.add(&format!("d{i}"), &hash(&format!("c{i}")), 60).unwrap();
        }
        let e = devices.add("one too many", &hash("x"), 70).unwrap_err().to_string();
        assert!(e.contains("revoke one first"), "{e}");
    }
}
