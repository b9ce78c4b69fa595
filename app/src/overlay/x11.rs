//! The overlay's window under X11: override-redirect, as Linux overlays are. No window manager
//! then places, stacks or focuses it, so none can sink it behind a game (full-screen ones
//! included) or hand it the keyboard when it appears. It is made so before it is first mapped:
//! the window is created hidden and shown once this is done.
//!
//! What a window manager would have done is done here: a keeper thread raises the window again
//! whenever a managed window comes over it; making it interactive gives it the keyboard, and
//! leaving gives the keyboard back to the window that had it; moving it follows the pointer by
//! hand. Not on X11 (Wayland), the window is shown as it is and the compositor decides.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bevy::prelude::*;
use bevy::window::{PrimaryWindow, RawHandleWrapper, RequestRedraw, WindowPosition};
use raw_window_handle::RawWindowHandle;
use x11rb::connection::Connection as _;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ClientMessageEvent, ConfigureWindowAux, ConnectionExt as _,
    EventMask, InputFocus, KeyButMask, MapState, StackMode, Window as XWindow,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// More raises than this in a second: another window insists on the top too; the keeper backs
/// off for a second rather than fight it.
const RAISES_PER_SECOND: usize = 20;

pub(crate) struct X11Plugin;

impl Plugin for X11Plugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (take_over, follow_drag));
    }
}

/// The overlay's own line to the X server, for what winit does not offer: focus handed over and
/// back, the pointer during a move.
#[derive(Resource)]
pub(crate) struct XLink {
    conn: RustConnection,
    window: XWindow,
    root: XWindow,
    active_window: u32,
    /// Who had the keyboard before the overlay took it, and whether a window manager said so.
    before: Option<(XWindow, bool)>,
    /// While the window is being moved: where the pointer and the window were when it started.
    drag: Option<(IVec2, IVec2)>,
}

impl XLink {
    fn take(window: XWindow) -> anyhow::Result<Self> {
        let (conn, screen) = x11rb::connect(None).context("connecting to the X server")?;
        let root = conn.setup().roots[screen].root;
        let aux = ChangeWindowAttributesAux::new().override_redirect(1);
        conn.change_window_attributes(window, &aux)?
            .check()
            .context("making the window override-redirect")?;
        let active_window = conn.intern_atom(false, b"_NET_ACTIVE_WINDOW")?.reply()?.atom;
        let (keeper, _) = x11rb::connect(None).context("connecting to the X server")?;
        std::thread::Builder::new().name("overlay-above".into()).spawn(move || {
            if let Err(e) = keep_above(&keeper, window, root) {
                tracing::debug!("overlay keeper stopped: {e:#}");
            }
        })?;
        Ok(Self { conn, window, root, active_window, before: None, drag: None })
    }

    /// The window the window manager calls active, if one runs and says so.
    fn active(&self) -> Option<XWindow> {
        let reply = self
            .conn
            .get_property(false, self.root, self.active_window, AtomEnum::WINDOW, 0, 1)
            .ok()?
            .reply()
            .ok()?;
        reply.value32()?.next().filter(|&w| w != 0)
    }

    /// Takes the keyboard, remembering who had it.
    pub(crate) fn take_focus(&mut self) {
        let before = match self.active() {
            Some(w) => Some((w, true)),
            None => self.conn.get_input_focus().ok().and_then(|c| c.reply().ok()).map(|r| (r.focus, false)),
        };
        if let Some(before) = before.filter(|(w, _)| *w != self.window && *w > 1) {
            self.before = Some(before);
        }
        let taken = self.conn.set_input_focus(InputFocus::PARENT, self.window, x11rb::CURRENT_TIME);
        if let Err(e) = taken.map(|c| c.check()) {
            tracing::warn!("the overlay could not take the keyboard: {e}");
        }
    }

    /// Gives the keyboard back to who had it: asked of the window manager, as a pager would, so
    /// that it knows the game is active again, and set directly.
    pub(crate) fn give_back(&mut self) {
        let Some((window, managed)) = self.before.take() else { return };
        let give = || -> anyhow::Result<()> {
            if managed {
                let message =
                    ClientMessageEvent::new(32, window, self.active_window, [2, 0, self.window, 0, 0]);
                let mask = EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY;
                self.conn.send_event(false, self.root, mask, message)?;
            }
            // Some (icewm) still call it active and do nothing: the keyboard is handed over too.
            self.conn.set_input_focus(InputFocus::PARENT, window, x11rb::CURRENT_TIME)?;
            self.conn.sync()?;
            Ok(())
        };
        if let Err(e) = give() {
            tracing::warn!("the overlay could not give the keyboard back: {e:#}");
        }
    }

    /// Where the pointer is on the screen, and whether its first button is down.
    fn pointer(&self) -> Option<(IVec2, bool)> {
        let p = self.conn.query_pointer(self.root).ok()?.reply().ok()?;
        Some((IVec2::new(p.root_x.into(), p.root_y.into()), p.mask.contains(KeyButMask::BUTTON1)))
    }

