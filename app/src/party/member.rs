//! A member's side of a party: joining with an invite, following the host's roster and chat,
//! keeping links to every other member, and reconnecting when the host goes away.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use libp2p::PeerId;
use partyline_protocol::wire::{Join, LeaveReason, Member, Message, Presence, Rejection, Roster, Welcome};
use partyline_protocol::{JoinLink, PartyId};

use super::chat::{Delivery, MemberChat};
use super::host::chat_event;
use super::roster::diff;
use super::{Ctx, message_kind};
use crate::events::{MemberInfo, NodeEvent, Path};

/// How much history a new member fetches from the host.
const FRESH_HISTORY: u64 = 100;
/// How much stored history is shown again when re-joining.
const SHOWN_HISTORY: usize = 50;
/// While the host is away, our invite is presented again this often (and on every new connection
/// to the host, at most once a second).
const REPRESENT_EVERY: Duration = Duration::from_secs(5);
const REPRESENT_AT_MOST: Duration = Duration::from_secs(1);
/// Our chat that the host has not echoed back ordered within this long is sent again.
const RESEND_CHAT_AFTER: Duration = Duration::from_secs(3);
/// A chat page asked for that has not come by then is asked for again.
const RESYNC_AFTER: Duration = Duration::from_secs(5);

enum Phase {
    /// Waiting for the host's answer to our invite, until the deadline.
    Joining {
        deadline: Instant,
        last_error: Option<String>,
    },
    Joined,
    /// The host went away; we keep the link and present our invite again until it is back.
    Reconnecting {
        presented: Option<Instant>,
    },
}

pub(crate) struct MemberState {
    link: JoinLink,
    phase: Phase,
    roster: Roster,
    chat: MemberChat,
}

impl MemberState {
    pub(super) fn start(ctx: &mut Ctx, link: JoinLink, now: Instant) -> Result<Self> {
        link.check(ctx.clock.unix())?;
        let party = link.party_id();
        let host = link.owner();
        ctx.link(host, link.addrs().to_vec());
        let state = Self {
            phase: Phase::Joining { deadline: now + ctx.join_timeout, last_error: None },
            roster: Roster { party, version: 0, members: Vec::new(), departed: Vec::new() },
            chat: MemberChat::new(ctx.store.chat_head(party)?),
            link,
        };
        state.present_invite(ctx);
        Ok(state)
    }

    pub(super) fn party_id(&self) -> PartyId {
        self.link.party_id()
    }

    fn host(&self) -> PeerId {
        self.link.owner()
    }

    fn present_invite(&self, ctx: &mut Ctx) {
        tracing::debug!(party = %self.party_id(), host = %self.host(), "presenting the invite");
        let join =
            Join { invite: self.link.invite().clone(), name: ctx.name.clone(), addrs: ctx.addrs.clone() };
        ctx.send(self.host(), Message::Join(Box::new(join)));
    }

    pub(super) fn members(&self, ctx: &Ctx) -> Vec<MemberInfo> {
        let info = |m: &Member| MemberInfo {
            peer: m.peer,
            name: m.name.clone(),
            presence: m.presence,
            owner: m.peer == self.host(),
            me: m.peer == ctx.me,
            path: Path::Offline,
        };
        if self.roster.members.is_empty() {
            let me = Member { peer: ctx.me, name: ctx.name.clone(), presence: ctx.presence, addrs: vec![] };
            return vec![info(&me)];
        }
        self.roster.members.iter().map(info).collect()
    }

