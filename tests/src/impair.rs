//! A UDP proxy that loses, delays and jitters packets, seeded, in user space (this kernel has no
//! netem). Put it in front of a node's QUIC port and have the node announce the proxy's address:
//! every packet between the two peers then crosses it, both ways.

use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Packets in flight at most; beyond, the proxy drops (like a full router queue).
const MAX_IN_FLIGHT: usize = 20_000;

#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// Probability that a packet is dropped, each direction.
    pub loss: f64,
    /// Added one-way delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from 0 to this, per packet (which also reorders).
    pub jitter: Duration,
    /// Mean length of a run of lost packets: above 1, losses come in bursts (a two-state
    /// Gilbert model: every packet is lost in the bad state, none in the good one, with the
    /// long-run loss rate `loss`); 1 or less, each packet is lost on its own.
    pub burst: f64,
    pub seed: u64,
}

impl Impairment {
    pub fn none() -> Self {
        Self { loss: 0.0, delay: Duration::ZERO, jitter: Duration::ZERO, burst: 1.0, seed: 1 }
    }
}

/// Decides which packets of one direction are lost.
struct Dropper {
    rng: StdRng,
    /// In the Gilbert model's bad state.
    bad: bool,
}

impl Dropper {
    fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed), bad: false }
    }

    fn drops(&mut self, imp: &Impairment) -> bool {
        let loss = imp.loss.clamp(0.0, 0.99);
        if imp.burst <= 1.0 {
            return self.rng.random_bool(loss);
        }
        // Leave the bad state after `burst` packets on average; enter it so that the share of
        // packets spent there is `loss`.
        let (enter, leave) = (loss / (imp.burst * (1.0 - loss)), 1.0 / imp.burst);
        let flip = if self.bad { leave } else { enter };
        if self.rng.random_bool(flip.clamp(0.0, 1.0)) {
            self.bad = !self.bad;
        }
        self.bad
    }
}

#[derive(Default)]
pub struct ProxyStats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    /// Forwarded towards the target (the node behind the proxy) and back to the clients: UDP
    /// payload bytes and datagrams.
    pub to_target: Traffic,
    pub to_clients: Traffic,
}

#[derive(Default)]
pub struct Traffic {
    pub bytes: AtomicU64,
    pub datagrams: AtomicU64,
}

impl Traffic {
    /// (bytes, datagrams) so far.
    pub fn read(&self) -> (u64, u64) {
        (self.bytes.load(Ordering::Relaxed), self.datagrams.load(Ordering::Relaxed))
    }

    fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.datagrams.fetch_add(1, Ordering::Relaxed);
    }
}

struct Due {
    at: Instant,
    order: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    payload: Vec<u8>,
    towards_target: bool,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

struct Shared {
    queue: Mutex<(BinaryHeap<Due>, u64)>,
    wake: Condvar,
    stop: AtomicBool,
    stats: ProxyStats,
    impairment: Impairment,
}

impl Shared {
    /// Drops or schedules one packet.
    fn offer(
        &self,
        dropper: &mut Dropper,
        socket: &Arc<UdpSocket>,
        to: SocketAddr,
        payload: &[u8],
        towards_target: bool,
    ) {
        let imp = self.impairment;
        if dropper.drops(&imp) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let jitter = imp.jitter.mul_f64(dropper.rng.random::<f64>());
        let at = Instant::now() + imp.delay + jitter;
        let mut guard = self.queue.lock().unwrap();
        if guard.0.len() >= MAX_IN_FLIGHT {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        guard.1 += 1;
        let order = guard.1;
        guard.0.push(Due {
            at,
            order,
            socket: socket.clone(),
            to,
            payload: payload.to_vec(),
            towards_target,
        });
        self.wake.notify_one();
    }
}

pub struct UdpProxy {
    /// Where peers should send: the proxy's own address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpProxy {
    /// Forwards datagrams arriving at a new loopback port to `target`, and the replies back.
    pub fn start(target: SocketAddr, impairment: Impairment) -> std::io::Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0")?);
        front.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new((BinaryHeap::new(), 0)),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            stats: ProxyStats::default(),
            impairment,
        });
        let mut threads = Vec::new();
        threads.push(std::thread::spawn({
            let shared = shared.clone();
            move || send_when_due(&shared)
        }));
        threads.push(std::thread::spawn({
            let shared = shared.clone();
            move || relay_front(&front, target, &shared)
        }));
        Ok(Self { addr, shared, threads })
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Client → target: one upstream socket per client address, whose replies go back to it.
fn relay_front(front: &Arc<UdpSocket>, target: SocketAddr, shared: &Arc<Shared>) {
    let mut dropper = Dropper::new(shared.impairment.seed);
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok((n, client)) = front.recv_from(&mut buf) else { continue };
        let upstream = match upstreams.get(&client) {
            Some(u) => u.clone(),
            None => {
                let Ok(u) = UdpSocket::bind("127.0.0.1:0") else { continue };
                let _ = u.set_read_timeout(Some(Duration::from_millis(50)));
                let u = Arc::new(u);
                upstreams.insert(client, u.clone());
                let (front, shared, seed) =
                    (front.clone(), shared.clone(), shared.impairment.seed ^ u64::from(client.port()));
                let reader = u.clone();
                replies.push(std::thread::spawn(move || {
                    let mut dropper = Dropper::new(seed);
                    let mut buf = vec![0u8; 65_536];
                    while !shared.stop.load(Ordering::Relaxed) {
                        if let Ok(n) = reader.recv(&mut buf) {
                            shared.offer(&mut dropper, &front, client, &buf[..n], false);
                        }
                    }
                }));
                u
            }
        };
        shared.offer(&mut dropper, &upstream, target, &buf[..n], true);
    }
    for r in replies {
        let _ = r.join();
    }
}

