//! The owner's side of a party: admission, roster, chat order, invites, kicks and bans.

use std::time::Instant;

use anyhow::{Result, bail};
use libp2p::PeerId;
use partyline_protocol::wire::{
    ChatMessage, Join, LeaveReason, MAX_MEMBERS, Member, Message, Presence, Rejection, Welcome, chat_page,
};
use partyline_protocol::{InviteId, InviteTerms, JoinLink, Party, PartyId, PartySalt};

use super::chat::{HostChat, Submission};
use super::roster::HostRoster;
use super::{Ctx, RevokeTarget, message_kind};
use crate::events::{MemberInfo, NodeEvent, Path};
use crate::rate::PeerBuckets;
use crate::stats::Counters;

pub(crate) struct HostState {
    party: Party,
    roster: HostRoster,
    chat: HostChat,
    /// Each member's budget of requests whose answer costs more than the request: a chat page
    /// (up to 64 messages) for a `ChatSync` of a few bytes, the roster to every member for a
    /// presence change.
    syncs: PeerBuckets,
    presences: PeerBuckets,
}

/// Chat pages a member may ask for: a few at once (joining, a gap, coming back after a while),
/// then one a second; a member whose request was held asks again a few seconds later.
const SYNC_BURST: u32 = 8;
const SYNC_PER_SEC: f64 = 1.0;
/// Presence changes a member may make (away, back, mute, unmute): more than a hand does.
const PRESENCE_BURST: u32 = 20;
const PRESENCE_PER_SEC: f64 = 2.0;

impl HostState {
    /// Resumes the party this node owns (so links and history carry over a restart), or creates one.
    pub(super) fn start(ctx: &mut Ctx, fresh: bool) -> Result<Self> {
        let existing = if fresh { None } else { ctx.store.current_owned_party()? };
        let party = match existing {
            Some(owned) => Party::new(ctx.key.public(), owned.salt),
            None => {
                let party = Party::new(ctx.key.public(), PartySalt::random());
                ctx.store.create_owned_party(party.id(), party.salt(), ctx.clock.unix())?;
                party
            }
        };
        let id = party.id();
        let me =
            Member { peer: ctx.me, name: ctx.name.clone(), presence: ctx.presence, addrs: ctx.addrs.clone() };
        let host = Self {
            roster: HostRoster::new(id, me, ctx.clock.now_ms()),
            chat: HostChat::new(ctx.store.chat_head(id)?),
            syncs: PeerBuckets::new(SYNC_BURST, SYNC_PER_SEC),
            presences: PeerBuckets::new(PRESENCE_BURST, PRESENCE_PER_SEC),
            party,
        };
        let members = host.members(ctx);
        ctx.emit(NodeEvent::Joined { party: id, members });
        for m in ctx.store.recent_chat(id, 50)? {
            ctx.emit(chat_event(&m, true));
        }
        Ok(host)
    }

    pub(super) fn id(&self) -> PartyId {
        self.party.id()
    }

    pub(super) fn members(&self, ctx: &Ctx) -> Vec<MemberInfo> {
        self.roster
            .members()
            .iter()
            .map(|m| MemberInfo {
                peer: m.peer,
                name: m.name.clone(),
                presence: m.presence,
                owner: m.peer == ctx.me,
                me: m.peer == ctx.me,
                path: Path::Offline,
            })
            .collect()
    }

    fn broadcast(&self, ctx: &mut Ctx, msg: &Message) {
        for m in self.roster.others() {
            ctx.send(m.peer, msg.clone());
        }
    }

    fn publish_roster(&self, ctx: &mut Ctx) {
        self.broadcast(ctx, &Message::Roster(self.roster.snapshot()));
    }

    pub(super) fn addrs_changed(&mut self, ctx: &mut Ctx) {
        self.roster.set_my_addrs(ctx.addrs.clone());
        self.publish_roster(ctx);
    }

