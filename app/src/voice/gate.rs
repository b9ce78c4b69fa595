//! The transmit gate: whether this member's microphone goes out to the party right now.
//!
//! Three modes: voice activation (open while the voice activity detector hears speech, and for a
//! hold time after), push-to-talk (open while the key is held, with a short release tail so the
//! last syllable is not clipped), and push-to-talk latch (each press toggles). Muting closes it
//! whatever the mode.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The analysis step: one VAD decision per 10 ms.
pub(crate) const STEP_MS: u32 = 10;

/// `voice.mode` in the settings, `--voice-mode` and `/mode`: one definition of the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VoiceMode {
    #[default]
    #[serde(rename = "voice", alias = "vad", alias = "voice-activation")]
    VoiceActivation,
    #[serde(rename = "ptt", alias = "push-to-talk")]
    PushToTalk,
    #[serde(rename = "latch", alias = "ptt-latch")]
    PushToTalkLatch,
}

impl fmt::Display for VoiceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::choice::name(self))
    }
}

impl FromStr for VoiceMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::choice::parse(s).map_err(|e| format!("voice mode: {e}"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateSettings {
    pub mode: VoiceMode,
    /// Voice probability (0..1) above which a 10 ms step counts as speech.
    pub threshold: f32,
    /// How long voice activation stays open after the last speech.
    pub hold_ms: u32,
    /// How long push-to-talk stays open after the key is released.
    pub release_ms: u32,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self { mode: VoiceMode::VoiceActivation, threshold: 0.5, hold_ms: 400, release_ms: 100 }
    }
}

pub(crate) struct Gate {
    settings: GateSettings,
    key_down: bool,
    latched: bool,
    muted: bool,
    /// Steps left before closing (hold or release tail).
    tail: u32,
    open: bool,
}

impl Gate {
    pub(crate) fn new(settings: GateSettings) -> Self {
        Self { settings, key_down: false, latched: false, muted: false, tail: 0, open: false }
    }

    pub(crate) fn set_mode(&mut self, mode: VoiceMode) {
        self.settings.mode = mode;
        self.latched = false;
        self.tail = 0;
    }

    /// Takes over what the user set on the gate of the microphone before this one: the mode,
    /// and the key held or latched (switching to the companion page's microphone while talking
    /// keeps talking).
    pub(crate) fn carry(&mut self, old: &Gate) {
        self.settings.mode = old.settings.mode;
        self.key_down = old.key_down;
        self.latched = old.latched;
    }

    pub(crate) fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// The push-to-talk key went down (`true`) or up.
    pub(crate) fn key(&mut self, down: bool) {
        if down && !self.key_down && self.settings.mode == VoiceMode::PushToTalkLatch {
            self.latched = !self.latched;
        }
        if !down && self.key_down && self.settings.mode == VoiceMode::PushToTalk {
            self.tail = self.settings.release_ms / STEP_MS;
        }
        self.key_down = down;
    }

    /// Whether the key holds the microphone open (push-to-talk) or has latched it; `None` in
    /// voice activation.
    pub(crate) fn keyed(&self) -> Option<bool> {
        match self.settings.mode {
            VoiceMode::VoiceActivation => None,
            VoiceMode::PushToTalk => Some(self.key_down),
            VoiceMode::PushToTalkLatch => Some(self.latched),
        }
    }

    /// One 10 ms step with the detector's voice probability; returns whether the gate is open.
    pub(crate) fn step(&mut self, voice_probability: f32) -> bool {
        let wanted = match self.settings.mode {
            VoiceMode::VoiceActivation => {
                if voice_probability >= self.settings.threshold {
                    self.tail = self.settings.hold_ms / STEP_MS;
                    true
                } else {
                    false
                }
            }
            VoiceMode::PushToTalk => self.key_down,
            VoiceMode::PushToTalkLatch => self.latched,
        };
        self.open = if self.muted {
            self.tail = 0;
            false
        } else if wanted {
            true
        } else if self.tail > 0 {
            self.tail -= 1;
            true
        } else {
            false
        };
        self.open
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Whether audio held back now may be sent when the gate opens: only in voice activation
    /// (push-to-talk sends from the press on) and never while muted.
    pub(crate) fn may_look_back(&self) -> bool {
        self.settings.mode == VoiceMode::VoiceActivation && !self.muted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(gate: &mut Gate, probs: &[f32]) -> Vec<bool> {
        probs.iter().map(|p| gate.step(*p)).collect()
    }

    #[test]
    fn voice_activation_holds_after_speech() {
        let mut gate = Gate::new(GateSettings { hold_ms: 30, ..GateSettings::default() });
        let open = run(&mut gate, &[0.1, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2]);
        assert_eq!(open, [false, true, true, true, true, false, false]);
    }

    #[test]
    fn push_to_talk_follows_the_key_with_a_release_tail() {
        let mut gate =
            Gate::new(GateSettings { mode: VoiceMode::PushToTalk, release_ms: 20, ..Default::default() });
        assert!(!gate.step(1.0), "speech alone does not open push-to-talk");
        assert!(!gate.may_look_back(), "nothing from before the press goes out");
        gate.key(true);
        assert!(gate.step(0.0));
        gate.key(false);
        assert_eq!(run(&mut gate, &[0.0, 0.0, 0.0]), [true, true, false]);
    }

    #[test]
    fn another_microphone_keeps_the_key_held_and_the_mode() {
        let mut old = Gate::new(GateSettings::default());
        old.set_mode(VoiceMode::PushToTalk);
        old.key(true);
        let mut new = Gate::new(GateSettings::default());
        new.carry(&old);
        assert_eq!(new.keyed(), Some(true), "still talking on the new microphone");
        assert!(new.step(0.0));
        new.key(false);
        assert_eq!(new.keyed(), Some(false));
    }

    #[test]
    fn latch_toggles_on_each_press() {
        let mut gate = Gate::new(GateSettings { mode: VoiceMode::PushToTalkLatch, ..Default::default() });
        gate.key(true);
        gate.key(false);
        assert!(gate.step(0.0), "first press: on");
        gate.key(true);
        assert!(!gate.step(0.0), "second press: off");
        gate.key(false);
        assert!(!gate.step(0.0));
    }

    #[test]
    fn mute_wins() {
        let mut gate = Gate::new(GateSettings::default());
        assert!(gate.may_look_back());
        gate.set_muted(true);
        assert!(!gate.may_look_back(), "nothing from while muted goes out later");
        assert!(!gate.step(1.0));
        gate.set_muted(false);
        assert!(gate.step(1.0));
        gate.set_muted(true);
        assert!(!gate.step(0.0), "no hold tail after muting");
    }

    #[test]
    fn modes_parse() {
        assert_eq!("ptt".parse::<VoiceMode>(), Ok(VoiceMode::PushToTalk));
        assert_eq!("latch".parse::<VoiceMode>(), Ok(VoiceMode::PushToTalkLatch));
        assert!("shout".parse::<VoiceMode>().is_err());
    }
}
