//! The companion socket over real TLS on loopback, with a WebSocket client that trusts only the
//! gateway's certificate: what a paired device can do, and every way in that must stay shut
//! (another origin, no or a wrong credential, too much, too big, too slow, revoked).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error, Message};

use super::super::{DeviceEvent, Gateway, lock, now_ms};
use super::*;
use crate::companion::cert::{self, Certificate};
use crate::companion::devices::hash;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/companion/assets");
type Socket = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

struct Setup {
    _dir: tempfile::TempDir,
    cert: Certificate,
    gateway: Gateway,
    events: mpsc::Receiver<DeviceEvent>,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let cert = cert::load_or_make(&dir.path().join("companion"), &[lo]).unwrap();
        let db = dir.path().join("companion.sqlite3");
        let gateway =
            Gateway::start((lo, 0).into(), lo, &cert, &db, std::path::Path::new(PAGE)).await.unwrap();
        let (tx, events) = mpsc::channel(256);
        let gateway = gateway.notifying(tx);
        // Two devices paired, as a confirmed pairing leaves them.
        for (name, credential) in [("Pixel", "pixel-secret"), ("Deck", "deck-secret")] {
            lock(&gateway.shared.devices).add(name, &hash(credential), now_ms()).unwrap();
        }
        Self { _dir: dir, cert, gateway, events }
    }

    fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.gateway.port())
    }

    async fn connect(&self, origin: &str) -> Result<Socket, Error> {
        let tcp = TcpStream::connect(("127.0.0.1", self.gateway.port())).await?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(self.cert.cert_der.clone())).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
        let mut request =
            format!("wss://127.0.0.1:{}/api/socket", self.gateway.port()).into_client_request()?;
        request.headers_mut().insert("Origin", origin.parse().unwrap());
        Ok(tokio_tungstenite::client_async(request, tls).await?.0)
    }

    /// A socket signed in as the device of `credential`.
    async fn device(&mut self, credential: &str) -> Socket {
        let mut ws = self.connect(&self.origin()).await.unwrap();
        ws.send(Message::text(json!({ "credential": credential }).to_string())).await.unwrap();
        ws
    }

    async fn event(&mut self) -> DeviceEvent {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv()).await.expect("an event").unwrap()
    }
}

/// The close code the socket ends with (skipping other messages).
async fn closed_with(ws: &mut Socket) -> Option<u16> {
    let read = async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(8), read).await.expect("the socket closes")
}

async fn next_text(ws: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message");
        if let Message::Text(text) = message.unwrap().unwrap() {
            return text.to_string();
        }
    }
}

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_device_talks_both_ways_and_is_closed_at_once_when_revoked() {
    let mut s = Setup::new().await;
    let mut pixel = s.device("pixel-secret").await;
    assert_eq!(s.event().await, DeviceEvent::Connected { device: "Pixel".into() });
    pixel.send(Message::text(r#"{"type":"ptt","down":true}"#)).await.unwrap();
    assert_eq!(
        s.event().await,
        DeviceEvent::Message { device: "Pixel".into(), text: r#"{"type":"ptt","down":true}"#.into() }
    );
    assert_eq!(s.gateway.connected(), ["Pixel"]);

    // To one device, and to all.
    let mut deck = s.device("deck-secret").await;
    assert_eq!(s.event().await, DeviceEvent::Connected { device: "Deck".into() });
    assert_eq!(s.gateway.send(Some("Pixel"), "for pixel"), 1);
    assert_eq!(next_text(&mut pixel).await, "for pixel");
    assert_eq!(s.gateway.send(None, "for all"), 2);
    assert_eq!(next_text(&mut pixel).await, "for all");
    assert_eq!(next_text(&mut deck).await, "for all");

    // Revoked: its socket closes at once, the other stays.
    assert!(s.gateway.revoke("pixel").unwrap());
    assert_eq!(closed_with(&mut pixel).await, Some(REVOKED));
    assert_eq!(s.event().await, DeviceEvent::Left { device: "Pixel".into() });
    assert_eq!(s.gateway.connected(), ["Deck"]);
    // And its credential opens nothing any more.
    let mut again = s.device("pixel-secret").await;
    assert_eq!(closed_with(&mut again).await, Some(NOT_PAIRED));
    assert_eq!(s.gateway.send(Some("Deck"), "still here"), 1);
    assert_eq!(next_text(&mut deck).await, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_floods_and_oversized_messages_are_turned_away() {
    let mut s = Setup::new().await;
    // Another origin cannot open the socket at all.
    match s.connect("https://evil.example").await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("opened from another origin: {:?}", other.map(|_| ())),
    }
    // A wrong credential, a message that is not one, or none at all: closed, not paired.
    let mut wrong = s.device("guess").await;
    assert_eq!(closed_with(&mut wrong).await, Some(NOT_PAIRED));
    let mut nonsense = s.connect(&s.origin()).await.unwrap();
    nonsense.send(Message::text("hello")).await.unwrap();
    assert_eq!(closed_with(&mut nonsense).await, Some(NOT_PAIRED));
    let mut silent = s.connect(&s.origin()).await.unwrap();
    assert_eq!(closed_with(&mut silent).await, Some(NOT_PAIRED), "after {AUTH_TIME:?}");

    // A flood from a paired device: its budget passes, the rest is dropped and counted.
    let mut pixel = s.device("pixel-secret").await;
    assert!(matches!(s.event().await, DeviceEvent::Connected { .. }));
    for i in 0..200 {
        pixel.send(Message::text(format!("{i}"))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut passed = 0;
    while let Ok(DeviceEvent::Message { .. }) = s.events.try_recv() {
        passed += 1;
    }
    assert!((MESSAGE_BURST as usize..MESSAGE_BURST as usize + 20).contains(&passed), "{passed} passed");
    let refused = s.gateway.refused();
    assert!(refused.iter().any(|(why, n)| *why == "device over budget" && *n >= 100), "{refused:?}");

    // Too big: the socket is closed, nothing reaches the desktop.
    pixel.send(Message::text("x".repeat(MAX_MESSAGE + 1))).await.unwrap();
    assert_ne!(closed_with(&mut pixel).await, Some(1000));
    assert_eq!(s.event().await, DeviceEvent::Left { device: "Pixel".into() });
    assert!(s.events.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_does_not_read_is_let_go_and_a_third_page_replaces_the_oldest() {
    let mut s = Setup::new().await;
    let mut first = s.device("pixel-secret").await;
    assert!(matches!(s.event().await, DeviceEvent::Connected { .. }));
    let mut second = s.device("pixel-secret").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = s.device("pixel-secret").await;
    assert_eq!(closed_with(&mut first).await, Some(REPLACED));
    tokio::spawn(async move { while third.next().await.is_some() {} });
    assert_eq!(s.gateway.connected(), ["Pixel"], "still connected by the other two");

    // `second` reads nothing: once the network's buffers and its queue are full, it is closed
    // rather than holding the desktop's messages without end.
    let big = "y".repeat(MAX_MESSAGE);
    let mut sent = 0;
    while sent < 20_000 && s.gateway.send(Some("Pixel"), &big) == 2 {
        sent += 1;
        if sent % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(sent < 20_000, "a device that reads nothing is let go");
    // Its close frame may not get through the full buffers: the socket ends either way.
    assert!(matches!(closed_with(&mut second).await, None | Some(TOO_SLOW)));
    assert_eq!(s.gateway.send(Some("Pixel"), "to the page that reads"), 1);
}
