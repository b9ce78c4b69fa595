//! The companion socket: `GET /api/socket` upgraded to a WebSocket on the page's own origin.
//!
//! - The upgrade must come from the gateway's origin (a page elsewhere cannot open it).
//! - The first message, within [`AUTH_TIME`], is `{"credential": "…"}`; anything else closes the
//!   socket with code 4001. A paired device may hold [`PER_DEVICE`] sockets; another closes its
//!   oldest (a reloaded page).
//! - Text messages (up to [`MAX_MESSAGE`] bytes) from a device go to the desktop on one bounded
//!   queue, each device within a budget of its own; what is over is dropped and counted.
//! - What the desktop sends waits on a bounded queue per socket ([`QUEUE`]); a device that falls
//!   that far behind is closed (4008) and reconnects to a fresh state.
//! - Revoking a device closes its sockets at once (4003). A socket silent for [`SILENT`] (no
//!   answer to pings) is closed.
//! - Binary messages carry a headset's audio, one Opus packet each after a kind byte: [`MIC`]
//!   from the page (only while the device is the headset, within a budget of its own), [`MIX`]
//!   to it (dropped, not queued without end, when the page falls behind).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::{DeviceEvent, Shared, lock, now_ms};
use crate::rate::TokenBucket;

pub const AUTH_TIME: Duration = Duration::from_secs(5);
pub const PER_DEVICE: usize = 2;
pub const MAX_MESSAGE: usize = 4096;
pub const QUEUE: usize = 64;
const PING_EVERY: Duration = Duration::from_secs(15);
pub const SILENT: Duration = Duration::from_secs(45);
const MESSAGE_BURST: u32 = 40;
const MESSAGES_PER_SEC: f64 = 20.0;
/// Audio packets: 50 a second is 20 ms each; room for a burst after a stall.
const AUDIO_BURST: u32 = 50;
const AUDIO_PER_SEC: f64 = 60.0;

/// Kinds of binary messages: the page's microphone, the party's mix.
pub const MIC: u8 = 1;
pub const MIX: u8 = 2;

/// Close codes the page reads.
pub const NOT_PAIRED: u16 = 4001;
pub const REVOKED: u16 = 4003;
pub const REPLACED: u16 = 4004;
pub const TOO_SLOW: u16 = 4008;

/// The open sockets, by id.
#[derive(Default)]
pub(super) struct Sockets {
    next: u64,
    open: HashMap<u64, Open>,
    /// Each connected device's budget for what it sends.
    budgets: HashMap<String, TokenBucket>,
    /// The device that is the headset now: where its microphone's packets go, and their budget.
    headset: Option<(String, std::sync::mpsc::SyncSender<Vec<u8>>, TokenBucket)>,
}

struct Open {
    device: String,
    opened: Instant,
    out: mpsc::Sender<Message>,
    /// Taken when the desktop closes the socket; the socket's task then removes it.
    close: Option<oneshot::Sender<(u16, &'static str)>>,
}

impl Open {
    fn open(&self) -> bool {
        self.close.is_some()
    }
}

impl Sockets {
    /// Adds a socket of `device`, closing its oldest when it has too many.
    fn add(
        &mut self,
        device: &str,
    ) -> (u64, mpsc::Receiver<Message>, oneshot::Receiver<(u16, &'static str)>) {
        let mine: Vec<(u64, Instant)> = self
            .open
            .iter()
            .filter(|(_, o)| o.device == device && o.open())
            .map(|(id, o)| (*id, o.opened))
            .collect();
        if mine.len() >= PER_DEVICE
            && let Some((oldest, _)) = mine.iter().min_by_key(|(_, at)| *at)
        {
            self.close(*oldest, REPLACED, "this device connected again");
        }
        let (out, rx) = mpsc::channel(QUEUE);
        let (close, closed) = oneshot::channel();
        self.next += 1;
        let open = Open { device: device.to_owned(), opened: Instant::now(), out, close: Some(close) };
        self.open.insert(self.next, open);
        (self.next, rx, closed)
    }

    /// Removes a socket once it ended; true if it was its device's last.
    fn remove(&mut self, id: u64) -> Option<(String, bool)> {
        let open = self.open.remove(&id)?;
        let last = !self.any(&open.device);
        if last {
            self.budgets.remove(&open.device);
            if self.headset.as_ref().is_some_and(|(d, _, _)| *d == open.device) {
                self.headset = None;
            }
        }
        Some((open.device, last))
    }

    /// Tells a socket's task to close it (with `code`).
    fn close(&mut self, id: u64, code: u16, why: &'static str) {
        if let Some(close) = self.open.get_mut(&id).and_then(|o| o.close.take()) {
            let _ = close.send((code, why));
        }
    }

    /// Closes every socket of `device` (ignoring case).
    pub(super) fn close_device(&mut self, device: &str, code: u16, why: &'static str) {
        let ids: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| o.device.eq_ignore_ascii_case(device))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id, code, why);
        }
    }

    /// Whether `device` has a socket, even one closing: a device connects when its first socket
    /// opens and leaves when its last one ended.
    fn any(&self, device: &str) -> bool {
        self.open.values().any(|o| o.device == device)
    }

    /// Connected devices, by name.
    pub(super) fn devices(&self) -> Vec<String> {
        let mut all: Vec<String> =
            self.open.values().filter(|o| o.open()).map(|o| o.device.clone()).collect();
        all.sort();
        all.dedup();
        all
    }

    /// Queues `text` for `device` (`None`: every device); sockets too far behind are closed.
    /// How many sockets it was queued for.
    pub(super) fn send(&mut self, device: Option<&str>, text: &str) -> usize {
        let mut sent = 0;
        let mut behind = Vec::new();
        for (id, open) in &self.open {
            if !open.open() || device.is_some_and(|d| d != open.device) {
                continue;
            }
            match open.out.try_send(Message::Text(text.into())) {
                Ok(()) => sent += 1,
                Err(_) => behind.push(*id),
            }
        }
        for id in behind {
            self.close(id, TOO_SLOW, "this device fell behind");
        }
        sent
    }

    /// `device` becomes the headset, its microphone's packets going to `mic`.
    pub(super) fn set_headset(&mut self, device: &str, mic: std::sync::mpsc::SyncSender<Vec<u8>>) {
        let budget = TokenBucket::new(AUDIO_BURST, AUDIO_PER_SEC, Instant::now());
        self.headset = Some((device.to_owned(), mic, budget));
    }

    pub(super) fn clear_headset(&mut self) {
        self.headset = None;
    }

    /// A microphone packet from `device`: taken if it is the headset, within its budget.
    fn mic(&mut self, device: &str, packet: &[u8]) -> bool {
        let Some((headset, mic, budget)) = &mut self.headset else { return false };
        *headset == device && budget.take(Instant::now()) && mic.try_send(packet.to_vec()).is_ok()
    }

    /// A packet of the mix for `device`'s sockets; dropped where a socket's queue is full.
    pub(super) fn send_mix(&mut self, device: &str, packet: &[u8]) {
        let mut frame = Vec::with_capacity(packet.len() + 1);
        frame.push(MIX);
        frame.extend_from_slice(packet);
        let frame = axum::body::Bytes::from(frame);
        for open in self.open.values().filter(|o| o.open() && o.device == device) {
            let _ = open.out.try_send(Message::Binary(frame.clone()));
        }
    }

    fn take_budget(&mut self, device: &str) -> bool {
        let now = Instant::now();
        let bucket = self
            .budgets
            .entry(device.to_owned())
            .or_insert_with(|| TokenBucket::new(MESSAGE_BURST, MESSAGES_PER_SEC, now));
        bucket.take(now)
    }
}