    pub(super) fn on_message(&mut self, ctx: &mut Ctx, from: PeerId, msg: Message, now: Instant) {
        if let Message::Join(join) = msg {
            return self.on_join(ctx, from, *join);
        }
        if !self.roster.contains(&from) {
            return ctx.unauthorized(from, message_kind(&msg));
        }
        match msg {
            Message::ChatSubmit { nonce, text } => self.order_chat(ctx, from, nonce, text, now),
            Message::ChatSync { .. } | Message::Presence(_) if !self.within_budget(&msg, from, now) => {
                tracing::debug!(%from, kind = message_kind(&msg), "over the member's budget");
                Counters::bump(&ctx.counters.dropped_rate_limited);
            }
            Message::ChatSync { after } => {
                let result = ctx.store.chat_after(self.id(), after, partyline_protocol::wire::MAX_CHAT_PAGE);
                if let Some(messages) = ctx.check_store("read chat history", result) {
                    let (page, _) = chat_page(&messages, self.chat.head());
                    ctx.send(from, page);
                }
            }
            Message::Presence(presence) => {
                if self.roster.set_presence(&from, presence) {
                    let name = self.roster.get(&from).map(|m| m.name.clone()).unwrap_or_default();
                    ctx.emit(NodeEvent::Presence { peer: from, name, presence });
                    self.publish_roster(ctx);
                }
            }
            Message::Leave => self.remove(ctx, from, LeaveReason::Left),
            Message::Hello { party } if party == self.id() => {}
            other => ctx.unauthorized(from, message_kind(&other)),
        }
    }

    /// Whether a member's chat sync or presence change is within its budget (takes from it).
    fn within_budget(&self, msg: &Message, from: PeerId, now: Instant) -> bool {
        match msg {
            Message::ChatSync { .. } => self.syncs.take(from, now),
            Message::Presence(_) => self.presences.take(from, now),
            _ => true,
        }
    }

    fn on_join(&mut self, ctx: &mut Ctx, from: PeerId, join: Join) {
        match self.admit(ctx, from, &join) {
            Ok(()) => {}
            Err(rejection) => {
                tracing::info!(%from, %rejection, "refused a joiner");
                ctx.send(from, Message::Rejected(rejection));
                ctx.unlink(from);
            }
        }
    }

    /// Admission: the invite's signature and lifetime first (no database work for a forged or
    /// stale invite), then what the database says of this peer and invite. A database error
    /// refuses. A revoked invite admits no new peer, but members who joined with it may come back
    /// (kicking or banning is how a member is put out).
    fn admit(&mut self, ctx: &mut Ctx, from: PeerId, join: &Join) -> Result<(), Rejection> {
        let id = self.id();
        let invite = &join.invite;
        if invite.party_id() != id {
            return Err(Rejection::UnknownParty);
        }
        let now = ctx.clock.unix();
        invite.check(now).map_err(Rejection::Invite)?;
        let standing = ctx.store.standing(id, invite.id(), from).map_err(|e| {
            tracing::warn!("cannot read admission records: {e:#}");
            Rejection::CannotCheck
        })?;
        if standing.banned {
            return Err(Rejection::Banned);
        }
        if standing.kicked {
            return Err(Rejection::Kicked);
        }
        let revoked = standing.revoked && !standing.returning;
        invite.admit(now, revoked, standing.uses_by_others).map_err(Rejection::Invite)?;
        if !self.roster.contains(&from) && self.roster.len() >= MAX_MEMBERS {
            return Err(Rejection::PartyFull { max: MAX_MEMBERS as u32 });
        }
        if let Err(e) = ctx.store.record_invite_use(id, invite.id(), from) {
            tracing::warn!("cannot record an invite use: {e:#}");
            return Err(Rejection::CannotCheck);
        }

        let (name, new) = self.roster.admit(from, &join.name, join.addrs.clone());
        tracing::info!(peer = %from, %name, new, "admitted");
        if !new {
            ctx.rejoined(from);
        }
        ctx.link(from, join.addrs.clone());
        ctx.send(
            from,
            Message::Welcome(Welcome { roster: self.roster.snapshot(), chat_head: self.chat.head() }),
        );
        // Everyone else learns of the newcomer (or its new addresses) from the new roster.
        let roster = Message::Roster(self.roster.snapshot());
        for m in self.roster.others().filter(|m| m.peer != from) {
            ctx.send(m.peer, roster.clone());
        }
        if new {
            ctx.emit(NodeEvent::MemberJoined { peer: from, name });
        }
        Ok(())
    }

    fn order_chat(&mut self, ctx: &mut Ctx, from: PeerId, nonce: u64, text: String, now: Instant) {
        let limited = from != ctx.me;
        let seq = match self.chat.submit(from, nonce, now, limited) {
            Submission::Accept { seq } => seq,
            Submission::Duplicate => return,
            Submission::RateLimited => {
                tracing::debug!(%from, "chat rate limit");
                return Counters::bump(&ctx.counters.dropped_rate_limited);
            }
        };
        let name = self.roster.get(&from).map(|m| m.name.clone()).unwrap_or_default();
        let message = ChatMessage { seq, from, name, text, ts_ms: ctx.clock.now_ms(), nonce };
        let result = ctx.store.append_chat(self.id(), &message);
        ctx.check_store("save a chat message", result);
        ctx.emit(chat_event(&message, false));
        self.broadcast(ctx, &Message::Chat(message));
    }

