//! Push-to-talk from the overlay: the key's state machine (hold or latch, key auto-repeat
//! ignored) and what it tells the node. The voice engine keeps its own gate; this side decides
//! what the on-air indicator promises before the first frame leaves.

use bevy::prelude::*;

use crate::net::VoiceControl;
use crate::voice::VoiceMode;

#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ptt {
    mode: VoiceMode,
    down: bool,
    latched: bool,
}

impl Ptt {
    pub(crate) fn new(mode: VoiceMode) -> Self {
        Self { mode, down: false, latched: false }
    }

    pub(crate) fn mode(&self) -> VoiceMode {
        self.mode
    }

    /// The key went down; auto-repeat presses while it is held say nothing new.
    pub(crate) fn press(&mut self) -> Option<VoiceControl> {
        if self.down || self.mode == VoiceMode::VoiceActivation {
            return None;
        }
        self.down = true;
        if self.mode == VoiceMode::PushToTalkLatch {
            self.latched = !self.latched;
        }
        Some(VoiceControl::Key(true))
    }

    pub(crate) fn release(&mut self) -> Option<VoiceControl> {
        if !self.down {
            return None;
        }
        self.down = false;
        Some(VoiceControl::Key(false))
    }

    /// A new mode starts unlatched, as the engine's gate does.
    pub(crate) fn set_mode(&mut self, mode: VoiceMode) -> VoiceControl {
        *self = Self::new(mode);
        VoiceControl::Mode(mode)
    }

    /// Whether the key holds (or has latched) the microphone open.
    pub(crate) fn keyed(&self) -> bool {
        match self.mode {
            VoiceMode::VoiceActivation => false,
            VoiceMode::PushToTalk => self.down,
            VoiceMode::PushToTalkLatch => self.latched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_sends_down_and_up_once_each_and_ignores_repeats() {
        let mut p = Ptt::new(VoiceMode::PushToTalk);
        assert_eq!(p.press(), Some(VoiceControl::Key(true)));
        assert!(p.keyed());
        assert_eq!(p.press(), None, "auto-repeat");
        assert_eq!(p.release(), Some(VoiceControl::Key(false)));
        assert!(!p.keyed());
        assert_eq!(p.release(), None);
    }

    #[test]
    fn latch_toggles_on_each_press() {
        let mut p = Ptt::new(VoiceMode::PushToTalkLatch);
        p.press();
        p.press();
        p.release();
        assert!(p.keyed(), "first press latches, repeat and release keep it");
        p.press();
        p.release();
        assert!(!p.keyed(), "second press unlatches");
        p.press();
        assert_eq!(p.set_mode(VoiceMode::PushToTalk), VoiceControl::Mode(VoiceMode::PushToTalk));
        assert!(!p.keyed(), "a mode change unlatches");
    }

    #[test]
    fn voice_activation_ignores_the_key() {
        let mut p = Ptt::new(VoiceMode::VoiceActivation);
        assert_eq!(p.press(), None);
        assert!(!p.keyed());
    }
}