    /// Returns true when this node is no longer in the party.
    pub(super) fn on_message(&mut self, ctx: &mut Ctx, from: PeerId, msg: Message, now: Instant) -> bool {
        if from != self.host() {
            match msg {
                Message::Hello { party } if party == self.party_id() && self.is_member(&from) => {}
                other => ctx.unauthorized(from, message_kind(&other)),
            }
            return false;
        }
        match msg {
            Message::Welcome(welcome) => self.welcomed(ctx, welcome, now),
            // The owner is up but not hosting yet; a returning member keeps trying.
            Message::Rejected(Rejection::NotHosted) if matches!(self.phase, Phase::Reconnecting { .. }) => {}
            Message::Rejected(rejection) => {
                self.finish(
                    ctx,
                    NodeEvent::JoinFailed {
                        message: format!("the party refused to let you in: {rejection}"),
                    },
                );
                return true;
            }
            Message::Kicked { banned } => {
                self.finish(ctx, NodeEvent::Kicked { banned });
                return true;
            }
            Message::PartyEnded => {
                self.finish(ctx, NodeEvent::PartyEnded);
                return true;
            }
            _ if !matches!(self.phase, Phase::Joined) => {} // stale, from before we were let in
            Message::Roster(roster) => self.apply_roster(ctx, roster),
            Message::Chat(m) => self.deliver(ctx, m, now),
            Message::ChatPage { messages, head } => {
                self.chat.synced();
                for m in messages {
                    self.deliver(ctx, m, now);
                }
                if self.chat.head() < head {
                    self.ask_sync(ctx, self.chat.head(), now);
                }
            }
            Message::Leave => self.host_lost(ctx, LeaveReason::Left),
            other => ctx.unauthorized(from, message_kind(&other)),
        }
        false
    }

    fn is_member(&self, peer: &PeerId) -> bool {
        self.roster.members.iter().any(|m| m.peer == *peer)
    }

    fn welcomed(&mut self, ctx: &mut Ctx, welcome: Welcome, now: Instant) {
        let Welcome { roster, chat_head } = welcome;
        if roster.party != self.party_id() {
            return;
        }
        let first = matches!(self.phase, Phase::Joining { .. });
        tracing::info!(party = %self.party_id(), first, members = roster.members.len(), "welcomed");
        self.phase = Phase::Joined;
        let party = self.party_id();
        if first {
            let result = ctx.store.remember_membership(party, &self.link.to_string());
            ctx.check_store("remember the party", result);
            self.roster = roster.clone();
            let members = self.members(ctx);
            ctx.emit(NodeEvent::Joined { party, members });
            let shown = ctx.store.recent_chat(party, SHOWN_HISTORY);
            for m in ctx.check_store("read chat history", shown).unwrap_or_default() {
                ctx.emit(chat_event(&m, true));
            }
            if self.chat.head() == 0 {
                self.chat.skip_to(chat_head.saturating_sub(FRESH_HISTORY));
            }
            let (me, host) = (ctx.me, self.host());
            for m in roster.members.iter().filter(|m| m.peer != me && m.peer != host) {
                ctx.link(m.peer, m.addrs.clone());
                ctx.send(m.peer, Message::Hello { party });
            }
        } else {
            // A restarted host numbers its rosters afresh: its welcome is always the truth.
            self.roster.version = 0;
            self.apply_roster(ctx, roster);
        }
        if self.chat.head() < chat_head {
            self.ask_sync(ctx, self.chat.head(), now);
        }
        self.chat.mark_unsent();
        self.send_due_chat(ctx, Instant::now());
        if ctx.presence != Presence::Online {
            ctx.send(self.host(), Message::Presence(ctx.presence));
        }
    }

    fn apply_roster(&mut self, ctx: &mut Ctx, roster: Roster) {
        if roster.party != self.party_id() || roster.version <= self.roster.version {
            return;
        }
        let (me, host) = (ctx.me, self.host());
        for event in diff(&self.roster.members, &roster, me) {
            match &event {
                NodeEvent::MemberJoined { peer, .. } if *peer != host => {
                    let addrs = roster.members.iter().find(|m| m.peer == *peer).map(|m| m.addrs.clone());
                    ctx.link(*peer, addrs.unwrap_or_default());
                    ctx.send(*peer, Message::Hello { party: roster.party });
                }
                NodeEvent::MemberLeft { peer, .. } if *peer != host => ctx.unlink(*peer),
                _ => {}
            }
            ctx.emit(event);
        }
        self.roster = roster;
    }

    /// Asks the host for the chat page after `after` (again after a while if none comes).
    fn ask_sync(&mut self, ctx: &mut Ctx, after: u64, now: Instant) {
        self.chat.asked(now);
        ctx.send(self.host(), Message::ChatSync { after });
    }

    fn deliver(&mut self, ctx: &mut Ctx, m: partyline_protocol::wire::ChatMessage, now: Instant) {
        match self.chat.receive(m) {
            Delivery::Ready(ready) => {
                for m in ready {
                    let result = ctx.store.append_chat(self.party_id(), &m);
                    ctx.check_store("save a chat message", result);
                    ctx.emit(chat_event(&m, false));
                }
            }
            Delivery::Gap { after } => self.ask_sync(ctx, after, now),
        }
    }

