//! Which piece goes to which provider: runs of missing pieces are claimed by providers, handed
//! to the writer, and given back when a provider fails or lies.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;

use libp2p::PeerId;
use partyline_protocol::content::Layout;

use super::db::Bitmap;

/// Bytes asked for in one request.
const REQUEST_BYTES: u64 = 4 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Missing,
    Claimed(PeerId),
    /// Handed to the writer, which has not said yet whether it is good.
    Delivered(PeerId),
    Have,
}

/// Which piece goes to which provider.
pub(crate) struct Sched {
    slots: Vec<Slot>,
    /// Pieces before this were all claimed once; pieces given back are in `again`.
    cursor: u64,
    again: BTreeSet<u64>,
    per_request: u64,
    pub(crate) dropped: HashSet<PeerId>,
    /// Providers pulled from over a direct channel right now.
    pub(crate) direct: HashSet<PeerId>,
    have: u64,
}

impl Sched {
    pub(crate) fn new(have: &Bitmap, layout: &Layout, dropped: HashSet<PeerId>) -> Self {
        let slots: Vec<Slot> =
            (0..have.len()).map(|i| if have.get(i) { Slot::Have } else { Slot::Missing }).collect();
        let piece = layout.piece_len(0).max(1);
        Self {
            slots,
            cursor: 0,
            again: BTreeSet::new(),
            per_request: (REQUEST_BYTES / piece).max(1),
            dropped,
            direct: HashSet::new(),
            have: have.count(),
        }
    }

    pub(crate) fn claim(&mut self, peer: PeerId) -> Option<Range<u64>> {
        if self.dropped.contains(&peer) {
            return None;
        }
        let start = match self.again.pop_first() {
            Some(p) => p,
            None => {
                while (self.cursor as usize) < self.slots.len()
                    && self.slots[self.cursor as usize] != Slot::Missing
                {
                    self.cursor += 1;
                }
                if self.cursor as usize >= self.slots.len() {
                    return None;
                }
                self.cursor
            }
        };
        let mut end = start;
        while end < start + self.per_request
            && (end as usize) < self.slots.len()
            && self.slots[end as usize] == Slot::Missing
        {
            self.slots[end as usize] = Slot::Claimed(peer);
            self.again.remove(&end);
            end += 1;
        }
        Some(start..end)
    }

    pub(crate) fn delivered(&mut self, piece: u64, peer: PeerId) {
        self.slots[piece as usize] = Slot::Delivered(peer);
    }

    pub(crate) fn good(&mut self, piece: u64) {
        if self.slots[piece as usize] != Slot::Have {
            self.slots[piece as usize] = Slot::Have;
            self.have += 1;
        }
    }

    pub(crate) fn give_back(&mut self, piece: u64) {
        self.slots[piece as usize] = Slot::Missing;
        self.again.insert(piece);
    }

    /// Pieces `peer` claimed and did not deliver go to others.
    pub(crate) fn release(&mut self, peer: PeerId) {
        self.direct.remove(&peer);
        for i in 0..self.slots.len() as u64 {
            if self.slots[i as usize] == Slot::Claimed(peer) {
                self.give_back(i);
            }
        }
    }

    /// True the first time `peer` is dropped.
    pub(crate) fn drop_peer(&mut self, peer: PeerId) -> bool {
        let first = self.dropped.insert(peer);
        self.release(peer);
        first
    }

    pub(crate) fn is_dropped(&self, peer: &PeerId) -> bool {
        self.dropped.contains(peer)
    }

    pub(crate) fn done(&self) -> bool {
        self.have == self.slots.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use partyline_protocol::content::Manifest;

    use super::*;

    #[test]
    fn pieces_go_to_providers_in_runs_and_come_back_when_one_fails() {
        let m = Manifest {
            piece_size: partyline_protocol::content::MIN_PIECE,
            pieces_root: [0; 32],
            entries: vec![partyline_protocol::content::Entry {
                path: "f".into(),
                kind: partyline_protocol::content::EntryKind::File { size: 10 << 20, mode: 0o644 },
            }],
        };
        let layout = Layout::new(&m);
        let mut have = Bitmap::new(10);
        have.set(2, true);
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut s = Sched::new(&have, &layout, HashSet::new());
        assert_eq!(s.claim(a), Some(0..2), "a run stops at a piece already here");
        assert_eq!(s.claim(b), Some(3..7), "4 MiB at most");
        s.delivered(3, b);
        s.good(3);
        s.release(b);
        assert_eq!(s.claim(a), Some(4..8), "what b did not deliver goes to others first");
        assert!(s.drop_peer(b) && !s.drop_peer(b));
        assert_eq!(s.claim(b), None, "a dropped provider gets nothing");
        s.give_back(0);
        assert_eq!(s.claim(a), Some(0..1));
        assert!(!s.done());
    }
}
