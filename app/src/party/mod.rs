//! The party engine: membership, roster, chat order, invites, kicks. No sockets and no tasks here:
//! the network event loop feeds it what arrived and what the user asked for, and carries out the
//! [`Action`]s it queues (send this, keep a link to that peer, tell the front end this).
//!
//! A node is in at most one party at a time, in one [`Role`]:
//! - **host**: it owns the party. It admits joiners (checking their invite), keeps the roster,
//!   numbers the chat so every member sees one order, and alone may kick, ban and mint or revoke
//!   invites. A party lives as long as its owner keeps hosting it; members wait and reconnect when
//!   the host goes away.
//! - **joining**, then **member**: it presented an invite and follows the host's roster and chat.
//!
//! Every member keeps a link to every other member (a full mesh) for voice; party control goes
//! through the host.

mod chat;
mod clock;
mod host;
mod member;
mod roster;
#[cfg(test)]
mod sim;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use libp2p::identity::{Keypair, ed25519};
use libp2p::{Multiaddr, PeerId};
use partyline_protocol::wire::{Message, Presence, Rejection};
use partyline_protocol::{InviteId, InviteTerms, JoinLink, PartyId};

use crate::events::{MemberInfo, NodeEvent};
use crate::stats::Counters;
use crate::store::Store;
pub(crate) use clock::WallClock;
use host::HostState;
use member::MemberState;

/// What the engine asks the network layer to do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Queue `msg` on the stream to `to`, opening one (and dialing) if needed.
    Send {
        to: PeerId,
        msg: Message,
    },
    /// Tell the transport where `peer` can be reached.
    Addresses {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
    /// Keep a stream to `peer` open, reopening it when it breaks, until [`Action::Unlink`].
    Link(PeerId),
    /// Stop keeping a stream to `peer`: flush what is queued, close it, and disconnect.
    Unlink(PeerId),
    /// `peer` came back (restarted, or moved networks) while still a member: connections older
    /// than its newest may be dead ones that still take writes, so drop them and reopen the
    /// stream to it before anything more is sent.
    Rejoined(PeerId),
    Emit(NodeEvent),
}

/// Which invites to revoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeTarget {
    /// Every invite still live.
    All,
    One(InviteId),
}

/// What every role needs: who we are, the store, and the queue of actions.
pub(crate) struct Ctx {
    pub(crate) me: PeerId,
    pub(crate) key: ed25519::Keypair,
    pub(crate) name: String,
    pub(crate) store: Store,
    pub(crate) counters: Arc<Counters>,
    /// Our advertised addresses, best first.
    pub(crate) addrs: Vec<Multiaddr>,
    pub(crate) join_timeout: Duration,
    pub(crate) clock: WallClock,
    presence: Presence,
    out: VecDeque<Action>,
}

impl Ctx {
    pub(crate) fn send(&mut self, to: PeerId, msg: Message) {
        self.out.push_back(Action::Send { to, msg });
    }

    pub(crate) fn emit(&mut self, event: NodeEvent) {
        self.out.push_back(Action::Emit(event));
    }

    pub(crate) fn link(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if !addrs.is_empty() {
            self.out.push_back(Action::Addresses { peer, addrs });
        }
        self.out.push_back(Action::Link(peer));
    }

    pub(crate) fn rejoined(&mut self, peer: PeerId) {
        self.out.push_back(Action::Rejoined(peer));
    }

    pub(crate) fn unlink(&mut self, peer: PeerId) {
        self.out.push_back(Action::Unlink(peer));
    }

    pub(crate) fn unauthorized(&self, from: PeerId, what: &str) {
        tracing::debug!(%from, what, "dropped a message this peer may not send");
        Counters::bump(&self.counters.dropped_unauthorized);
    }

    /// Storage failures are reported and survived: the party goes on in memory.
    pub(crate) fn check_store<T>(&mut self, what: &str, result: Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.emit(NodeEvent::Error { message: format!("could not {what}: {e:#}") });
                None
            }
        }
    }
}

enum Role {
    Idle,
    Host(Box<HostState>),
    Member(Box<MemberState>),
}

pub(crate) struct Engine {
    ctx: Ctx,
    role: Role,
}

