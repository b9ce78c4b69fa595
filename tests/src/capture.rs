//! Every packet on a network namespace's interfaces, captured by a packet socket (`AF_PACKET`,
//! all protocols) opened inside it, for tests that look for what travels in clear. Needs root,
//! like the namespaces themselves.

use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::net::sockopt::{Timeout, set_socket_recv_buffer_size_force, set_socket_timeout};
use rustix::net::{AddressFamily, RecvFlags, SocketType, eth, recv, socket};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::netns::Netns;

/// Room for any packet on loopback (its MTU is 64 KiB) with its link-layer header.
const SNAP: usize = 70 * 1024;

/// A capture under way; [`Capture::stop`] ends it.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Captured, String>>,
}

/// What a capture saw: every packet, whole (loopback shows each one twice: leaving and arriving).
#[derive(Debug, Default)]
pub struct Captured {
    pub packets: Vec<Vec<u8>>,
    /// Packets longer than [`SNAP`], cut short.
    pub truncated: usize,
}

impl Capture {
    /// Starts capturing in `ns` and returns once the socket is open. The first packet sent is a
    /// UDP datagram carrying `control` to the namespace's loopback, so a test can show that the
    /// capture sees what is sent there.
    pub fn start(ns: &Netns, control: &[u8]) -> Self {
        let path = format!("/run/netns/{}", ns.name);
        let (stop, control) = (Arc::new(AtomicBool::new(false)), control.to_vec());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let opened = open_in(&path);
            let sock = match opened {
                Ok(sock) => {
                    let _ = ready_tx.send(Ok(()));
                    sock
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            // This thread is in the namespace now, so this datagram crosses its loopback.
            let udp = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            udp.send_to(&control, "127.0.0.1:9").map_err(|e| e.to_string())?;
            read(&sock, &flag)
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Self { stop, thread },
            Ok(Err(e)) => panic!("cannot capture in {}: {e} (run as root)", ns.name),
            Err(_) => panic!("the capture thread ended before it started"),
        }
    }

    /// Stops and returns what was captured.
    pub fn stop(self) -> Captured {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("capture thread").unwrap_or_else(|e| panic!("capture failed: {e}"))
    }
}

/// Moves this thread into the namespace at `path` and opens a packet socket there.
fn open_in(path: &str) -> Result<std::os::fd::OwnedFd, String> {
    let ns = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(|e| format!("setns: {e}"))?;
    let sock =
        socket(AddressFamily::PACKET, SocketType::RAW, Some(eth::ALL)).map_err(|e| format!("socket: {e}"))?;
    // A large buffer so that a burst (a file transfer on loopback) is not dropped before it is read.
    set_socket_recv_buffer_size_force(&sock, 64 << 20).map_err(|e| format!("SO_RCVBUFFORCE: {e}"))?;
    set_socket_timeout(&sock, Timeout::Recv, Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    Ok(sock)
}

fn read(sock: &std::os::fd::OwnedFd, stop: &AtomicBool) -> Result<Captured, String> {
    let mut captured = Captured::default();
    let mut buf = vec![0u8; SNAP];
    loop {
        // Once stopped, what is queued is still read; the first empty read ends the capture.
        let stopping = stop.load(Ordering::Relaxed);
        let flags = if stopping { RecvFlags::TRUNC | RecvFlags::DONTWAIT } else { RecvFlags::TRUNC };
        match recv(sock, &mut buf[..], flags) {
            Ok((got, len)) => {
                captured.truncated += usize::from(len > got);
                captured.packets.push(buf[..got].to_vec());
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) if stopping => return Ok(captured),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {} // the timeout: look again
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

impl Captured {
    /// Packets holding `needle` anywhere.
    pub fn holding(&self, needle: &[u8]) -> usize {
        self.packets.iter().filter(|p| p.windows(needle.len()).any(|w| w == needle)).count()
    }

    pub fn bytes(&self) -> usize {
        self.packets.iter().map(Vec::len).sum()
    }
}