    /// Starts moving the window with the pointer (no window manager moves an override-redirect
    /// window).
    pub(crate) fn start_drag(&mut self) {
        let at =
            self.conn.translate_coordinates(self.window, self.root, 0, 0).ok().and_then(|c| c.reply().ok());
        if let (Some((pointer, _)), Some(at)) = (self.pointer(), at) {
            self.drag = Some((pointer, IVec2::new(at.dst_x.into(), at.dst_y.into())));
        }
    }
}

/// The X11 window id of a window handle.
fn x_window(handle: RawWindowHandle) -> Option<XWindow> {
    match handle {
        RawWindowHandle::Xlib(h) => u32::try_from(h.window).ok(),
        RawWindowHandle::Xcb(h) => Some(h.window.get()),
        _ => None,
    }
}

/// Once the window exists (hidden): made override-redirect, then shown.
fn take_over(
    mut commands: Commands,
    mut windows: Query<(&RawHandleWrapper, &mut Window), With<PrimaryWindow>>,
    mut done: Local<bool>,
) {
    if *done {
        return;
    }
    let Ok((handle, mut window)) = windows.single_mut() else { return };
    *done = true;
    match x_window(handle.get_window_handle()) {
        Some(id) => match XLink::take(id) {
            Ok(link) => {
                commands.insert_resource(link);
            }
            Err(e) => tracing::warn!("the window manager may put the game over the overlay: {e:#}"),
        },
        None => tracing::info!("not on X11: the compositor decides whether the overlay stays over the game"),
    }
    window.visible = true;
}

/// While a move is on, the window follows the pointer until its button is let go.
fn follow_drag(
    link: Option<ResMut<XLink>>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
    mut redraw: MessageWriter<RequestRedraw>,
) {
    let Some(mut link) = link else { return };
    let Some((from, origin)) = link.drag else { return };
    let Some((at, held)) = link.pointer() else {
        link.drag = None;
        return;
    };
    let to = WindowPosition::At(origin + at - from);
    for mut window in &mut windows {
        if window.position != to {
            window.position = to;
        }
    }
    if held {
        redraw.write(RequestRedraw);
    } else {
        link.drag = None;
    }
}

/// Raises `ours` whenever a managed window is mapped or stacked over it, until it is destroyed.
/// Other override-redirect windows (menus, tooltips, other overlays) are left above.
fn keep_above(conn: &RustConnection, ours: XWindow, root: XWindow) -> anyhow::Result<()> {
    let watch = ChangeWindowAttributesAux::new().event_mask(EventMask::SUBSTRUCTURE_NOTIFY);
    conn.change_window_attributes(root, &watch)?.check()?;
    let client_list = conn.intern_atom(false, b"_NET_CLIENT_LIST")?.reply()?.atom;
    let mut raises = VecDeque::new();
    loop {
        if covered(conn, root, ours, client_list)? {
            let now = Instant::now();
            while raises.front().is_some_and(|&t| now.duration_since(t) > Duration::from_secs(1)) {
                raises.pop_front();
            }
            if raises.len() >= RAISES_PER_SECOND {
                tracing::warn!("another window keeps coming over the overlay; raising it again in a second");
                std::thread::sleep(Duration::from_secs(1));
                raises.clear();
            }
            raises.push_back(now);
            conn.configure_window(ours, &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE))?;
            conn.flush()?;
        }
        // Whatever changed, the stacking is looked at again once the queue is empty.
        let mut event = Some(conn.wait_for_event()?);
        while let Some(e) = event {
            if matches!(e, Event::DestroyNotify(d) if d.window == ours) {
                return Ok(());
            }
            event = conn.poll_for_event()?;
        }
    }
}

/// Whether a viewable managed window is stacked above `ours`: one the window manager manages
/// (not override-redirect), or the frame of one of its clients (some window managers, fluxbox
/// among them, make their frames override-redirect).
fn covered(conn: &RustConnection, root: XWindow, ours: XWindow, client_list: u32) -> anyhow::Result<bool> {
    let children = conn.query_tree(root)?.reply()?.children;
    let Some(at) = children.iter().position(|&w| w == ours) else { return Ok(false) };
    let mut unmanaged = Vec::new();
    for &w in &children[at + 1..] {
        // A window gone since the tree was read answers with an error: not over us.
        if let Ok(a) = conn.get_window_attributes(w)?.reply()
            && a.map_state == MapState::VIEWABLE
        {
            if !a.override_redirect {
                return Ok(true);
            }
            unmanaged.push(w);
        }
    }
    if unmanaged.is_empty() {
        return Ok(false);
    }
    let clients = conn.get_property(false, root, client_list, AtomEnum::WINDOW, 0, 1024)?.reply();
    let clients: Vec<u32> = clients.ok().and_then(|r| r.value32().map(Iterator::collect)).unwrap_or_default();
    for client in clients {
        if unmanaged.contains(&top_level(conn, root, client)?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The child of the root that holds `window` (its frame, under a window manager).
fn top_level(conn: &RustConnection, root: XWindow, mut window: XWindow) -> anyhow::Result<XWindow> {
    for _ in 0..8 {
        let Ok(tree) = conn.query_tree(window)?.reply() else { break };
        if tree.parent == root || tree.parent == 0 {
            break;
        }
        window = tree.parent;
    }
    Ok(window)
}
