//! A real window manager on a private X server (Debian's openbox, fluxbox, icewm), stopped by PID when
//! dropped; what it says of the windows: which is active, which has the keyboard, which is
//! stacked over which; asking it to activate and raise a window as a click would.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt as _, EventMask, StackMode, Window,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use crate::xvfb::Xvfb;

pub struct WindowManager {
    child: Child,
    pub name: &'static str,
    /// Its own home: it writes its settings there, with the defaults.
    _home: tempfile::TempDir,
}

impl WindowManager {
    /// Starts `name` on the server and waits until it manages the screen (it names itself on the
    /// root window, `_NET_SUPPORTING_WM_CHECK`).
    pub fn start(x: &Xvfb, name: &'static str) -> Self {
        let home = tempfile::tempdir().expect("home");
        let mut command = Command::new(name);
        command.envs(x.env()).env("HOME", home.path()).stdout(Stdio::null()).stderr(Stdio::null());
        if name == "openbox" {
            // No session autostart (it would start more programs).
            command.arg("--sm-disable");
        }
        let mut child =
            command.spawn().unwrap_or_else(|e| panic!("{name} (scripts/setup.sh installs it): {e}"));
        let conn = x.connect();
        let check = atom(&conn, "_NET_SUPPORTING_WM_CHECK");
        let start = Instant::now();
        while window_property(&conn, root(&conn), check).is_none() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited: {status}");
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{name} did not take the screen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // It sets the property early in its start: give it a moment to manage what is there.
        std::thread::sleep(Duration::from_millis(300));
        Self { child, name, _home: home }
    }
}

impl Drop for WindowManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn atom(conn: &RustConnection, name: &str) -> Atom {
    conn.intern_atom(false, name.as_bytes()).unwrap().reply().unwrap().atom
}

pub fn root(conn: &RustConnection) -> Window {
    conn.setup().roots[0].root
}

/// The first value of a WINDOW property, if set and not none.
fn window_property(conn: &RustConnection, window: Window, property: Atom) -> Option<Window> {
    let reply = conn.get_property(false, window, property, AtomEnum::WINDOW, 0, 1).ok()?.reply().ok()?;
    reply.value32()?.next().filter(|&w| w != 0)
}

/// The window the window manager calls active.
pub fn active_window(conn: &RustConnection) -> Option<Window> {
    window_property(conn, root(conn), atom(conn, "_NET_ACTIVE_WINDOW"))
}

/// The window that has the keyboard.
pub fn input_focus(conn: &RustConnection) -> Window {
    conn.get_input_focus().unwrap().reply().unwrap().focus
}

/// The child of the root that holds `window` (its frame, under a window manager).
pub fn top_level(conn: &RustConnection, mut window: Window) -> Window {
    let root = root(conn);
    loop {
        let parent = conn.query_tree(window).unwrap().reply().unwrap().parent;
        if parent == root || parent == 0 {
            return window;
        }
        window = parent;
    }
}

/// Whether `upper` is stacked over `lower` (bottom to top among the root's children).
pub fn stacked_over(conn: &RustConnection, upper: Window, lower: Window) -> bool {
    let (upper, lower) = (top_level(conn, upper), top_level(conn, lower));
    let children = conn.query_tree(root(conn)).unwrap().reply().unwrap().children;
    let at = |w| children.iter().position(|&c| c == w);
    matches!((at(upper), at(lower)), (Some(u), Some(l)) if u > l)
}

/// Asks the window manager to activate `window` and raise it, as a click into it would.
pub fn activate(conn: &RustConnection, window: Window) {
    let active = atom(conn, "_NET_ACTIVE_WINDOW");
    // Source 2: a pager, which window managers obey (an application's request may be refused).
    let message = ClientMessageEvent::new(32, window, active, [2, 0, 0, 0, 0]);
    let mask = EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY;
    conn.send_event(false, root(conn), mask, message).unwrap();
    conn.configure_window(window, &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE)).unwrap();
    conn.sync().unwrap();
}

/// Waits up to `limit` for `ok`, checking every 50 ms; whether it held.
pub fn eventually(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ok() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
