//! A private X server (Xvfb) for overlay tests, stopped by PID when dropped; real clicks
//! (xdotool); a plain X window that records the clicks it gets; finding a window; PNG reading.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, MapState, PropMode, Window,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

pub const WIDTH: u16 = 1280;
pub const HEIGHT: u16 = 720;

pub struct Xvfb {
    child: Child,
    pub display: String,
    runtime_dir: tempfile::TempDir,
}

impl Xvfb {
    /// Starts a server on a free display: Xvfb picks the number and writes it once it accepts
    /// clients (`-displayfd`), so neither a busy number nor a stale socket can confuse it.
    pub fn start() -> Self {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", &format!("{WIDTH}x{HEIGHT}x24"), "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/setup.sh installs it)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("Xvfb stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("Xvfb display number");
        let n: u32 =
            line.trim().parse().unwrap_or_else(|_| panic!("Xvfb said {line:?}, not a display number"));
        let runtime_dir = tempfile::tempdir().expect("runtime dir");
        Self { child, display: format!(":{n}"), runtime_dir }
    }

    /// What a process needs to draw on this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DISPLAY".into(), self.display.clone()),
            ("XDG_RUNTIME_DIR".into(), self.runtime_dir.path().display().to_string()),
        ]
    }

    pub fn connect(&self) -> RustConnection {
        x11rb::connect(Some(&self.display)).expect("connect to Xvfb").0
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The top-level window titled `title`, if one is mapped.
pub fn window_titled(conn: &RustConnection, title: &str) -> Option<Window> {
    let root = conn.setup().roots[0].root;
    let tree = conn.query_tree(root).ok()?.reply().ok()?;
    tree.children.into_iter().find(|&w| {
        let mapped = conn
            .get_window_attributes(w)
            .ok()
            .and_then(|c| c.reply().ok())
            .is_some_and(|a| a.map_state == MapState::VIEWABLE);
        let name = conn
            .get_property(false, w, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 256)
            .ok()
            .and_then(|c| c.reply().ok());
        mapped && name.is_some_and(|n| n.value == title.as_bytes())
    })
}

/// A click of the first button at a screen point, as from a real mouse: `xdotool` moves the
/// pointer in from outside (a window hears only of a pointer that enters and moves over it),
/// then presses and releases.
pub fn click(x: &Xvfb, at: (i32, i32)) {
    let (cx, cy) = at;
    xdotool(x, &["mousemove", "1", "1", "sleep", "0.1"], |c| {
        c.args(["mousemove", &(cx - 3).to_string(), &(cy - 3).to_string(), "sleep", "0.1"]).args([
            "mousemove",
            &cx.to_string(),
            &cy.to_string(),
            "sleep",
            "0.25",
            "click",
            "1",
        ]);
    });
}

/// A drag with the first button from one screen point to another, in ten steps.
pub fn drag(x: &Xvfb, from: (i32, i32), to: (i32, i32)) {
    let (fx, fy) = from;
    xdotool(x, &["mousemove", "1", "1", "sleep", "0.1"], |c| {
        c.args(["mousemove", &(fx - 3).to_string(), &(fy - 3).to_string(), "sleep", "0.1"]);
        c.args([
            "mousemove",
            &fx.to_string(),
            &fy.to_string(),
            "sleep",
            "0.25",
            "mousedown",
            "1",
            "sleep",
            "0.2",
        ]);
        for i in 1..=10 {
            let (px, py) = (fx + (to.0 - fx) * i / 10, fy + (to.1 - fy) * i / 10);
            c.args(["mousemove", &px.to_string(), &py.to_string(), "sleep", "0.1"]);
        }
        c.args(["sleep", "0.5", "mouseup", "1"]);
    });
}

/// Gives the window titled `title` the keyboard focus, as a window manager does for the window
/// clicked (Xvfb runs none).
pub fn focus(x: &Xvfb, title: &str) {
    let conn = x.connect();
    let window = window_titled(&conn, title).unwrap_or_else(|| panic!("no window titled {title:?}"));
    conn.set_input_focus(InputFocus::PARENT, window, x11rb::CURRENT_TIME).expect("set focus");
    x11rb::wrapper::ConnectionExt::sync(&conn).expect("X round trip");
}

/// A key pressed and released (an X key name such as `F8`), going where the keyboard focus is.
pub fn key(x: &Xvfb, name: &str) {
    xdotool(x, &["key", name], |_| {});
}

fn xdotool(x: &Xvfb, args: &[&str], more: impl FnOnce(&mut Command)) {
    let mut command = Command::new("xdotool");
    command.env("DISPLAY", &x.display).args(args);
    more(&mut command);
    let status = command.status().expect("xdotool (scripts/setup.sh installs it)");
    assert!(status.success(), "xdotool failed");
}

/// A plain window the size of the screen titled "game", standing in for the game under the
/// overlay: it counts the clicks that reach it.
pub struct GameWindow {
    conn: RustConnection,
    pub window: Window,
}

impl GameWindow {
    pub fn open(x: &Xvfb) -> Self {
        Self::create(x, false)
    }

    /// One that asks the window manager for full screen (`_NET_WM_STATE_FULLSCREEN` when mapped).
    pub fn open_full_screen(x: &Xvfb) -> Self {
        Self::create(x, true)
    }

    fn create(x: &Xvfb, full_screen: bool) -> Self {
        let conn = x.connect();
        let screen = &conn.setup().roots[0];
        let (root, visual) = (screen.root, screen.root_visual);
        let win = conn.generate_id().unwrap();
        let aux = CreateWindowAux::new().event_mask(EventMask::BUTTON_PRESS).background_pixel(0x203040);
        conn.create_window(0, win, root, 0, 0, WIDTH, HEIGHT, 0, WindowClass::INPUT_OUTPUT, visual, &aux)
            .unwrap();
        conn.change_property8(PropMode::REPLACE, win, AtomEnum::WM_NAME, AtomEnum::STRING, b"game").unwrap();
        if full_screen {
            let state = crate::wm::atom(&conn, "_NET_WM_STATE");
            let full = crate::wm::atom(&conn, "_NET_WM_STATE_FULLSCREEN");
            conn.change_property32(PropMode::REPLACE, win, state, AtomEnum::ATOM, &[full]).unwrap();
        }
        conn.map_window(win).unwrap();
        conn.flush().unwrap();
        Self { conn, window: win }
    }

    /// Clicks that reached the game window within `wait`.
    pub fn clicks(&self, wait: Duration) -> usize {
        let deadline = Instant::now() + wait;
        let mut n = 0;
        while Instant::now() < deadline {
            while let Some(event) = self.conn.poll_for_event().unwrap() {
                if matches!(event, Event::ButtonPress(_)) {
                    n += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }
}

/// An RGBA picture read from a PNG.
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

impl Picture {
    pub fn read(path: &Path) -> Self {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).expect("png")));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        let channels = info.color_type.samples();
        let rgba = buf[..info.buffer_size()]
            .chunks(channels)
            .flat_map(|p| [p[0], p[1 % channels], p[2 % channels], if channels == 4 { p[3] } else { 255 }])
            .collect();
        Self { width: info.width, height: info.height, rgba }
    }

    /// The pixels inside `[x, y, w, h]`.
    pub fn pixels(&self, rect: [f64; 4]) -> Vec<[u8; 3]> {
        let [x, y, w, h] = rect.map(|v| v.max(0.0) as u32);
        let mut out = Vec::new();
        for py in y..(y + h).min(self.height) {
            for px in x..(x + w).min(self.width) {
                let o = ((py * self.width + px) * 4) as usize;
                out.push([self.rgba[o], self.rgba[o + 1], self.rgba[o + 2]]);
            }
        }
        out
    }
}
