//! Chat history, in the party's one order.

use anyhow::Result;
use libp2p::PeerId;
use partyline_protocol::PartyId;
use partyline_protocol::wire::ChatMessage;
use rusqlite::params;

use super::Store;

impl Store {
    /// Stores `m`; a message already stored at that sequence number is left as it is.
    pub(crate) fn append_chat(&self, party: PartyId, m: &ChatMessage) -> Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO chat (party_id, seq, peer, name, text, ts_ms, nonce)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                party.0.as_slice(),
                m.seq as i64,
                m.from.to_bytes(),
                m.name,
                m.text,
                m.ts_ms as i64,
                m.nonce as i64
            ],
        )?;
        Ok(())
    }

    /// The highest sequence number stored for the party with no gap before it (0 if none).
    pub(crate) fn chat_head(&self, party: PartyId) -> Result<u64> {
        let head: i64 = self.db.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM chat WHERE party_id = ?1",
            params![party.0.as_slice()],
            |r| r.get(0),
        )?;
        Ok(head as u64)
    }

    /// Up to `limit` messages after `after`, oldest first.
    pub(crate) fn chat_after(&self, party: PartyId, after: u64, limit: usize) -> Result<Vec<ChatMessage>> {
        self.chat_query(
            "SELECT seq, peer, name, text, ts_ms, nonce FROM chat WHERE party_id = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3",
            params![party.0.as_slice(), after as i64, limit as i64],
        )
    }

    /// The last `n` messages, oldest first.
    pub(crate) fn recent_chat(&self, party: PartyId, n: usize) -> Result<Vec<ChatMessage>> {
        let mut msgs = self.chat_query(
            "SELECT seq, peer, name, text, ts_ms, nonce FROM chat WHERE party_id = ?1
             ORDER BY seq DESC LIMIT ?2",
            params![party.0.as_slice(), n as i64],
        )?;
        msgs.reverse();
        Ok(msgs)
    }

    fn chat_query(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<ChatMessage>> {
        let mut stmt = self.db.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |r| {
            let peer: Vec<u8> = r.get(1)?;
            Ok((r.get::<_, i64>(0)?, peer, r.get(2)?, r.get(3)?, r.get::<_, i64>(4)?, r.get::<_, i64>(5)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, peer, name, text, ts_ms, nonce) = row?;
            // A row this node cannot read back is skipped rather than failing the whole history.
            let Ok(from) = PeerId::from_bytes(&peer) else { continue };
            out.push(ChatMessage {
                seq: seq as u64,
                from,
                name,
                text,
                ts_ms: ts_ms as u64,
                nonce: nonce as u64,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64) -> ChatMessage {
        ChatMessage {
            seq,
            from: PeerId::random(),
            name: "amy".into(),
            text: format!("m{seq}"),
            ts_ms: seq,
            nonce: seq,
        }
    }

    #[test]
    fn history_in_order_and_idempotent() {
        let store = Store::in_memory().unwrap();
        let party = PartyId([5; 16]);
        assert_eq!(store.chat_head(party).unwrap(), 0);
        for seq in [1, 2, 3, 2] {
            store.append_chat(party, &msg(seq)).unwrap();
        }
        assert_eq!(store.chat_head(party).unwrap(), 3);
        let after: Vec<u64> = store.chat_after(party, 1, 10).unwrap().iter().map(|m| m.seq).collect();
        assert_eq!(after, vec![2, 3]);
        let recent: Vec<String> = store.recent_chat(party, 2).unwrap().into_iter().map(|m| m.text).collect();
        assert_eq!(recent, vec!["m2", "m3"]);
        assert!(store.chat_after(PartyId([6; 16]), 0, 10).unwrap().is_empty());
    }
}
