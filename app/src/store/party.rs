//! Parties this node owns or joined, and their invites (what admission reads of them is in
//! `admission.rs`).

use anyhow::{Context, Result};
use partyline_protocol::{Invite, InviteId, PartyId, PartySalt, UnixTime};
use rusqlite::{OptionalExtension, params};

use super::Store;

/// A party this node owns: its salt (the key is the node's own) and whether it was ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnedParty {
    pub(crate) id: PartyId,
    pub(crate) salt: PartySalt,
}

impl Store {
    /// The party this node hosts when asked to host: the newest one it owns that was not ended.
    pub(crate) fn current_owned_party(&self) -> Result<Option<OwnedParty>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .db
            .query_row(
                "SELECT party_id, salt FROM owned_parties WHERE ended_at IS NULL
                 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(id, salt)| {
            Ok(OwnedParty {
                id: PartyId(id.try_into().ok().context("corrupt party id in database")?),
                salt: PartySalt(salt.try_into().ok().context("corrupt party salt in database")?),
            })
        })
        .transpose()
    }

    /// Whether this node owns `id`, and if so whether it was ended.
    pub(crate) fn owned_party_ended(&self, id: PartyId) -> Result<Option<bool>> {
        let ended: Option<Option<i64>> = self
            .db
            .query_row("SELECT ended_at FROM owned_parties WHERE party_id = ?1", [id.0.as_slice()], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(ended.map(|at| at.is_some()))
    }

    pub(crate) fn create_owned_party(&self, id: PartyId, salt: PartySalt, now: UnixTime) -> Result<()> {
        self.db.execute(
            "INSERT INTO owned_parties (party_id, salt, created_at) VALUES (?1, ?2, ?3)",
            params![id.0.as_slice(), salt.0.as_slice(), now.0 as i64],
        )?;
        Ok(())
    }

    pub(crate) fn end_owned_party(&self, id: PartyId, now: UnixTime) -> Result<()> {
        self.db.execute(
            "UPDATE owned_parties SET ended_at = ?2 WHERE party_id = ?1",
            params![id.0.as_slice(), now.0 as i64],
        )?;
        Ok(())
    }

    pub(crate) fn record_invite(&self, invite: &Invite) -> Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO invites (party_id, invite_id, expires_at, max_uses) VALUES (?1, ?2, ?3, ?4)",
            params![
                invite.party_id().0.as_slice(),
                invite.id().0.as_slice(),
                invite.expires_at().0 as i64,
                invite.max_uses().map(|n| n.get())
            ],
        )?;
        Ok(())
    }

    /// Invites of the party that are neither revoked nor expired at `now`.
    pub(crate) fn live_invites(&self, party: PartyId, now: UnixTime) -> Result<Vec<InviteId>> {
        let mut stmt = self.db.prepare(
            "SELECT invite_id FROM invites WHERE party_id = ?1 AND revoked = 0 AND expires_at > ?2",
        )?;
        let ids = stmt
            .query_map(params![party.0.as_slice(), now.0 as i64], |r| r.get::<_, Vec<u8>>(0))?
            .filter_map(|id| id.ok().and_then(|id| id.try_into().ok()).map(InviteId))
            .collect();
        Ok(ids)
    }

    pub(crate) fn revoke_invites(&self, party: PartyId, ids: &[InviteId]) -> Result<()> {
        let tx = self.db.unchecked_transaction()?;
        for id in ids {
            // Revoking an invite this node never saw (say, from a lost database) still has to stick.
            tx.execute(
                "INSERT INTO invites (party_id, invite_id, expires_at, revoked) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (party_id, invite_id) DO UPDATE SET revoked = 1",
                params![party.0.as_slice(), id.0.as_slice(), i64::MAX],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn remember_membership(&self, party: PartyId, link: &str) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO memberships (party_id, link) VALUES (?1, ?2)",
            params![party.0.as_slice(), link],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    #[test]
    fn owned_party_lifecycle() {
        let store = Store::in_memory().unwrap();
        assert_eq!(store.current_owned_party().unwrap(), None);
        let (id, salt) = (PartyId([1; 16]), PartySalt([2; 8]));
        assert_eq!(store.owned_party_ended(id).unwrap(), None);
        store.create_owned_party(id, salt, NOW).unwrap();
        assert_eq!(store.current_owned_party().unwrap(), Some(OwnedParty { id, salt }));
        assert_eq!(store.owned_party_ended(id).unwrap(), Some(false));
        store.end_owned_party(id, NOW).unwrap();
        assert_eq!(store.current_owned_party().unwrap(), None);
        assert_eq!(store.owned_party_ended(id).unwrap(), Some(true));
    }
}
