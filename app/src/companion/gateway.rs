//! The companion gateway: HTTPS on the LAN (axum over hyper, rustls with the per-install
//! certificate), serving the companion page and its API on one origin.
//!
//! - `GET /` and `GET /NAME.EXT`: the page, from the companion plugin's `assets/` folder (only
//!   plain file names of a few kinds), under a strict Content-Security-Policy (no inline script,
//!   nothing from elsewhere, no framing).
//! - `POST /api/pair` `{token, nonce, name}`: claims the open pairing; answers the verification
//!   code and the device's credential (working once the user confirms the code on the desktop).
//! - `GET /api/me` with `Authorization: Bearer CREDENTIAL`: the paired device's name.
//! - `GET /api/socket`: the paired device's WebSocket (see [`socket`]).
//!
//! Every request from an address is rate-limited (a budget per IP, for at most
//! [`MAX_ADDRESSES`] addresses at once), requests that change something must come from the
//! gateway's own origin, bodies are capped at 4 KiB, connections at [`MAX_CONNECTIONS`] and a
//! TLS handshake at 10 s.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::extract::Path as UrlPath;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use super::cert::Certificate;
use super::devices::{Device, Devices};
use super::pairing::{Pairing, Refused};
use crate::rate::TokenBucket;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Addresses with a request budget of their own at once; past that the oldest is forgotten.
pub const MAX_ADDRESSES: usize = 256;
const REQUEST_BURST: u32 = 30;
const REQUESTS_PER_SEC: f64 = 5.0;
const HANDSHAKE: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 4096;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; media-src 'self' blob:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// What the gateway and the desktop's commands share.
struct Shared {
    pairing: Mutex<Pairing>,
    devices: Mutex<Devices>,
    fingerprint: [u8; 32],
    budgets: Mutex<HashMap<IpAddr, (TokenBucket, Instant)>>,
    /// Requests refused, by why: what the gateway turned away.
    refused: Mutex<HashMap<&'static str, u64>>,
    /// Where what devices do goes (to the desktop).
    events: Mutex<Option<mpsc::Sender<DeviceEvent>>>,
    sockets: Mutex<socket::Sockets>,
    /// The page's files.
    assets: PathBuf,
}

/// What paired (and pairing) devices do, for the desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A device asks to pair: the user confirms its code.
    Waiting { name: String, code: String },
    /// A paired device's first socket opened.
    Connected { device: String },
    /// A text message from a connected device.
    Message { device: String, text: String },
    /// A device's last socket closed.
    Left { device: String },
}