#[derive(Deserialize)]
struct Hello {
    credential: String,
}

fn count(shared: &Shared, why: &'static str) {
    *lock(&shared.refused).entry(why).or_default() += 1;
}

fn emit(shared: &Shared, event: DeviceEvent) -> bool {
    let to = lock(&shared.events).clone();
    to.is_some_and(|to| to.try_send(event).is_ok())
}

async fn close(mut ws: WebSocket, code: u16, why: &'static str) {
    let frame = CloseFrame { code, reason: why.into() };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(Message::Close(Some(frame)))).await;
}

/// Which paired device this socket is, from its first message.
async fn authenticate(shared: &Shared, ws: &mut WebSocket) -> Option<String> {
    let first = tokio::time::timeout(AUTH_TIME, ws.recv()).await.ok()??.ok()?;
    let Message::Text(text) = first else { return None };
    let hello: Hello = serde_json::from_str(text.as_str()).ok()?;
    lock(&shared.devices).check(&hello.credential, now_ms()).ok()?.map(|d| d.name)
}

/// Serves one upgraded socket until it closes.
pub(super) async fn run(shared: Arc<Shared>, mut ws: WebSocket) {
    let Some(device) = authenticate(&shared, &mut ws).await else {
        count(&shared, "not paired");
        return close(ws, NOT_PAIRED, "this device is not paired").await;
    };
    let (id, mut out, mut closed) = {
        let mut sockets = lock(&shared.sockets);
        let first = !sockets.any(&device);
        let added = sockets.add(&device);
        if first {
            emit(&shared, DeviceEvent::Connected { device: device.clone() });
        }
        added
    };
    let ended = serve(&shared, &device, &mut ws, &mut out, &mut closed).await;
    let removed = lock(&shared.sockets).remove(id);
    if let Some((device, true)) = removed {
        emit(&shared, DeviceEvent::Left { device });
    }
    if let Some((code, why)) = ended {
        close(ws, code, why).await;
    }
}

/// The socket's loop; what to close it with, if the desktop closes it.
async fn serve(
    shared: &Shared,
    device: &str,
    ws: &mut WebSocket,
    out: &mut mpsc::Receiver<Message>,
    closed: &mut oneshot::Receiver<(u16, &'static str)>,
) -> Option<(u16, &'static str)> {
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            why = &mut *closed => return why.ok(),
            message = out.recv() => {
                // A device that does not read holds this send: it may still be closed meanwhile.
                tokio::select! {
                    sent = ws.send(message?) => if sent.is_err() { return None },
                    why = &mut *closed => return why.ok(),
                    () = tokio::time::sleep(SILENT) => return None,
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENT {
                    return Some((TOO_SLOW, "no answer"));
                }
                let _ = ws.send(Message::Ping(Default::default())).await;
            }
            message = ws.recv() => {
                heard = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => {
                        let within = lock(&shared.sockets).take_budget(device);
                        if !within {
                            count(shared, "device over budget");
                        } else if !emit(shared, DeviceEvent::Message { device: device.to_owned(), text: text.to_string() }) {
                            count(shared, "desktop busy");
                        }
                    }
                    Some(Ok(Message::Binary(data))) => match data.split_first() {
                        Some((&MIC, packet)) => {
                            if !lock(&shared.sockets).mic(device, packet) {
                                count(shared, "audio not taken");
                            }
                        }
                        _ => count(shared, "binary message"),
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
