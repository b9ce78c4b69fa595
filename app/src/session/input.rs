//! Lines typed into the headless node: chat, or a `/command`.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use partyline_protocol::InviteId;
use partyline_protocol::wire::Presence;

use crate::net::VoiceControl;
use crate::party::RevokeTarget;
use crate::plugins::Permission;
use crate::voice::{VoiceMode, parse_pose};

pub(crate) const HELP: &str = "\
Type a line to chat. Commands:
  /members                 who is in the party and how you reach them
  /invite [DUR] [uses=N]   a fresh link (owner), e.g. /invite 2h uses=3
  /revoke [ID|all]         stop invite links from working (owner; default all)
  /kick NAME, /ban NAME    remove a member (owner); a ban keeps them out
  /away, /back, /mute, /unmute   your presence (muted: your microphone is off)
  /deafen, /undeafen       hear nobody (and send nothing)
  /ptt down, /ptt up       the push-to-talk key
  /mode voice|ptt|latch    voice activation, push-to-talk, or push-to-talk latch
  /volume NAME PERCENT     a member's volume (100 = as sent, up to 200)
  /silence NAME, /unsilence NAME   stop or start hearing a member
  /pos X Y Z [YAW], /pos off       your position in metres, yaw in degrees
  /mic NAME, /speakers NAME        another device: default, none, or part of its name
  /headset off             back to this machine's microphone and speakers from the companion page's
  /stats                   what this node dropped from other peers
  /plugins                 the running plugins and how they are doing
  /plugin ID ACTION [VALUE]  press a button (or submit an input) of a plugin's panel
  /restart-plugin ID       start a stopped plugin again
  /grant-plugin ID [PERMS|all]     allow what a plugin asks for (comma-separated; default all)
  /allow-path, /deny-path  share (or not) the path you typed into a plugin's panel with it
  /share PATH              share a game's folder with the party (game store)
  /games                   games here, in the party and in the store
  /get GAME                download a game from every member who has it, into the library
  /send PATH NAME          offer a file or folder to a member (file transfer)
  /transfers               downloads and shared content, and how far they are
  /cancel ID|NAME          stop a download and throw away what it wrote
  /join LINK               leave this party and join the one of LINK
  /accept-link, /decline-link   join the party of a link opened from outside, or stay
  /host                    host your own party (when in none)
  /leave                   leave the party (as owner: go offline)
  /end                     end the party for good (owner)
  /pair-device             pair a phone or handheld (its plugin: partyline plugins enable companion)
  /confirm-device CODE     pair the device that shows this code
  /devices                 the paired devices
  /revoke-device NAME      unpair a device
  //text                   chat a line that starts with /";

#[derive(Debug, PartialEq)]
pub enum Input {
    Chat(String),
    Members,
    Invite {
        expires: Option<Duration>,
        uses: Option<NonZeroU32>,
    },
    Revoke(RevokeTarget),
    Kick {
        name: String,
        ban: bool,
    },
    Presence(Presence),
    Voice(VoiceControl),
    Stats,
    Plugins,
    PluginAction {
        plugin: String,
        id: String,
        value: Option<String>,
    },
    RestartPlugin(String),
    /// Grant a running plugin these permissions (`None`: all it asks for).
    GrantPlugin {
        plugin: String,
        permissions: Option<Vec<Permission>>,
    },
    /// Share a game's folder (game-store plugin).
    Share(PathBuf),
    Games,
    /// Download a game (game-store plugin).
    Get(String),
    /// Offer a file or folder to a member (file-transfer plugin).
    Send {
        path: PathBuf,
        to: String,
    },
    Transfers,
    Cancel(String),
    /// Join the party of this link (leaving the current one).
    Open(String),
    /// Join the party of the link that came from outside (leaving this one).
    AcceptLink,
    /// Stay: forget the link that came from outside.
    DeclineLink,
    /// Share the path typed into a plugin's panel with the plugin (`true`), or keep it from it.
    AnswerPath(bool),
    /// Host your own party (when in none).
    Host,
    Leave,
    End,
    Companion(CompanionInput),
    Help,
    Nothing,
}

/// What the user does with the companion gateway.
#[derive(Debug, PartialEq)]
pub enum CompanionInput {
    Pair,
    Confirm(String),
    Devices,
    Revoke(String),
}