fn send_when_due(shared: &Shared) {
    let mut guard = shared.queue.lock().unwrap();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        match guard.0.peek() {
            Some(due) if due.at <= now => {
                let due = guard.0.pop().expect("peeked");
                drop(guard);
                let _ = due.socket.send_to(&due.payload, due.to);
                shared.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                let direction =
                    if due.towards_target { &shared.stats.to_target } else { &shared.stats.to_clients };
                direction.add(due.payload.len());
                guard = shared.queue.lock().unwrap();
            }
            Some(due) => {
                let wait = due.at - now;
                guard = shared.wake.wait_timeout(guard, wait).unwrap().0;
            }
            None => guard = shared.wake.wait_timeout(guard, Duration::from_millis(50)).unwrap().0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_both_ways_with_seeded_loss_and_delay() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let imp = Impairment { loss: 0.2, delay: Duration::from_millis(20), ..Impairment::none() };
        let proxy = UdpProxy::start(server.local_addr().unwrap(), imp).unwrap();
        let client = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let started = Instant::now();
        let sender = {
            let (client, to) = (client.clone(), proxy.addr);
            // Paced, while the server reads, so that no socket buffer overflows: only the proxy
            // may lose packets.
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    client.send_to(&i.to_be_bytes(), to).unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let mut got = 0;
        let mut buf = [0u8; 16];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            assert_eq!(n, 4);
            if got == 0 {
                assert!(started.elapsed() >= Duration::from_millis(20), "delayed");
                // Replies go back through the proxy to the client.
                server.send_to(b"pong", from).unwrap();
            }
            got += 1;
            server.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        }
        sender.join().unwrap();
        assert!((350..450).contains(&got), "{got} of 500 arrived at 20% loss");
        assert_eq!(proxy.stats().to_target.read(), (4 * got, got), "4-byte datagrams towards the server");
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap_or((0, proxy.addr));
        // The reply itself may be lost (20%); when it arrives it is intact.
        assert!(n == 0 || &buf[..n] == b"pong");
        let dropped = proxy.stats().dropped.load(Ordering::Relaxed);
        let forwarded = proxy.stats().forwarded.load(Ordering::Relaxed);
        assert!(
            dropped + got == 500 || dropped + got == 501,
            "{dropped} dropped, {got} arrived, {forwarded} forwarded"
        );
    }

    #[test]
    fn bursts_keep_the_loss_rate_and_lengthen_the_runs() {
        let runs = |burst: f64| {
            let imp = Impairment { loss: 0.1, burst, ..Impairment::none() };
            let mut dropper = Dropper::new(3);
            let lost: Vec<bool> = (0..200_000).map(|_| dropper.drops(&imp)).collect();
            let rate = lost.iter().filter(|l| **l).count() as f64 / lost.len() as f64;
            let starts = lost.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
            (rate, lost.iter().filter(|l| **l).count() as f64 / starts)
        };
        let (rate, mean_run) = runs(1.0);
        assert!((rate - 0.1).abs() < 0.005 && (mean_run - 1.11).abs() < 0.05, "{rate} {mean_run}");
        let (rate, mean_run) = runs(3.0);
        assert!((rate - 0.1).abs() < 0.01 && (mean_run - 3.0).abs() < 0.15, "{rate} {mean_run}");
    }
}
