//! Persistent state in one SQLite database in the data directory: this node's key, the parties it
//! owns (invites, their uses, revocations, bans), and chat history. The party engine owns the one
//! [`Store`]; nothing else opens the database.

mod admission;
mod chat;
mod party;

use std::path::Path;

use anyhow::{Context, Result};
use libp2p::identity::Keypair;
use rusqlite::{Connection, OptionalExtension, params};

pub struct Store {
    db: Connection,
}

/// Bumped with every change to [`SCHEMA`]; older databases are migrated in [`Store::migrate`].
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE identity (
    id INTEGER PRIMARY KEY CHECK (id IN (1, 2)), -- 1: the party node, 2: the relay
    keypair BLOB NOT NULL
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE owned_parties (
    party_id BLOB PRIMARY KEY,
    salt BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE TABLE invites (
    party_id BLOB NOT NULL,
    invite_id BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    max_uses INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (party_id, invite_id)
);
CREATE TABLE invite_uses (
    party_id BLOB NOT NULL,
    invite_id BLOB NOT NULL,
    peer BLOB NOT NULL,
    PRIMARY KEY (party_id, invite_id, peer)
);
CREATE TABLE bans (
    party_id BLOB NOT NULL,
    peer BLOB NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (party_id, peer)
);
CREATE TABLE memberships (
    party_id BLOB PRIMARY KEY,
    link TEXT NOT NULL
);
CREATE TABLE chat (
    party_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    peer BLOB NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    nonce INTEGER NOT NULL,
    PRIMARY KEY (party_id, seq)
) WITHOUT ROWID;
";

/// Schema 2: who was kicked, by the invites they had joined with.
const KICKS: &str = "
CREATE TABLE kicks (
    party_id BLOB NOT NULL,
    invite_id BLOB NOT NULL,
    peer BLOB NOT NULL,
    PRIMARY KEY (party_id, invite_id, peer)
);
";

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        // The database holds the node's private key.
        crate::paths::private_file(path)?;
        let db =
            Connection::open(path).with_context(|| format!("cannot open database {}", path.display()))?;
        Self::init(db).with_context(|| format!("cannot use database {}", path.display()))
    }

    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Self> {
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Self { db };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self.db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                let tx = self.db.transaction()?;
                tx.execute_batch(SCHEMA)?;
                tx.execute_batch(KICKS)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
                Ok(())
            }
            1 => {
                // Schema 2 adds kicks.
                let tx = self.db.transaction()?;
                tx.execute_batch(KICKS)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
                Ok(())
            }
            SCHEMA_VERSION => Ok(()),
            newer => anyhow::bail!(
                "the database was written by a newer Partyline (schema {newer}, this one knows {SCHEMA_VERSION})"
            ),
        }
    }

    /// This node's libp2p identity, created on first use.
    pub fn keypair(&self) -> Result<Keypair> {
        self.identity(1)
    }

    /// The identity `partyline relay` runs with: its own, so a relay and a party node can share a
    /// home directory.
    pub fn relay_keypair(&self) -> Result<Keypair> {
        self.identity(2)
    }

    /// A small remembered number, such as the port this node listened on last time.
    pub fn meta(&self, key: &str) -> Result<Option<i64>> {
        Ok(self.db.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    pub fn set_meta(&self, key: &str, value: i64) -> Result<()> {
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![key, value])?;
        Ok(())
    }

    fn identity(&self, slot: i64) -> Result<Keypair> {
        let stored: Option<Vec<u8>> = self
            .db
            .query_row("SELECT keypair FROM identity WHERE id = ?1", [slot], |r| r.get(0))
            .optional()?;
        if let Some(bytes) = stored {
            return Keypair::from_protobuf_encoding(&bytes).context("the stored identity key is corrupt");
        }
        let key = Keypair::generate_ed25519();
        self.db.execute(
            "INSERT INTO identity (id, keypair) VALUES (?1, ?2)",
            params![slot, key.to_protobuf_encoding().expect("ed25519 keys encode")],
        )?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let first = Store::open(&path).unwrap().keypair().unwrap().public();
        let again = Store::open(&path).unwrap().keypair().unwrap().public();
        assert_eq!(first, again);
        let relay = Store::open(&path).unwrap().relay_keypair().unwrap().public();
        assert_ne!(relay, first, "the relay has its own identity");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "database readable by others: {mode:o}");
        }
    }

    #[test]
    fn a_schema_1_database_gains_kicks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let db = Connection::open(&path).unwrap();
        db.execute_batch(SCHEMA).unwrap();
        db.pragma_update(None, "user_version", 1).unwrap();
        drop(db);
        let store = Store::open(&path).unwrap();
        let version: i64 = store.db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        store.db.execute_batch("SELECT COUNT(*) FROM kicks").unwrap();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        drop(Store::open(&path).unwrap());
        let db = Connection::open(&path).unwrap();
        db.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        let err = format!("{:#}", Store::open(&path).err().unwrap());
        assert!(err.contains("newer Partyline"), "{err}");
    }
}
