//! Chat ordering. The host numbers every message; members deliver them strictly in that order,
//! buffering what arrives early and asking the host for what they missed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use partyline_protocol::wire::ChatMessage;

use crate::rate::TokenBucket;

/// Messages a member holds while waiting for an earlier one.
const MAX_EARLY: usize = 256;
/// Messages a member has sent that the host has not ordered yet.
pub(crate) const MAX_UNSENT: usize = 64;
/// Nonces the host remembers per member to drop resubmissions.
const REMEMBERED_NONCES: usize = 128;
/// Chat a member may send: a burst of 10, then 2 a second.
const CHAT_BURST: u32 = 10;
const CHAT_PER_SEC: f64 = 2.0;

/// A member's side of the chat order.
pub(crate) struct MemberChat {
    /// Everything up to here has been delivered.
    head: u64,
    early: BTreeMap<u64, ChatMessage>,
    /// When we last asked for a page (`ChatSync`), while none has come since.
    syncing: Option<Instant>,
    /// Submitted but not yet seen ordered, by nonce, with when it was last sent.
    unsent: BTreeMap<u64, (String, Option<Instant>)>,
    next_nonce: u64,
}

pub(crate) enum Delivery {
    /// In order: deliver these now.
    Ready(Vec<ChatMessage>),
    /// A gap: ask the host for what follows `after`.
    Gap { after: u64 },
}

impl MemberChat {
    pub(crate) fn new(head: u64) -> Self {
        Self {
            head,
            early: BTreeMap::new(),
            syncing: None,
            unsent: BTreeMap::new(),
            next_nonce: rand::random(),
        }
    }

    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// Skips ahead (a new member does not fetch a party's whole history).
    pub(crate) fn skip_to(&mut self, head: u64) {
        if head > self.head {
            self.head = head;
            self.early = self.early.split_off(&(head + 1));
        }
    }

    pub(crate) fn receive(&mut self, m: ChatMessage) -> Delivery {
        if m.seq <= self.head {
            return Delivery::Ready(Vec::new());
        }
        self.unsent.remove(&m.nonce);
        if m.seq > self.head + 1 {
            if self.early.len() < MAX_EARLY {
                self.early.insert(m.seq, m);
            }
            if self.syncing.is_some() {
                return Delivery::Ready(Vec::new());
            }
            return Delivery::Gap { after: self.head };
        }
        let mut ready = vec![m];
        self.head += 1;
        while let Some(next) = self.early.remove(&(self.head + 1)) {
            self.head += 1;
            ready.push(next);
        }
        Delivery::Ready(ready)
    }

    /// We asked the host for a page.
    pub(crate) fn asked(&mut self, now: Instant) {
        self.syncing = Some(now);
    }

    /// A page answering our `ChatSync` arrived.
    pub(crate) fn synced(&mut self) {
        self.syncing = None;
    }

    /// Whether we asked for a page `after` ago or longer and none came (the request or its
    /// answer was lost, or the host held it over our budget): time to ask again.
    pub(crate) fn sync_overdue(&self, now: Instant, after: Duration) -> bool {
        self.syncing.is_some_and(|at| now.saturating_duration_since(at) >= after)
    }

    /// Queues our own message; `None` when too many are waiting for the host.
    pub(crate) fn submit(&mut self, text: String) -> Option<u64> {
        if self.unsent.len() >= MAX_UNSENT {
            return None;
        }
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        self.unsent.insert(nonce, (text, None));
        Some(nonce)
    }

    /// Our messages to (re)send now, oldest first: those never sent, and those sent more than
    /// `resend_after` ago without coming back ordered (lost on the way: the host drops repeats).
    pub(crate) fn due(&mut self, now: Instant, resend_after: Duration) -> Vec<(u64, String)> {
        let mut due = Vec::new();
        for (nonce, (text, sent)) in &mut self.unsent {
            if sent.is_none_or(|at| now.saturating_duration_since(at) >= resend_after) {
                *sent = Some(now);
                due.push((*nonce, text.clone()));
            }
        }
        due
    }

    /// Forgets when messages were sent, so that [`MemberChat::due`] returns all of them (after
    /// reconnecting to the host).
    pub(crate) fn mark_unsent(&mut self) {
        for (_, sent) in self.unsent.values_mut() {
            *sent = None;
        }
    }
}

/// The host's side: numbering, de-duplication of resubmissions, per-member rate limits.
pub(crate) struct HostChat {
    head: u64,
    seen: HashMap<PeerId, VecDeque<u64>>,
    buckets: HashMap<PeerId, TokenBucket>,
}

