//! A private X server (Xvfb) for overlay tests, stopped by PID when dropped; X clients for
//! clicking (XTest) and for a plain window that records the clicks it gets; PNG reading.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateWindowAux, EventMask, WindowClass};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

pub const WIDTH: u16 = 1280;
pub const HEIGHT: u16 = 720;

pub struct Xvfb {
    child: Child,
    pub display: String,
    runtime_dir: tempfile::TempDir,
}

impl Xvfb {
    pub fn start() -> Self {
        let n = 60 + std::process::id() % 200;
        let child = Command::new("Xvfb")
            .arg(format!(":{n}"))
            .args(["-screen", "0", &format!("{WIDTH}x{HEIGHT}x24"), "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/setup.sh installs it)");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let start = Instant::now();
        while !socket.exists() {
            assert!(start.elapsed() < Duration::from_secs(10), "Xvfb :{n} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
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
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A click of the first button at a screen point, as if from a real mouse (XTest).
pub fn click(conn: &RustConnection, x: i16, y: i16) {
    let root = conn.setup().roots[0].root;
    const MOTION: u8 = 6;
    const PRESS: u8 = 4;
    const RELEASE: u8 = 5;
    conn.xtest_fake_input(MOTION, 0, 0, root, x, y, 0).unwrap();
    conn.xtest_fake_input(PRESS, 1, 0, root, 0, 0, 0).unwrap();
    conn.xtest_fake_input(RELEASE, 1, 0, root, 0, 0, 0).unwrap();
    conn.flush().unwrap();
}

/// A plain full-screen window, standing in for the game under the overlay: it counts the clicks
/// that reach it.
pub struct GameWindow {
    conn: RustConnection,
}

impl GameWindow {
    pub fn open(x: &Xvfb) -> Self {
        let conn = x.connect();
        let screen = &conn.setup().roots[0];
        let (root, visual) = (screen.root, screen.root_visual);
        let win = conn.generate_id().unwrap();
        let aux = CreateWindowAux::new().event_mask(EventMask::BUTTON_PRESS).background_pixel(0x203040);
        conn.create_window(0, win, root, 0, 0, WIDTH, HEIGHT, 0, WindowClass::INPUT_OUTPUT, visual, &aux)
            .unwrap();
        conn.map_window(win).unwrap();
        conn.flush().unwrap();
        Self { conn }
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
