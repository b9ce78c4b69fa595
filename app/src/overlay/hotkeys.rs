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
    _manager: GlobalHotKeyManager,
    ptt: Option<u32>,
    interact: Option<u32>,
    events: Mutex<mpsc::Receiver<GlobalHotKeyEvent>>,
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
                app.insert_non_send(keys).add_systems(PreUpdate, read_keys);
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
    let mut register = |what: &str, spec: &str| -> Option<u32> {
        let key: HotKey = match spec.parse() {
            Ok(key) => key,
            Err(e) => {
                problems.push(format!("{what} key {spec:?}: {e}"));
                return None;
            }
        };
        match manager.register(key) {
            Ok(()) => Some(key.id()),
            Err(e) => {
                problems.push(format!("{what} key {spec}: {e}"));
                None
            }
        }
    };
    let ptt = register("Push-to-talk", ptt);
    let interact = register("Overlay", interact);
    Some(Keys { _manager: manager, ptt, interact, events: Mutex::new(rx) })
}

fn read_keys(keys: NonSend<Keys>, mut acts: MessageWriter<Act>, mut interactive: ResMut<Interactive>) {
    let Ok(events) = keys.events.lock() else { return };
    while let Ok(event) = events.try_recv() {
        let pressed = event.state == HotKeyState::Pressed;
        if Some(event.id) == keys.ptt {
            acts.write(Act::PttKey(pressed));
        } else if Some(event.id) == keys.interact && pressed {
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