pub(crate) enum Submission {
    Accept { seq: u64 },
    Duplicate,
    RateLimited,
}

impl HostChat {
    pub(crate) fn new(head: u64) -> Self {
        Self { head, seen: HashMap::new(), buckets: HashMap::new() }
    }

    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    pub(crate) fn submit(&mut self, from: PeerId, nonce: u64, now: Instant, limited: bool) -> Submission {
        let seen = self.seen.entry(from).or_default();
        if seen.contains(&nonce) {
            return Submission::Duplicate;
        }
        if limited {
            let bucket =
                self.buckets.entry(from).or_insert_with(|| TokenBucket::new(CHAT_BURST, CHAT_PER_SEC, now));
            if !bucket.take(now) {
                return Submission::RateLimited;
            }
        }
        seen.push_back(nonce);
        if seen.len() > REMEMBERED_NONCES {
            seen.pop_front();
        }
        self.head += 1;
        Submission::Accept { seq: self.head }
    }

    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(seq: u64) -> ChatMessage {
        ChatMessage {
            seq,
            from: PeerId::random(),
            name: "a".into(),
            text: "t".into(),
            ts_ms: 0,
            nonce: seq + 1000,
        }
    }

    fn seqs(d: Delivery) -> Vec<u64> {
        match d {
            Delivery::Ready(v) => v.iter().map(|m| m.seq).collect(),
            Delivery::Gap { after } => vec![u64::MAX, after],
        }
    }

    #[test]
    fn delivers_in_order_and_repairs_gaps() {
        let mut chat = MemberChat::new(0);
        assert_eq!(seqs(chat.receive(m(1))), vec![1]);
        assert_eq!(seqs(chat.receive(m(3))), vec![u64::MAX, 1], "gap after 1: ask once");
        let (t0, again) = (Instant::now(), Duration::from_secs(5));
        chat.asked(t0);
        assert_eq!(seqs(chat.receive(m(4))), Vec::<u64>::new(), "already syncing");
        assert!(!chat.sync_overdue(t0 + Duration::from_secs(1), again));
        assert!(chat.sync_overdue(t0 + again, again), "no page came: ask again");
        assert_eq!(seqs(chat.receive(m(1))), Vec::<u64>::new(), "duplicate");
        chat.synced();
        assert_eq!(seqs(chat.receive(m(2))), vec![2, 3, 4]);
        assert_eq!(chat.head(), 4);
    }

    #[test]
    fn skipping_ahead_drops_older_early_messages() {
        let mut chat = MemberChat::new(0);
        let _ = chat.receive(m(5));
        let _ = chat.receive(m(12));
        chat.skip_to(10);
        chat.synced();
        assert_eq!(seqs(chat.receive(m(11))), vec![11, 12]);
    }

    #[test]
    fn own_messages_are_resent_until_ordered() {
        let (t0, again) = (Instant::now(), Duration::from_secs(5));
        let mut chat = MemberChat::new(0);
        let nonce = chat.submit("hi".into()).unwrap();
        assert_eq!(chat.due(t0, again), vec![(nonce, "hi".to_owned())]);
        assert!(chat.due(t0 + Duration::from_secs(1), again).is_empty(), "not yet");
        assert_eq!(chat.due(t0 + again, again).len(), 1, "lost? send it again");
        chat.mark_unsent();
        assert_eq!(chat.due(t0 + again, again).len(), 1, "after reconnecting: all of them");
        let mut echoed = m(1);
        echoed.nonce = nonce;
        let _ = chat.receive(echoed);
        assert!(chat.due(t0 + again * 3, again).is_empty(), "ordered: done");
        for _ in 0..MAX_UNSENT {
            chat.submit("x".into()).unwrap();
        }
        assert!(chat.submit("one too many".into()).is_none());
    }

    #[test]
    fn host_numbers_dedupes_and_limits() {
        let now = Instant::now();
        let mut host = HostChat::new(7);
        let p = PeerId::random();
        assert!(matches!(host.submit(p, 1, now, true), Submission::Accept { seq: 8 }));
        assert!(matches!(host.submit(p, 1, now, true), Submission::Duplicate));
        let accepted =
            (2..100).filter(|n| matches!(host.submit(p, *n, now, true), Submission::Accept { .. })).count();
        assert_eq!(accepted, CHAT_BURST as usize - 1);
        assert!(
            matches!(host.submit(p, 500, now, false), Submission::Accept { .. }),
            "unlimited for the host"
        );
    }
}