/// A running gateway; it stops when dropped.
pub struct Gateway {
    shared: Arc<Shared>,
    addr: SocketAddr,
    host: IpAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gateway {
    /// Listens on `bind` with `cert`, the paired devices in the database at `db`, serving the
    /// page from `assets`. `host` is the address pairing links name (one of the certificate's).
    pub async fn start(
        bind: SocketAddr,
        host: IpAddr,
        cert: &Certificate,
        db: &Path,
        assets: &Path,
    ) -> Result<Self> {
        let devices = Devices::open(db)?;
        let tls = tls_config(cert)?;
        let listener = TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            pairing: Mutex::new(Pairing::new(Instant::now())),
            devices: Mutex::new(devices),
            fingerprint: cert.fingerprint(),
            budgets: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            events: Mutex::new(None),
            sockets: Mutex::new(socket::Sockets::default()),
            assets: assets.to_owned(),
        });
        let router = router(shared.clone());
        let task = tokio::spawn(serve(listener, tokio_rustls::TlsAcceptor::from(tls), router));
        Ok(Self { shared, addr, host, task: Some(task) })
    }

    /// Stops listening and closes every connection; the port is free when this returns.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Tells `to` what devices do (asking to pair, connecting, sending, leaving); when `to` is
    /// full, what devices send is dropped and counted.
    pub fn notifying(self, to: mpsc::Sender<DeviceEvent>) -> Self {
        *lock(&self.shared.events) = Some(to);
        self
    }

    /// Sends `text` to `device`'s open sockets (`None`: to every connected device); how many
    /// sockets it went to. A socket whose queue is full is closed instead.
    pub fn send(&self, device: Option<&str>, text: &str) -> usize {
        lock(&self.shared.sockets).send(device, text)
    }

    /// Makes `device` (connected now) the headset: its page's microphone packets go to `mic`,
    /// and what comes out of `mix` is sent to the page. One device at a time.
    pub fn headset(
        &self,
        device: &str,
        mic: std::sync::mpsc::SyncSender<Vec<u8>>,
        mut mix: mpsc::Receiver<Vec<u8>>,
    ) -> Result<()> {
        let mut sockets = lock(&self.shared.sockets);
        anyhow::ensure!(sockets.devices().iter().any(|d| d == device), "{device} is not connected");
        sockets.set_headset(device, mic);
        let (shared, device) = (self.shared.clone(), device.to_owned());
        // Ends when the voice engine lets the headset go.
        tokio::spawn(async move {
            while let Some(packet) = mix.recv().await {
                lock(&shared.sockets).send_mix(&device, &packet);
            }
        });
        Ok(())
    }

    /// No device is the headset any more: its microphone's packets are refused.
    pub fn headset_off(&self) {
        lock(&self.shared.sockets).clear_headset();
    }

    /// The devices connected now.
    pub fn connected(&self) -> Vec<String> {
        lock(&self.shared.sockets).devices()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Opens a pairing (closing any other): the link for the QR code, the token and the
    /// certificate's fingerprint in its fragment (never sent to a server by the browser).
    pub fn pair(&self) -> String {
        let token = lock(&self.shared.pairing).open(Instant::now());
        let host = match self.host {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        format!("https://{host}:{}/#{token}.{}", self.port(), hex(&self.shared.fingerprint))
    }

    /// The device waiting for the user's confirmation: its name and code.
    pub fn waiting(&self) -> Option<(String, String)> {
        lock(&self.shared.pairing).waiting(Instant::now()).map(|(n, c)| (n.to_owned(), c.to_owned()))
    }

    /// The user confirmed the code a device shows: it is paired, under the name returned.
    pub fn confirm(&self, code: &str) -> Result<String> {
        let confirmed = lock(&self.shared.pairing).confirm(code, Instant::now())?;
        lock(&self.shared.devices).add(&confirmed.name, &confirmed.credential_hash, now_ms())
    }

    pub fn devices(&self) -> Result<Vec<Device>> {
        lock(&self.shared.devices).list()
    }

    /// Revokes a device: its credential stops working and its sockets close at once. False if
    /// there is none.
    pub fn revoke(&self, name: &str) -> Result<bool> {
        let revoked = lock(&self.shared.devices).revoke(name)?;
        lock(&self.shared.sockets).close_device(name, socket::REVOKED, "this device was unpaired");
        Ok(revoked)
    }

    /// What was refused so far, by why.
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        let mut all: Vec<_> = lock(&self.shared.refused).iter().map(|(k, v)| (*k, *v)).collect();
        all.sort();
        all
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tls_config(cert: &Certificate) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.cert_der.clone())], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn serve(listener: TcpListener, tls: tokio_rustls::TlsAcceptor, router: Router) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropped with this task: the connections close with the listener.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((tcp, peer)) = listener.accept().await else { continue };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
        let (tls, router) = (tls.clone(), router.clone().layer(Extension(peer)));
        connections.spawn(async move {
            let _slot = slot;
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE, tls.accept(tcp)).await else { return };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = builder.serve_connection_with_upgrades(io, service).await;
        });
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|State(shared): State<Arc<Shared>>| asset(shared, "index.html".into())))
        .route("/{name}", get(|State(shared), UrlPath(name)| asset(shared, name)))
        .route("/api/pair", post(pair))
        .route("/api/me", get(me))
        .route("/api/socket", get(open_socket))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// Largest file of the page served.
const MAX_ASSET: u64 = 1 << 20;