impl Engine {
    pub(crate) fn new(
        store: Store,
        keypair: &Keypair,
        name: String,
        counters: Arc<Counters>,
        join_timeout: Duration,
    ) -> Result<Self> {
        let key = keypair
            .clone()
            .try_into_ed25519()
            .map_err(|_| anyhow::anyhow!("identity key must be Ed25519"))?;
        let ctx = Ctx {
            me: keypair.public().to_peer_id(),
            key,
            name,
            store,
            counters,
            addrs: Vec::new(),
            join_timeout,
            clock: WallClock::system(),
            presence: Presence::Online,
            out: VecDeque::new(),
        };
        Ok(Self { ctx, role: Role::Idle })
    }

    /// The same engine reading wall time from `clock` (tests move it).
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: WallClock) -> Self {
        self.ctx.clock = clock;
        self
    }

    pub(crate) fn take_actions(&mut self) -> impl Iterator<Item = Action> + '_ {
        self.ctx.out.drain(..)
    }

    pub(crate) fn party(&self) -> Option<PartyId> {
        match &self.role {
            Role::Idle => None,
            Role::Host(h) => Some(h.id()),
            Role::Member(m) => Some(m.party_id()),
        }
    }

    fn ensure_idle(&self) -> Result<()> {
        if let Some(party) = self.party() {
            bail!("already in party {party}; leave it first");
        }
        Ok(())
    }

    /// Hosts this node's current party, or a new one if `fresh` or if there is none.
    pub(crate) fn host(&mut self, fresh: bool) -> Result<PartyId> {
        self.ensure_idle()?;
        let host = HostState::start(&mut self.ctx, fresh)?;
        let id = host.id();
        self.role = Role::Host(Box::new(host));
        Ok(id)
    }

    pub(crate) fn join(&mut self, link: JoinLink, now: Instant) -> Result<()> {
        self.ensure_idle()?;
        if link.owner() == self.ctx.me {
            bail!("this link is for a party you own; run `partyline host` to host it");
        }
        let member = MemberState::start(&mut self.ctx, link, now)?;
        self.role = Role::Member(Box::new(member));
        Ok(())
    }

    pub(crate) fn chat(&mut self, text: String) -> Result<()> {
        let text = text.trim().to_owned();
        if text.is_empty() {
            bail!("empty message");
        }
        if text.len() > partyline_protocol::wire::MAX_CHAT_LEN {
            bail!("message is {} bytes; the limit is {}", text.len(), partyline_protocol::wire::MAX_CHAT_LEN);
        }
        match &mut self.role {
            Role::Idle => bail!("not in a party"),
            Role::Host(h) => h.chat(&mut self.ctx, text),
            Role::Member(m) => m.chat(&mut self.ctx, text),
        }
    }

    fn host_mut(&mut self) -> Result<(&mut HostState, &mut Ctx)> {
        match &mut self.role {
            Role::Host(h) => Ok((h, &mut self.ctx)),
            Role::Member(_) => bail!("only the party's owner can do that"),
            Role::Idle => bail!("not in a party"),
        }
    }

    pub(crate) fn invite(&mut self, terms: InviteTerms) -> Result<JoinLink> {
        let (h, ctx) = self.host_mut()?;
        h.invite(ctx, terms)
    }

    pub(crate) fn revoke(&mut self, target: RevokeTarget) -> Result<Vec<InviteId>> {
        let (h, ctx) = self.host_mut()?;
        h.revoke(ctx, target)
    }

    pub(crate) fn kick(&mut self, name: &str, ban: bool) -> Result<()> {
        let (h, ctx) = self.host_mut()?;
        h.kick(ctx, name, ban)
    }

    pub(crate) fn end(&mut self) -> Result<()> {
        let (h, ctx) = self.host_mut()?;
        h.end(ctx);
        self.role = Role::Idle;
        Ok(())
    }

    pub(crate) fn set_presence(&mut self, presence: Presence) -> Result<()> {
        self.ctx.presence = presence;
        match &mut self.role {
            Role::Idle => bail!("not in a party"),
            Role::Host(h) => h.set_presence(&mut self.ctx, presence),
            Role::Member(m) => m.set_presence(&mut self.ctx, presence),
        }
        Ok(())
    }

    /// Members as this node sees them; the caller fills in [`MemberInfo::path`].
    pub(crate) fn members(&self) -> Result<Vec<MemberInfo>> {
        match &self.role {
            Role::Idle => bail!("not in a party"),
            Role::Host(h) => Ok(h.members(&self.ctx)),
            Role::Member(m) => Ok(m.members(&self.ctx)),
        }
    }

    pub(crate) fn member_name(&self, peer: &PeerId) -> Option<String> {
        self.members().ok()?.into_iter().find(|m| m.peer == *peer).map(|m| m.name)
    }

    pub(crate) fn is_member(&self, peer: &PeerId) -> bool {
        self.members().is_ok_and(|ms| ms.iter().any(|m| m.peer == *peer && !m.me))
    }

    /// Leaves the party (a host goes offline; its members wait for it to come back).
    pub(crate) fn leave(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Idle => bail!("not in a party"),
            Role::Host(h) => h.leave(&mut self.ctx),
            Role::Member(m) => m.leave(&mut self.ctx),
        }
        Ok(())
    }

    /// Remembers numbers such as listening ports for the next start.
    pub(crate) fn remember(&mut self, key: &str, value: Option<u16>) {
        if let Some(value) = value {
            let result = self.ctx.store.set_meta(key, i64::from(value));
            self.ctx.check_store("remember the listening port", result);
        }
    }

    pub(crate) fn set_addrs(&mut self, addrs: Vec<Multiaddr>) {
        if self.ctx.addrs == addrs {
            return;
        }
        self.ctx.addrs = addrs;
        if let Role::Host(h) = &mut self.role {
            h.addrs_changed(&mut self.ctx);
        }
    }

    pub(crate) fn on_message(&mut self, from: PeerId, msg: Message, now: Instant) {
        let finished = match &mut self.role {
            Role::Idle => {
                match msg {
                    Message::Join(join) => {
                        // A party of ours that was not ended is only not hosted yet (say, this
                        // node is starting): its members should keep trying.
                        let ended = self.ctx.store.owned_party_ended(join.invite.party_id()).ok().flatten();
                        let rejection =
                            if ended == Some(false) { Rejection::NotHosted } else { Rejection::UnknownParty };
                        self.ctx.send(from, Message::Rejected(rejection));
                        self.ctx.unlink(from);
                    }
                    other => self.ctx.unauthorized(from, message_kind(&other)),
                }
                false
            }
            Role::Host(h) => {
                h.on_message(&mut self.ctx, from, msg, now);
                false
            }
            Role::Member(m) => m.on_message(&mut self.ctx, from, msg, now),
        };
        if finished {
            self.role = Role::Idle;
        }
    }

    pub(crate) fn on_connected(&mut self, peer: PeerId, now: Instant) {
        if let Role::Member(m) = &mut self.role {
            m.on_connected(&mut self.ctx, peer, now);
        }
    }

    /// `peer` has had no connection for a while.
    pub(crate) fn on_disconnected(&mut self, peer: PeerId, now: Instant) {
        match &mut self.role {
            Role::Idle => {}
            Role::Host(h) => h.on_disconnected(&mut self.ctx, peer),
            Role::Member(m) => m.on_disconnected(&mut self.ctx, peer, now),
        }
    }

    /// Opening a stream to `peer` failed (could not dial, or it refused).
    pub(crate) fn on_link_failed(&mut self, peer: PeerId, error: &str, now: Instant) {
        if let Role::Member(m) = &mut self.role {
            m.on_link_failed(peer, error, now);
        }
    }

    pub(crate) fn tick(&mut self, now: Instant) {
        let finished = match &mut self.role {
            Role::Member(m) => m.tick(&mut self.ctx, now),
            _ => false,
        };
        if finished {
            self.role = Role::Idle;
        }
    }
}

/// A short name of a message's kind, for logs and counters.
pub(crate) fn message_kind(msg: &Message) -> &'static str {
    match msg {
        Message::Join(_) => "join",
        Message::Welcome(_) => "welcome",
        Message::Rejected(_) => "rejected",
        Message::Hello { .. } => "hello",
        Message::Roster(_) => "roster",
        Message::ChatSubmit { .. } => "chat-submit",
        Message::Chat(_) => "chat",
        Message::ChatSync { .. } => "chat-sync",
        Message::ChatPage { .. } => "chat-page",
        Message::Presence(_) => "presence",
        Message::Leave => "leave",
        Message::Kicked { .. } => "kicked",
        Message::PartyEnded => "party-ended",
        Message::VoiceReport { .. } => "voice-report",
        Message::Plugin { .. } => "plugin",
        Message::VoiceEndpoint { .. } => "voice-endpoint",
    }
}