    pub(super) fn chat(&mut self, ctx: &mut Ctx, text: String) -> Result<()> {
        if self.chat.submit(text).is_none() {
            bail!("too many messages are waiting for the host; try again when it is back");
        }
        self.send_due_chat(ctx, Instant::now());
        Ok(())
    }

    /// Sends our messages the host has not ordered yet: new ones, and ones that seem lost.
    fn send_due_chat(&mut self, ctx: &mut Ctx, now: Instant) {
        if matches!(self.phase, Phase::Joined) {
            for (nonce, text) in self.chat.due(now, RESEND_CHAT_AFTER) {
                ctx.send(self.host(), Message::ChatSubmit { nonce, text });
            }
        }
    }

    pub(super) fn set_presence(&mut self, ctx: &mut Ctx, presence: Presence) {
        if matches!(self.phase, Phase::Joined) {
            ctx.send(self.host(), Message::Presence(presence));
        }
    }

    fn host_lost(&mut self, ctx: &mut Ctx, reason: LeaveReason) {
        if !matches!(self.phase, Phase::Joined) {
            return;
        }
        tracing::info!(host = %self.host(), ?reason, "lost the host; reconnecting");
        self.phase = Phase::Reconnecting { presented: None };
        let host = self.host();
        let name =
            self.roster.members.iter().find(|m| m.peer == host).map_or_else(String::new, |m| m.name.clone());
        // Drop the host from our view; its next roster brings it back and says so.
        self.roster.members.retain(|m| m.peer != host);
        ctx.emit(NodeEvent::MemberLeft { peer: host, name, reason });
        ctx.emit(NodeEvent::Reconnecting { attempt: 1 });
    }

    pub(super) fn on_connected(&mut self, ctx: &mut Ctx, peer: PeerId, now: Instant) {
        if peer == self.host() {
            self.represent(ctx, now, REPRESENT_AT_MOST);
        }
    }

    /// Presents the invite again if reconnecting and it was last presented `after` ago.
    fn represent(&mut self, ctx: &mut Ctx, now: Instant, after: Duration) {
        if let Phase::Reconnecting { presented } = &mut self.phase
            && presented.is_none_or(|at| now.duration_since(at) >= after)
        {
            *presented = Some(now);
            self.present_invite(ctx);
        }
    }

    pub(super) fn on_disconnected(&mut self, ctx: &mut Ctx, peer: PeerId, _now: Instant) {
        if peer == self.host() {
            self.host_lost(ctx, LeaveReason::Timeout);
        }
    }

    pub(super) fn on_link_failed(&mut self, peer: PeerId, error: &str, _now: Instant) {
        if let Phase::Joining { last_error, .. } = &mut self.phase
            && peer == self.link.owner()
        {
            *last_error = Some(error.to_owned());
        }
    }

    /// Returns true when this node gave up joining.
    pub(super) fn tick(&mut self, ctx: &mut Ctx, now: Instant) -> bool {
        self.represent(ctx, now, REPRESENT_EVERY);
        self.send_due_chat(ctx, now);
        if matches!(self.phase, Phase::Joined) && self.chat.sync_overdue(now, RESYNC_AFTER) {
            self.ask_sync(ctx, self.chat.head(), now);
        }
        let Phase::Joining { deadline, last_error } = &self.phase else { return false };
        if now < *deadline {
            return false;
        }
        let why = last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
        let message = format!(
            "could not reach the party: its owner did not answer within {}s at any of the link's {} address(es){why}; \
             the party may have ended or its owner is offline",
            ctx.join_timeout.as_secs(),
            self.link.addrs().len()
        );
        self.finish(ctx, NodeEvent::JoinFailed { message });
        true
    }

    fn finish(&self, ctx: &mut Ctx, event: NodeEvent) {
        ctx.unlink(self.host());
        let me = ctx.me;
        for m in self.roster.members.iter().filter(|m| m.peer != me) {
            ctx.unlink(m.peer);
        }
        ctx.emit(event);
    }

    pub(super) fn leave(self, ctx: &mut Ctx) {
        if matches!(self.phase, Phase::Joined) {
            ctx.send(self.host(), Message::Leave);
        }
        self.finish(ctx, NodeEvent::Left);
    }
}
