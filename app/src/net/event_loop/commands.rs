//! Commands from the [`super::super::Node`] handle, carried out on the event loop: party
//! commands go to the engine, voice ones to the voice bridge, plugin messages to the links.

use std::time::Instant;

use libp2p::PeerId;
use partyline_protocol::wire::{Message, Presence};

use super::super::Command;
use super::super::voice_bridge::VoiceControl;
use super::EventLoop;

impl EventLoop {
    pub(super) fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::WaitReady(reply) => match &mut self.ready {
                Some(waiters) => waiters.push(reply),
                None => drop(reply.send(())),
            },
            Command::Host { fresh, reply } => {
                let _ = reply.send(self.engine.host(fresh));
            }
            Command::Join { link, reply } => {
                let _ = reply.send(self.engine.join(*link, now));
            }
            Command::Chat { text, reply } => {
                let _ = reply.send(self.engine.chat(text));
            }
            Command::Invite { terms, reply } => {
                let _ = reply.send(self.engine.invite(terms));
            }
            Command::Revoke { target, reply } => {
                let _ = reply.send(self.engine.revoke(target));
            }
            Command::Kick { name, ban, reply } => {
                let _ = reply.send(self.engine.kick(&name, ban));
            }
            Command::Presence { presence, reply } => {
                let result = self.engine.set_presence(presence);
                if result.is_ok() && self.voice.is_some() {
                    let _ = self.voice_control(VoiceControl::Muted(presence == Presence::Muted));
                }
                let _ = reply.send(result);
            }
            Command::Voice { control, reply } => {
                let _ = reply.send(self.voice_control(control));
            }
            // The voice thread answers; the caller waits for it, not this loop.
            Command::VoiceStats(reply) => match &self.voice {
                Some(voice) => voice.stats(reply),
                None => drop(reply.send(Err(anyhow::anyhow!("voice is off")))),
            },
            Command::Plugin { to, plugin, data, reply } => {
                let _ = reply.send(self.plugin_message(to, plugin, data));
            }
            Command::Members(reply) => {
                let _ = reply.send(self.members_now());
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.counters.snapshot());
            }
            Command::Addrs(reply) => {
                let _ = reply.send(self.own.all());
            }
            Command::Leave(reply) => {
                let _ = reply.send(self.engine.leave());
            }
            Command::End(reply) => {
                let _ = reply.send(self.engine.end());
            }
            Command::Shutdown(reply) => self.begin_shutdown(Some(reply)),
        }
    }

    fn voice_control(&mut self, control: VoiceControl) -> anyhow::Result<()> {
        let members = self.members.now();
        match &mut self.voice {
            Some(voice) => voice.control(control, &members),
            None => Err(anyhow::anyhow!("voice is off")),
        }
    }

    fn plugin_message(&mut self, to: Option<PeerId>, plugin: String, data: Vec<u8>) -> anyhow::Result<()> {
        let others: Vec<PeerId> =
            self.engine.members()?.into_iter().filter(|m| !m.me).map(|m| m.peer).collect();
        let to = match to {
            Some(peer) if others.contains(&peer) => vec![peer],
            Some(peer) => anyhow::bail!("{peer} is not in the party"),
            None => others,
        };
        for peer in to {
            self.links.send(peer, Message::Plugin { plugin: plugin.clone(), data: data.clone() });
        }
        Ok(())
    }

    /// Whether `peer` is another member of our party.
    pub(super) fn is_member(&self, peer: PeerId) -> bool {
        self.engine.members().is_ok_and(|ms| ms.iter().any(|m| m.peer == peer && !m.me))
    }
}
