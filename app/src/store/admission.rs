//! What admission reads and writes: who used which invite, kicks, bans and revocations. The owner
//! asks once per join ([`Store::standing`]); every answer comes from the database, so nothing an
//! owner revoked, kicked or banned can come back after a restart or a long party.

use anyhow::Result;
use libp2p::PeerId;
use partyline_protocol::{InviteId, PartyId};
use rusqlite::params;

use super::Store;

/// What the owner's records say of a peer joining with an invite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) banned: bool,
    /// Kicked out while a member by this invite: it does not let the peer back in.
    pub(crate) kicked: bool,
    pub(crate) revoked: bool,
    /// The peer joined with this invite before (a member coming back).
    pub(crate) returning: bool,
    /// Distinct other peers that joined with this invite.
    pub(crate) uses_by_others: u32,
}

impl Store {
    pub(crate) fn standing(&self, party: PartyId, invite: InviteId, peer: PeerId) -> Result<Standing> {
        let (party, invite, peer) = (party.0.to_vec(), invite.0.to_vec(), peer.to_bytes());
        let (banned, kicked, revoked, returning, others): (bool, bool, bool, bool, i64) = self.db.query_row(
            "SELECT
               EXISTS (SELECT 1 FROM bans WHERE party_id = ?1 AND peer = ?3),
               EXISTS (SELECT 1 FROM kicks WHERE party_id = ?1 AND invite_id = ?2 AND peer = ?3),
               EXISTS (SELECT 1 FROM invites WHERE party_id = ?1 AND invite_id = ?2 AND revoked = 1),
               EXISTS (SELECT 1 FROM invite_uses WHERE party_id = ?1 AND invite_id = ?2 AND peer = ?3),
               (SELECT COUNT(*) FROM invite_uses WHERE party_id = ?1 AND invite_id = ?2 AND peer != ?3)",
            params![party, invite, peer],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        let uses_by_others = u32::try_from(others).unwrap_or(u32::MAX);
        Ok(Standing { banned, kicked, revoked, returning, uses_by_others })
    }

    pub(crate) fn record_invite_use(&self, party: PartyId, invite: InviteId, peer: PeerId) -> Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO invite_uses (party_id, invite_id, peer) VALUES (?1, ?2, ?3)",
            params![party.0.as_slice(), invite.0.as_slice(), peer.to_bytes()],
        )?;
        Ok(())
    }

    /// `peer` is kicked: none of the invites it joined with lets it back in.
    pub(crate) fn kick(&self, party: PartyId, peer: PeerId) -> Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO kicks (party_id, invite_id, peer)
             SELECT party_id, invite_id, peer FROM invite_uses WHERE party_id = ?1 AND peer = ?2",
            params![party.0.as_slice(), peer.to_bytes()],
        )?;
        Ok(())
    }

    /// `peer` is banned for good, and the invites it joined with are revoked, so that a fresh
    /// identity with the same link is refused too (members who joined with them before may come
    /// back). Returns the invites revoked now.
    pub(crate) fn ban(&self, party: PartyId, peer: PeerId, name: &str) -> Result<Vec<InviteId>> {
        let tx = self.db.unchecked_transaction()?;
        let (party, peer) = (party.0.to_vec(), peer.to_bytes());
        tx.execute(
            "INSERT OR REPLACE INTO bans (party_id, peer, name) VALUES (?1, ?2, ?3)",
            params![party, peer, name],
        )?;
        let mut ids = Vec::new();
        {
            let mut stmt = tx.prepare(
                "UPDATE invites SET revoked = 1 WHERE party_id = ?1 AND revoked = 0 AND invite_id IN
                   (SELECT invite_id FROM invite_uses WHERE party_id = ?1 AND peer = ?2)
                 RETURNING invite_id",
            )?;
            for id in stmt.query_map(params![party, peer], |r| r.get::<_, Vec<u8>>(0))? {
                if let Ok(id) = <[u8; 10]>::try_from(id?) {
                    ids.push(InviteId(id));
                }
            }
        }
        tx.commit()?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use libp2p::identity::Keypair;
    use partyline_protocol::{InviteTerms, JoinLink, PartySalt, UnixTime};

    use super::*;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn invite(store: &Store, key: &libp2p::identity::ed25519::Keypair) -> (PartyId, InviteId) {
        let terms = InviteTerms { lifetime: Duration::from_secs(60), max_uses: NonZeroU32::new(3) };
        let link = JoinLink::mint(key, PartySalt([3; 8]), terms, NOW, []);
        store.record_invite(link.invite()).unwrap();
        (link.party_id(), link.invite().id())
    }

    #[test]
    fn uses_are_counted_per_peer() {
        let store = Store::in_memory().unwrap();
        let key = Keypair::generate_ed25519().try_into_ed25519().unwrap();
        let (party, id) = invite(&store, &key);
        let (a, b) = (PeerId::random(), PeerId::random());
        assert_eq!(store.standing(party, id, a).unwrap(), Standing::default());
        store.record_invite_use(party, id, a).unwrap();
        store.record_invite_use(party, id, a).unwrap();
        let standing = store.standing(party, id, a).unwrap();
        assert!(standing.returning && standing.uses_by_others == 0, "{standing:?}");
        assert_eq!(store.standing(party, id, b).unwrap().uses_by_others, 1);
    }

    #[test]
    fn a_kick_holds_for_the_invites_used_and_a_ban_revokes_them() {
        let store = Store::in_memory().unwrap();
        let key = Keypair::generate_ed25519().try_into_ed25519().unwrap();
        let (party, used) = invite(&store, &key);
        let (_, fresh) = invite(&store, &key);
        let (carol, dave, eve) = (PeerId::random(), PeerId::random(), PeerId::random());
        store.record_invite_use(party, used, carol).unwrap();
        store.record_invite_use(party, used, dave).unwrap();
        store.kick(party, carol).unwrap();
        assert!(store.standing(party, used, carol).unwrap().kicked);
        assert!(!store.standing(party, fresh, carol).unwrap().kicked, "a new link lets her back");

        assert_eq!(store.ban(party, dave, "dave").unwrap(), vec![used]);
        assert!(store.standing(party, fresh, dave).unwrap().banned);
        let stranger = store.standing(party, used, eve).unwrap();
        assert!(stranger.revoked && !stranger.returning, "{stranger:?}");
        let member = store.standing(party, used, carol).unwrap();
        assert!(member.revoked && member.returning);
        assert!(!store.standing(party, fresh, eve).unwrap().revoked);
        assert_eq!(store.ban(party, dave, "dave").unwrap(), vec![], "revoked once");
    }

    #[test]
    fn revocations_stay_however_many_there_are() {
        let store = Store::in_memory().unwrap();
        let key = Keypair::generate_ed25519().try_into_ed25519().unwrap();
        let (party, first) = invite(&store, &key);
        store.revoke_invites(party, &[first]).unwrap();
        let many: Vec<InviteId> = (0..5000u32)
            .map(|i| {
                let mut id = [0xff; 10];
                id[..4].copy_from_slice(&i.to_be_bytes());
                InviteId(id)
            })
            .collect();
        store.revoke_invites(party, &many).unwrap();
        assert!(store.standing(party, first, PeerId::random()).unwrap().revoked);
        assert!(store.standing(party, many[0], PeerId::random()).unwrap().revoked);
    }
}