/// A file of the page: a plain name (letters, digits, `-`, `_`) of a kind it may be.
async fn asset(shared: Arc<Shared>, name: String) -> Response {
    let kind = match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            match ext {
                "html" => "text/html; charset=utf-8",
                "js" => "text/javascript; charset=utf-8",
                "css" => "text/css; charset=utf-8",
                "svg" => "image/svg+xml",
                "png" => "image/png",
                "json" => "application/json",
                _ => "",
            }
        }
        _ => "",
    };
    let path = shared.assets.join(&name);
    let small = tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file() && m.len() <= MAX_ASSET);
    match tokio::fs::read(&path).await {
        Ok(body) if !kind.is_empty() && small => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        _ => refuse(&shared, "no such file", StatusCode::NOT_FOUND, format!("no file {name:?} here")),
    }
}

fn refuse(shared: &Shared, why: &'static str, status: StatusCode, message: String) -> Response {
    *lock(&shared.refused).entry(why).or_default() += 1;
    (status, Json(json!({"error": message}))).into_response()
}

/// Every request: the address's budget, the origin of anything that changes state, and the
/// headers every answer carries.
async fn guard(
    State(shared): State<Arc<Shared>>,
    Extension(peer): Extension<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !take_budget(&shared, peer.ip()) {
        return refuse(
            &shared,
            "rate",
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests: wait a little".into(),
        );
    }
    if request.method() != axum::http::Method::GET && !same_origin(request.headers()) {
        return refuse(
            &shared,
            "origin",
            StatusCode::FORBIDDEN,
            "requests must come from the companion page".into(),
        );
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn take_budget(shared: &Shared, ip: IpAddr) -> bool {
    let now = Instant::now();
    let mut budgets = lock(&shared.budgets);
    if !budgets.contains_key(&ip) && budgets.len() >= MAX_ADDRESSES {
        let oldest = budgets.iter().min_by_key(|(_, (_, seen))| *seen).map(|(ip, _)| *ip);
        budgets.retain(|k, _| Some(*k) != oldest);
    }
    let (bucket, seen) =
        budgets.entry(ip).or_insert_with(|| (TokenBucket::new(REQUEST_BURST, REQUESTS_PER_SEC, now), now));
    *seen = now;
    bucket.take(now)
}

/// Whether `Origin` is this gateway as the browser reached it (`https://` + `Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    matches!((text(header::ORIGIN), text(header::HOST)), (Some(origin), Some(host)) if origin == format!("https://{host}"))
}

#[derive(Deserialize)]
struct PairRequest {
    token: String,
    nonce: String,
    name: String,
}

async fn pair(State(shared): State<Arc<Shared>>, Json(ask): Json<PairRequest>) -> Response {
    let Ok(nonce) = data_encoding::BASE64URL_NOPAD.decode(ask.nonce.as_bytes()) else {
        return refuse(&shared, "bad request", StatusCode::BAD_REQUEST, "the nonce is not base64url".into());
    };
    let claimed =
        lock(&shared.pairing).claim(&ask.token, &nonce, &ask.name, &shared.fingerprint, Instant::now());
    match claimed {
        Ok(c) => {
            if let Some(to) = lock(&shared.events).as_ref() {
                let _ = to.try_send(DeviceEvent::Waiting { name: c.name, code: c.code.clone() });
            }
            Json(json!({"code": c.code, "credential": c.credential})).into_response()
        }
        Err(e) => {
            let (why, status) = match e {
                Refused::TooFast => ("rate", StatusCode::TOO_MANY_REQUESTS),
                Refused::Expired => ("expired token", StatusCode::GONE),
                _ => ("wrong token", StatusCode::FORBIDDEN),
            };
            refuse(&shared, why, status, e.to_string())
        }
    }
}

async fn me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let credential = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let device = credential.and_then(|c| lock(&shared.devices).check(c, now_ms()).ok().flatten());
    match device {
        Some(d) => Json(json!({"name": d.name})).into_response(),
        None => refuse(&shared, "not paired", StatusCode::UNAUTHORIZED, "this device is not paired".into()),
    }
}

/// The upgrade to the device's socket: only from the page's own origin.
async fn open_socket(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        return refuse(
            &shared,
            "origin",
            StatusCode::FORBIDDEN,
            "sockets must come from the companion page".into(),
        );
    }
    upgrade
        .max_message_size(socket::MAX_MESSAGE)
        .max_frame_size(socket::MAX_MESSAGE)
        .on_upgrade(move |ws| socket::run(shared, ws))
}

pub mod socket;

#[cfg(test)]
mod tests;
