//! Global keys, heard while the game has the focus: push-to-talk and the key that makes the
//! overlay interactive. On X11 through `global-hotkey` (a passive key grab on the root window,
//! on its own thread, which wakes the overlay). Wayland's GlobalShortcuts portal is not wired
//! yet: there the keys are reported as unavailable and the buttons still work.

use std::sync::{Mutex, mpsc};

use bevy::prelude::*;
use global_hotkey::hotkey::HotKey;
use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState};

use super::actions::Act;
use super::model::{ToastKind, Toasts};
use super::{Interactive, SettingsFile, Waker};

/// Key events waiting for the overlay.
const QUEUE: usize = 64;

pub(crate) struct HotkeysPlugin;

struct Keys {
    /// Kept alive: dropping it stops the key thread.
    manager: GlobalHotKeyManager,
    ptt: Bound,
    interact: Bound,
    events: Mutex<mpsc::Receiver<GlobalHotKeyEvent>>,
}

/// A key as the settings name it, and as registered (`None`: it could not be).
struct Bound {
    spec: String,
    key: Option<HotKey>,
}

impl Bound {
    fn id(&self) -> Option<u32> {
        self.key.map(|k| k.id())
    }
}

/// Problems registering the keys, shown as toasts once the overlay is up.
#[derive(Resource, Default)]
struct KeyProblems(Vec<String>);

impl Plugin for HotkeysPlugin {
    fn build(&self, app: &mut App) {
        let overlay = app
            .world()
            .get_resource::<SettingsFile>()
            .map(|f| f.settings.overlay.clone())
            .unwrap_or_default();
        let waker = app.world().get_resource::<Waker>().cloned();
        let mut problems = KeyProblems::default();
        match start(&overlay.ptt_key, &overlay.interact_key, waker, &mut problems.0) {
            Some(keys) => {
                app.insert_non_send(keys).add_systems(PreUpdate, (follow_settings, read_keys).chain());
            }
            None => problems.0.push("Global keys are not available here (X11 only for now)".into()),
        }
        app.insert_resource(problems).add_systems(Update, report_problems);
    }
}

fn start(ptt: &str, interact: &str, waker: Option<Waker>, problems: &mut Vec<String>) -> Option<Keys> {
    // The key thread needs an X server; without one it would die quietly and registering would
    // still say yes.
    std::env::var_os("DISPLAY").filter(|d| !d.is_empty())?;
    let manager = GlobalHotKeyManager::new().map_err(|e| problems.push(format!("Global keys: {e}"))).ok()?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    GlobalHotKeyEvent::set_event_handler(Some(move |event: GlobalHotKeyEvent| {
        let _ = tx.try_send(event);
        if let Some(waker) = &waker {
            waker.wake();
        }
    }));
    let ptt = bind(&manager, "Push-to-talk", ptt, problems);
    let interact = bind(&manager, "Overlay", interact, problems);
    Some(Keys { manager, ptt, interact, events: Mutex::new(rx) })
}

fn bind(manager: &GlobalHotKeyManager, what: &str, spec: &str, problems: &mut Vec<String>) -> Bound {
    let key = match spec.parse::<HotKey>() {
        Ok(key) => match manager.register(key) {
            Ok(()) => Some(key),
            Err(e) => {
                problems.push(format!("{what} key {spec}: {e}"));
                None
            }
        },
        Err(e) => {
            problems.push(format!("{what} key {spec:?}: {e}"));
            None
        }
    };
    Bound { spec: spec.to_owned(), key }
}

/// Registers the keys again when the settings panel changed them.
fn follow_settings(
    file: Option<Res<SettingsFile>>,
    mut keys: NonSendMut<Keys>,
    mut problems: ResMut<KeyProblems>,
) {
    let Some(file) = file.filter(|f| f.is_changed()) else { return };
    let o = &file.settings.overlay;
    let keys = &mut *keys;
    for (what, bound, spec) in
        [("Push-to-talk", &mut keys.ptt, &o.ptt_key), ("Overlay", &mut keys.interact, &o.interact_key)]
    {
        if bound.spec != *spec {
            if let Some(old) = bound.key {
                let _ = keys.manager.unregister(old);
            }
            *bound = bind(&keys.manager, what, spec, &mut problems.0);
        }
    }
}

/// How the settings name a key pressed with these modifiers held, or `None` for a key that cannot
/// be a global key (a modifier alone, or one the key grabber does not know).
pub(crate) fn spec_for(code: KeyCode, ctrl: bool, shift: bool, alt: bool) -> Option<String> {
    use KeyCode::*;
    if matches!(
        code,
        ControlLeft | ControlRight | ShiftLeft | ShiftRight | AltLeft | AltRight | SuperLeft | SuperRight
    ) {
        return None;
    }
    let mut spec = String::new();
    for (held, name) in [(ctrl, "ctrl+"), (shift, "shift+"), (alt, "alt+")] {
        if held {
            spec.push_str(name);
        }
    }
    spec.push_str(&format!("{code:?}"));
    spec.parse::<HotKey>().is_ok().then_some(spec)
}

fn read_keys(keys: NonSend<Keys>, mut acts: MessageWriter<Act>, mut interactive: ResMut<Interactive>) {
    let Ok(events) = keys.events.lock() else { return };
    while let Ok(event) = events.try_recv() {
        let pressed = event.state == HotKeyState::Pressed;
        if Some(event.id) == keys.ptt.id() {
            acts.write(Act::PttKey(pressed));
        } else if Some(event.id) == keys.interact.id() && pressed {
            interactive.0 = !interactive.0;
        }
    }
}

fn report_problems(mut problems: ResMut<KeyProblems>, time: Res<Time>, mut toasts: ResMut<Toasts>) {
    for problem in problems.0.drain(..) {
        tracing::warn!("{problem}");
        toasts.push(time.elapsed(), ToastKind::Error, problem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressed_keys_become_key_names_the_grabber_takes() {
        assert_eq!(spec_for(KeyCode::F8, false, false, false).as_deref(), Some("F8"));
        assert_eq!(spec_for(KeyCode::KeyT, true, true, false).as_deref(), Some("ctrl+shift+KeyT"));
        assert_eq!(spec_for(KeyCode::Backquote, false, false, true).as_deref(), Some("alt+Backquote"));
        assert_eq!(spec_for(KeyCode::ShiftLeft, false, true, false), None, "a modifier alone");
    }
}
