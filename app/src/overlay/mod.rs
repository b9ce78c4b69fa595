//! The overlay: a transparent, borderless, always-on-top Bevy window over the game that never
//! takes focus and lets clicks through until its key makes it interactive. It is a front end of
//! the session like stdin is: node events come in through [`Inbox`], inputs go out through
//! [`Outbox`]; it owns nothing of the node's state.
//!
//! One Bevy plugin per feature: window (placement, click-through, interactive key; under X11
//! kept over the game and out of its focus by `x11`), hotkeys
//! (push-to-talk), and the widgets (roster, chat, invite link + QR, radar, plugin panels, toasts,
//! settings).

mod actions;
mod hotkeys;
mod model;
mod probe;
mod ptt;
mod theme;
mod widgets;
mod window;
mod x11;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::winit::{EventLoopProxy, EventLoopProxyWrapper, UpdateMode, WinitSettings, WinitUserEvent};
use tokio::sync::mpsc;

use crate::config::Settings;
use crate::session::{Front, FrontMsg, Input, Start};
pub(crate) use model::{Chat, GamePositions, Panels, Party, Toasts};
pub(crate) use ptt::Ptt;

/// Events waiting for the overlay; beyond this the session's sends are dropped (and counted).
const INBOX: usize = 1024;
/// Inputs waiting for the session.
const OUTBOX: usize = 64;

/// Node events (and requests for the overlay) from the session.
#[derive(Resource)]
pub(crate) struct Inbox(Mutex<std_mpsc::Receiver<FrontMsg>>);

/// Inputs to the session; a full queue drops the input and says so.
#[derive(Resource, Clone)]
pub(crate) struct Outbox(pub(crate) mpsc::Sender<Input>);

impl Outbox {
    pub(crate) fn send(&self, input: Input, toasts: &mut Toasts, now: Duration) {
        if self.0.try_send(input).is_err() {
            toasts.push(now, model::ToastKind::Error, "Partyline is busy; try again");
        }
    }
}

/// Wakes the event loop from another thread (node events, hotkeys).
#[derive(Resource, Clone)]
pub(crate) struct Waker(Arc<Mutex<EventLoopProxy<WinitUserEvent>>>);

impl Waker {
    pub(crate) fn wake(&self) {
        if let Ok(proxy) = self.0.lock() {
            let _ = proxy.send_event(WinitUserEvent::WakeUp);
        }
    }
}

/// The settings and where they live; the settings panel edits and saves them.
#[derive(Resource, Clone)]
pub(crate) struct SettingsFile {
    pub(crate) settings: Settings,
    pub(crate) path: std::path::PathBuf,
}

/// Whether the overlay takes the mouse (and keys for chat) or lets everything through.
#[derive(Resource, Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interactive(pub(crate) bool);

/// Set when the session has stopped: the overlay closes.
#[derive(Resource, Clone, Default)]
pub(crate) struct SessionClosed(Arc<AtomicBool>);

/// The panel open under the roster.
#[derive(Resource, Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drawer {
    #[default]
    None,
    Chat,
    Invite,
    Radar,
    /// Plugins' panels.
    Plugins,
    Settings,
}

/// Draws the node of `start` until the window closes or the session ends.
pub fn run(runtime: &tokio::runtime::Runtime, start: Box<Start>) -> ExitCode {
    let file = SettingsFile { settings: start.settings.clone(), path: start.dirs.settings_file() };
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .build()
            // Logging is already set up by main (tracing to stderr).
            .disable::<bevy::log::LogPlugin>()
            .set(window::plugin(&file.settings.overlay)),
    );
    let waker =
        Waker(Arc::new(Mutex::new(EventLoopProxy::clone(app.world().resource::<EventLoopProxyWrapper>()))));
    let (to_overlay, inbox) = std_mpsc::sync_channel(INBOX);
    let (outbox, inputs) = mpsc::channel(OUTBOX);
    let notify = {
        let waker = waker.clone();
        Box::new(move |msg: FrontMsg| {
            if to_overlay.try_send(msg).is_err() {
                tracing::debug!("overlay inbox full: event dropped");
            }
            waker.wake();
        })
    };
    let closed = SessionClosed::default();
    let session = {
        let (closed, waker) = (closed.clone(), waker.clone());
        runtime.spawn(async move {
            let code = start.run(Some(Front { notify, inputs })).await;
            closed.0.store(true, Ordering::Release);
            waker.wake();
            code
        })
    };
    // Transparent where no panel is drawn (a compositor then shows the game through it).
    app.insert_resource(ClearColor(Color::NONE))
        .insert_resource(Inbox(Mutex::new(inbox)))
        .insert_resource(Outbox(outbox))
        .insert_resource(waker)
        .insert_resource(closed)
        .insert_resource(file)
        .add_plugins(OverlayPlugin);
    app.run();
    // The window is closed: dropping the app drops the outbox, so the session leaves the party.
    drop(app);
    runtime.block_on(async {
        match tokio::time::timeout(Duration::from_secs(5), session).await {
            Ok(Ok(code)) => code,
            _ => ExitCode::SUCCESS,
        }
    })
}