    pub(super) fn chat(&mut self, ctx: &mut Ctx, text: String) -> Result<()> {
        let me = ctx.me;
        self.order_chat(ctx, me, rand::random(), text, Instant::now());
        Ok(())
    }

    fn remove(&mut self, ctx: &mut Ctx, peer: PeerId, reason: LeaveReason) {
        if let Some(member) = self.roster.remove(&peer, reason) {
            self.chat.forget(&peer);
            ctx.unlink(peer);
            ctx.emit(NodeEvent::MemberLeft { peer, name: member.name, reason });
            self.publish_roster(ctx);
        }
    }

    pub(super) fn on_disconnected(&mut self, ctx: &mut Ctx, peer: PeerId) {
        self.remove(ctx, peer, LeaveReason::Timeout);
    }

    pub(super) fn invite(&mut self, ctx: &mut Ctx, terms: InviteTerms) -> Result<JoinLink> {
        let link = JoinLink::mint(&ctx.key, self.party.salt(), terms, ctx.clock.unix(), ctx.addrs.clone());
        ctx.store.record_invite(link.invite())?;
        let invite = link.invite();
        ctx.emit(NodeEvent::Link {
            link: link.to_string(),
            invite: invite.id(),
            expires: invite.expires_at(),
            max_uses: invite.max_uses().map(|n| n.get()),
        });
        Ok(link)
    }

    pub(super) fn revoke(&mut self, ctx: &mut Ctx, target: RevokeTarget) -> Result<Vec<InviteId>> {
        let ids = match target {
            RevokeTarget::All => ctx.store.live_invites(self.id(), ctx.clock.unix())?,
            RevokeTarget::One(id) => vec![id],
        };
        ctx.store.revoke_invites(self.id(), &ids)?;
        ctx.emit(NodeEvent::Revoked { invites: ids.clone() });
        Ok(ids)
    }

    pub(super) fn kick(&mut self, ctx: &mut Ctx, name: &str, ban: bool) -> Result<()> {
        let found = self.roster.find_by_name(name);
        let member = match found.as_slice() {
            [] => bail!("no member named {name:?}"),
            [m] => (*m).clone(),
            _ => bail!("several members are named {name:?}; use the exact name"),
        };
        if member.peer == ctx.me {
            bail!("you cannot kick yourself; use /end to end the party");
        }
        if ban {
            // The invites the member joined with are revoked too: a fresh identity cannot use them.
            let revoked = ctx.store.ban(self.id(), member.peer, &member.name)?;
            if !revoked.is_empty() {
                ctx.emit(NodeEvent::Revoked { invites: revoked });
            }
        } else {
            ctx.store.kick(self.id(), member.peer)?;
        }
        ctx.send(member.peer, Message::Kicked { banned: ban });
        self.remove(ctx, member.peer, if ban { LeaveReason::Banned } else { LeaveReason::Kicked });
        Ok(())
    }

    pub(super) fn set_presence(&mut self, ctx: &mut Ctx, presence: Presence) {
        let me = ctx.me;
        if self.roster.set_presence(&me, presence) {
            self.publish_roster(ctx);
        }
    }

    /// Goes offline: members are told, and wait for the host to come back.
    pub(super) fn leave(self, ctx: &mut Ctx) {
        self.broadcast(ctx, &Message::Leave);
        for m in self.roster.others() {
            ctx.unlink(m.peer);
        }
        ctx.emit(NodeEvent::Left);
    }

    /// Ends the party for good: its links stop working.
    pub(super) fn end(&mut self, ctx: &mut Ctx) {
        self.broadcast(ctx, &Message::PartyEnded);
        for m in self.roster.others() {
            ctx.unlink(m.peer);
        }
        let result = ctx.store.end_owned_party(self.id(), ctx.clock.unix());
        ctx.check_store("mark the party ended", result);
        ctx.emit(NodeEvent::PartyEnded);
    }
}

pub(super) fn chat_event(m: &ChatMessage, history: bool) -> NodeEvent {
    NodeEvent::Chat {
        seq: m.seq,
        peer: m.from,
        from: m.name.clone(),
        text: m.text.clone(),
        ts_ms: m.ts_ms,
        history,
    }
}