pub(crate) fn parse(line: &str) -> Result<Input, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Input::Nothing);
    }
    if let Some(text) = line.strip_prefix("//") {
        return Ok(Input::Chat(format!("/{text}")));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Input::Chat(line.to_owned()));
    };
    let (name, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
    let rest = rest.trim();
    let no_args =
        |input: Input| if rest.is_empty() { Ok(input) } else { Err(format!("/{name} takes no arguments")) };
    match name {
        "members" | "who" => no_args(Input::Members),
        "invite" => parse_invite(rest),
        "revoke" => match rest {
            "" | "all" => Ok(Input::Revoke(RevokeTarget::All)),
            id => id.parse::<InviteId>().map(|id| Input::Revoke(RevokeTarget::One(id))),
        },
        "kick" | "ban" if rest.is_empty() => Err(format!("/{name} needs a member's name")),
        "kick" => Ok(Input::Kick { name: rest.to_owned(), ban: false }),
        "ban" => Ok(Input::Kick { name: rest.to_owned(), ban: true }),
        "deafen" => no_args(Input::Voice(VoiceControl::Deafened(true))),
        "undeafen" => no_args(Input::Voice(VoiceControl::Deafened(false))),
        "ptt" => match rest {
            "down" | "on" | "press" => Ok(Input::Voice(VoiceControl::Key(true))),
            "up" | "off" | "release" => Ok(Input::Voice(VoiceControl::Key(false))),
            _ => Err("usage: /ptt down, /ptt up".into()),
        },
        "mode" => rest.parse::<VoiceMode>().map(|m| Input::Voice(VoiceControl::Mode(m))),
        "volume" => parse_volume(rest),
        "silence" | "unsilence" if rest.is_empty() => Err(format!("/{name} needs a member's name")),
        "silence" => Ok(Input::Voice(VoiceControl::MuteMember { name: rest.to_owned(), muted: true })),
        "unsilence" => Ok(Input::Voice(VoiceControl::MuteMember { name: rest.to_owned(), muted: false })),
        "mic" | "speakers" if rest.is_empty() => {
            Err(format!("/{name} needs a device: default, none, or part of its name (`partyline devices`)"))
        }
        "mic" => Ok(Input::Voice(VoiceControl::Input(rest.to_owned()))),
        "speakers" => Ok(Input::Voice(VoiceControl::Output(rest.to_owned()))),
        "pos" if rest == "off" => Ok(Input::Voice(VoiceControl::Pose(None))),
        "headset" if rest == "off" => Ok(Input::Voice(VoiceControl::Headset(None))),
        "pos" => parse_pose(rest).map(|p| Input::Voice(VoiceControl::Pose(Some(p)))),
        "away" => no_args(Input::Presence(Presence::Away)),
        "back" | "unmute" => no_args(Input::Presence(Presence::Online)),
        "mute" => no_args(Input::Presence(Presence::Muted)),
        "stats" => no_args(Input::Stats),
        "plugins" => no_args(Input::Plugins),
        "plugin" => {
            let mut words = rest.splitn(3, char::is_whitespace);
            match (words.next().filter(|w| !w.is_empty()), words.next()) {
                (Some(plugin), Some(id)) => Ok(Input::PluginAction {
                    plugin: plugin.to_owned(),
                    id: id.to_owned(),
                    value: words.next().map(|v| v.trim().to_owned()),
                }),
                _ => Err("usage: /plugin ID ACTION [VALUE]".into()),
            }
        }
        "restart-plugin" if rest.is_empty() => Err("/restart-plugin needs a plugin's id".into()),
        "restart-plugin" => Ok(Input::RestartPlugin(rest.to_owned())),
        "grant-plugin" => {
            let (plugin, list) = rest.split_once(char::is_whitespace).unwrap_or((rest, "all"));
            if plugin.is_empty() {
                return Err("usage: /grant-plugin ID [PERMS|all]".into());
            }
            let permissions = match list.trim() {
                "all" | "" => None,
                list => Some(
                    list.split(',')
                        .map(|p| p.trim().parse::<Permission>().map_err(|e| e.to_string()))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            Ok(Input::GrantPlugin { plugin: plugin.to_owned(), permissions })
        }
        "share" if rest.is_empty() => Err("/share needs the path of a game's folder".into()),
        "share" => Ok(Input::Share(PathBuf::from(rest))),
        "games" => no_args(Input::Games),
        "get" if rest.is_empty() => Err("/get needs a game's name (/games lists them)".into()),
        "get" => Ok(Input::Get(rest.to_owned())),
        "send" => match rest.rsplit_once(char::is_whitespace) {
            Some((path, to)) if !path.trim().is_empty() => {
                Ok(Input::Send { path: PathBuf::from(path.trim()), to: to.to_owned() })
            }
            _ => Err("usage: /send PATH NAME".into()),
        },
        "transfers" => no_args(Input::Transfers),
        "cancel" if rest.is_empty() => Err("/cancel needs a download's id or name (/transfers)".into()),
        "cancel" => Ok(Input::Cancel(rest.to_owned())),
        "join" if rest.is_empty() => Err("/join needs a partyline:// link".into()),
        "join" => Ok(Input::Open(rest.to_owned())),
        "accept-link" => no_args(Input::AcceptLink),
        "decline-link" => no_args(Input::DeclineLink),
        "allow-path" => no_args(Input::AnswerPath(true)),
        "deny-path" => no_args(Input::AnswerPath(false)),
        "host" => no_args(Input::Host),
        "leave" | "quit" | "exit" => no_args(Input::Leave),
        "end" => no_args(Input::End),
        "pair-device" => no_args(Input::Companion(CompanionInput::Pair)),
        "confirm-device" if rest.is_empty() => Err("/confirm-device needs the code the device shows".into()),
        "confirm-device" => Ok(Input::Companion(CompanionInput::Confirm(rest.to_owned()))),
        "devices" => no_args(Input::Companion(CompanionInput::Devices)),
        "revoke-device" if rest.is_empty() => Err("/revoke-device needs a device's name (/devices)".into()),
        "revoke-device" => Ok(Input::Companion(CompanionInput::Revoke(rest.to_owned()))),
        "help" | "?" => Ok(Input::Help),
        other => Err(format!("unknown command /{other}; /help lists the commands")),
    }
}

/// `NAME PERCENT`: the name may have spaces; the last word is the volume.
fn parse_volume(args: &str) -> Result<Input, String> {
    let usage = || "usage: /volume NAME PERCENT (0 to 200)".to_owned();
    let (name, percent) = args.rsplit_once(char::is_whitespace).ok_or_else(usage)?;
    let percent: f32 = percent.trim_end_matches('%').parse().map_err(|_| usage())?;
    if !(0.0..=200.0).contains(&percent) || name.trim().is_empty() {
        return Err(usage());
    }
    Ok(Input::Voice(VoiceControl::Volume { name: name.trim().to_owned(), volume: percent / 100.0 }))
}

fn parse_invite(args: &str) -> Result<Input, String> {
    let (mut expires, mut uses) = (None, None);
    for token in args.split_whitespace() {
        let (key, value) = token.split_once('=').unwrap_or(("", token));
        let as_uses = |v: &str| {
            v.parse::<NonZeroU32>().map_err(|_| format!("uses must be a whole number above 0, not {v:?}"))
        };
        let as_duration = |v: &str| {
            humantime::parse_duration(v).map_err(|e| format!("bad duration {v:?} ({e}); try 30m, 2h or 1day"))
        };
        match key {
            "uses" => uses = Some(as_uses(value)?),
            "expires" => expires = Some(as_duration(value)?),
            "" if value.chars().all(|c| c.is_ascii_digit()) => uses = Some(as_uses(value)?),
            "" => expires = Some(as_duration(value)?),
            other => return Err(format!("unknown /invite option {other:?}; use expires=DUR or uses=N")),
        }
    }
    Ok(Input::Invite { expires, uses })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_and_commands() {
        assert_eq!(parse("  hello there "), Ok(Input::Chat("hello there".into())));
        assert_eq!(parse("//shrug"), Ok(Input::Chat("/shrug".into())));
        assert_eq!(parse(""), Ok(Input::Nothing));
        assert_eq!(parse("/members"), Ok(Input::Members));
        assert_eq!(parse("/kick Big Bob"), Ok(Input::Kick { name: "Big Bob".into(), ban: false }));
        assert_eq!(parse("/ban bob"), Ok(Input::Kick { name: "bob".into(), ban: true }));
        assert_eq!(parse("/revoke"), Ok(Input::Revoke(RevokeTarget::All)));
        assert_eq!(parse("/mute"), Ok(Input::Presence(Presence::Muted)));
        assert_eq!(parse("/leave"), Ok(Input::Leave));
        assert_eq!(parse("/accept-link"), Ok(Input::AcceptLink));
        assert_eq!(parse("/decline-link"), Ok(Input::DeclineLink));
        assert_eq!(parse("/allow-path"), Ok(Input::AnswerPath(true)));
        assert_eq!(parse("/deny-path"), Ok(Input::AnswerPath(false)));
    }

    #[test]
    fn voice_commands() {
        assert_eq!(parse("/ptt down"), Ok(Input::Voice(VoiceControl::Key(true))));
        assert_eq!(parse("/ptt up"), Ok(Input::Voice(VoiceControl::Key(false))));
        assert_eq!(parse("/mode latch"), Ok(Input::Voice(VoiceControl::Mode(VoiceMode::PushToTalkLatch))));
        assert_eq!(
            parse("/volume Big Bob 150%"),
            Ok(Input::Voice(VoiceControl::Volume { name: "Big Bob".into(), volume: 1.5 }))
        );
        assert!(parse("/volume bob 300").is_err());
        assert_eq!(parse("/deafen"), Ok(Input::Voice(VoiceControl::Deafened(true))));
        assert_eq!(parse("/pos off"), Ok(Input::Voice(VoiceControl::Pose(None))));
        assert_eq!(parse("/headset off"), Ok(Input::Voice(VoiceControl::Headset(None))));
        assert!(matches!(parse("/pos 1 2 3 90"), Ok(Input::Voice(VoiceControl::Pose(Some(_))))));
        assert!(parse("/pos 1").is_err());
        assert_eq!(parse("/mic USB Headset"), Ok(Input::Voice(VoiceControl::Input("USB Headset".into()))));
        assert_eq!(parse("/speakers none"), Ok(Input::Voice(VoiceControl::Output("none".into()))));
        assert!(parse("/mic").is_err());
        assert_eq!(
            parse("/plugin game-store search half life"),
            Ok(Input::PluginAction {
                plugin: "game-store".into(),
                id: "search".into(),
                value: Some("half life".into())
            })
        );
        assert_eq!(
            parse("/plugin template wave"),
            Ok(Input::PluginAction { plugin: "template".into(), id: "wave".into(), value: None })
        );
        assert!(parse("/plugin template").is_err());
        assert_eq!(
            parse("/grant-plugin template"),
            Ok(Input::GrantPlugin { plugin: "template".into(), permissions: None })
        );
        assert_eq!(
            parse("/grant-plugin template ui,storage"),
            Ok(Input::GrantPlugin {
                plugin: "template".into(),
                permissions: Some(vec![Permission::Ui, Permission::Storage])
            })
        );
        assert!(parse("/grant-plugin template root").is_err());
        assert_eq!(
            parse("/silence bob"),
            Ok(Input::Voice(VoiceControl::MuteMember { name: "bob".into(), muted: true }))
        );
    }

    #[test]
    fn transfer_commands() {
        assert_eq!(parse("/share /games/Star Fox"), Ok(Input::Share("/games/Star Fox".into())));
        assert!(parse("/share").is_err());
        assert_eq!(parse("/get Star Fox"), Ok(Input::Get("Star Fox".into())));
        assert_eq!(
            parse("/send /tmp/my file.zip bob"),
            Ok(Input::Send { path: "/tmp/my file.zip".into(), to: "bob".into() })
        );
        assert!(parse("/send bob").is_err());
        assert_eq!(parse("/transfers"), Ok(Input::Transfers));
        assert_eq!(parse("/cancel abc"), Ok(Input::Cancel("abc".into())));
    }

    #[test]
    fn companion_commands() {
        use CompanionInput as C;
        assert_eq!(parse("/pair-device"), Ok(Input::Companion(C::Pair)));
        assert_eq!(parse("/confirm-device 123456"), Ok(Input::Companion(C::Confirm("123456".into()))));
        assert!(parse("/confirm-device").is_err());
        assert_eq!(parse("/devices"), Ok(Input::Companion(C::Devices)));
        assert_eq!(parse("/revoke-device My Phone"), Ok(Input::Companion(C::Revoke("My Phone".into()))));
        assert!(parse("/revoke-device").is_err());
    }

    #[test]
    fn invite_options() {
        assert_eq!(parse("/invite"), Ok(Input::Invite { expires: None, uses: None }));
        assert_eq!(
            parse("/invite 2h uses=3"),
            Ok(Input::Invite { expires: Some(Duration::from_secs(7200)), uses: NonZeroU32::new(3) })
        );
        assert_eq!(
            parse("/invite 5 expires=1s"),
            Ok(Input::Invite { expires: Some(Duration::from_secs(1)), uses: NonZeroU32::new(5) })
        );
        assert!(parse("/invite uses=0").is_err());
        assert!(parse("/invite soon").unwrap_err().contains("bad duration"));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse("/kick").unwrap_err().contains("needs a member"));
        assert!(parse("/frobnicate").unwrap_err().contains("/help"));
        assert!(parse("/members now").unwrap_err().contains("no arguments"));
        assert!(parse("/revoke zz").is_err());
    }
}