/// Everything but the window: the model, the keys and the widgets. Tests add this to
/// `MinimalPlugins` (without the window plugin) to check the logic.
pub(crate) struct OverlayPlugin;

impl Plugin for OverlayPlugin {
    fn build(&self, app: &mut App) {
        let mode =
            app.world().get_resource::<SettingsFile>().map(|f| f.settings.voice.mode).unwrap_or_default();
        app.init_resource::<Party>()
            .init_resource::<Chat>()
            .init_resource::<Toasts>()
            .init_resource::<GamePositions>()
            .init_resource::<Panels>()
            .init_resource::<Interactive>()
            .init_resource::<Drawer>()
            .init_resource::<actions::Rebinding>()
            .init_resource::<actions::PluginDraft>()
            .insert_resource(Ptt::new(mode))
            .add_message::<actions::Act>()
            .add_message::<probe::TakeScreenshot>()
            .add_systems(PreUpdate, (absorb_inbox, close_when_session_ends))
            .add_systems(Update, (pace_frames, actions::carry_out).chain());
        if app.world().contains_resource::<Assets<Font>>() {
            app.add_plugins((
                theme::ThemePlugin,
                window::OverlayWindowPlugin,
                hotkeys::HotkeysPlugin,
                probe::ProbePlugin,
                widgets::WidgetsPlugin,
            ));
        }
    }
}

/// The resources the model folds events into.
#[derive(SystemParam)]
struct ViewMut<'w> {
    party: ResMut<'w, Party>,
    chat: ResMut<'w, Chat>,
    toasts: ResMut<'w, Toasts>,
    positions: ResMut<'w, GamePositions>,
    panels: ResMut<'w, Panels>,
}

impl ViewMut<'_> {
    /// Folds an event in, marking changed only what it changed, so that widgets redraw only then.
    fn absorb(&mut self, event: &crate::events::NodeEvent, now: Duration) {
        let view = model::View {
            party: self.party.bypass_change_detection(),
            chat: self.chat.bypass_change_detection(),
            toasts: self.toasts.bypass_change_detection(),
            positions: self.positions.bypass_change_detection(),
            panels: self.panels.bypass_change_detection(),
        };
        let touched = model::absorb(event, now, view);
        if touched.party {
            self.party.set_changed();
        }
        if touched.chat {
            self.chat.set_changed();
        }
        if touched.toasts {
            self.toasts.set_changed();
        }
        if touched.positions {
            self.positions.set_changed();
        }
        if touched.panels {
            self.panels.set_changed();
        }
    }
}

fn absorb_inbox(
    inbox: Option<Res<Inbox>>,
    time: Res<Time>,
    mut view: ViewMut,
    mut interactive: ResMut<Interactive>,
    mut shots: MessageWriter<probe::TakeScreenshot>,
) {
    let Some(inbox) = inbox else { return };
    let Ok(rx) = inbox.0.lock() else { return };
    let now = time.elapsed();
    while let Ok(msg) = rx.try_recv() {
        match msg {
            FrontMsg::Event(event) => view.absorb(&event, now),
            FrontMsg::Screenshot(path) => {
                shots.write(probe::TakeScreenshot(path));
            }
            FrontMsg::Interactive(on) => {
                interactive.set_if_neq(Interactive(on));
            }
        }
    }
}

fn close_when_session_ends(closed: Option<Res<SessionClosed>>, mut exit: MessageWriter<AppExit>) {
    if closed.is_some_and(|c| c.0.load(Ordering::Acquire)) {
        exit.write(AppExit::Success);
    }
}

/// Paces the loop: asleep until the next toast expires (toasts go away on time), at most
/// [`IDLE_WAIT`]; while the overlay is interactive, a frame at least every [`INTERACTIVE_WAIT`] so
/// that pointer input is picked up promptly.
fn pace_frames(
    time: Res<Time>,
    interactive: Res<Interactive>,
    mut toasts: ResMut<Toasts>,
    settings: Option<ResMut<WinitSettings>>,
) {
    let now = time.elapsed();
    // Expiring marks the toasts changed: only when one is due.
    let next = if toasts.items.iter().any(|t| t.until <= now) {
        toasts.expire(now)
    } else {
        toasts.items.iter().map(|t| t.until).min()
    };
    let Some(mut settings) = settings else { return };
    let limit = if interactive.0 { INTERACTIVE_WAIT } else { IDLE_WAIT };
    let wait = next.map_or(limit, |at| at.saturating_sub(now) + Duration::from_millis(5)).min(limit);
    let mode = UpdateMode::reactive_low_power(wait);
    if settings.unfocused_mode != mode {
        settings.unfocused_mode = mode;
        settings.focused_mode = mode;
    }
}

/// While the user works the overlay, frames come at least this often.
const INTERACTIVE_WAIT: Duration = Duration::from_millis(100);
/// With nothing happening, the overlay wakes this seldom (node events and keys wake it at once).
pub(crate) const IDLE_WAIT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests;
