//! The gateway over real HTTPS on loopback, with a client that trusts only its certificate:
//! pairing, the desktop's confirmation, a paired device after a restart, and what is refused.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use super::*;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/companion/assets");
use crate::companion::{cert, pairing};

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(cert: &Certificate, port: u16) -> Self {
        use ureq::tls::{Certificate as Root, RootCerts, TlsConfig};
        let root = Root::from_der(&cert.cert_der).to_owned();
        let tls = TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(vec![root]))).build();
        let config = ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).build();
        Self { agent: config.into(), base: format!("https://127.0.0.1:{port}") }
    }

    fn pair(&self, token: &str, nonce: &[u8], origin: &str) -> (u16, Value) {
        let body =
            json!({"token": token, "nonce": data_encoding::BASE64URL_NOPAD.encode(nonce), "name": "Pixel"});
        let r = self
            .agent
            .post(format!("{}/api/pair", self.base))
            .header("Origin", origin)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        (r.status().as_u16(), serde_json::from_str(&r.into_body().read_to_string().unwrap()).unwrap())
    }

    fn me(&self, credential: &str) -> u16 {
        let r = self
            .agent
            .get(format!("{}/api/me", self.base))
            .header("Authorization", format!("Bearer {credential}"));
        r.call().unwrap().status().as_u16()
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        let r = self.agent.get(format!("{}{path}", self.base)).call().unwrap();
        let csp =
            r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        (r.status().as_u16(), csp, r.into_body().read_to_string().unwrap())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_pairs_over_https_stays_paired_and_the_wrong_doors_stay_shut() {
    let dir = tempfile::tempdir().unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let cert = cert::load_or_make(&dir.path().join("companion"), &[lo]).unwrap();
    let db = dir.path().join("companion.sqlite3");
    let gateway = Gateway::start((lo, 0).into(), lo, &cert, &db, Path::new(PAGE)).await.unwrap();
    let client = Arc::new(Client::new(&cert, gateway.port()));
    let origin = format!("https://127.0.0.1:{}", gateway.port());

    // The page, under its policy.
    let c = client.clone();
    let (status, csp, body) = blocking(move || c.get("/")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("/app.js")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
    );

    // The link carries the token and the certificate's fingerprint in its fragment.
    let link = gateway.pair();
    let fragment = link.split_once('#').unwrap().1.to_owned();
    let (token, fingerprint) = fragment.split_once('.').unwrap();
    assert!(link.starts_with(&format!("https://127.0.0.1:{}/#", gateway.port())));
    assert_eq!(fingerprint, hex(&cert.fingerprint()));
    let token = token.to_owned();

    // From another origin: refused, and the token is still good.
    let (c, t) = (client.clone(), token.clone());
    let (status, _) = blocking(move || c.pair(&t, b"nonce", "https://evil.example")).await;
    assert_eq!(status, 403);

    let (c, t, o) = (client.clone(), token.clone(), origin.clone());
    let (status, claimed) = blocking(move || c.pair(&t, b"nonce", &o)).await;
    assert_eq!(status, 200, "{claimed}");
    let code = claimed["code"].as_str().unwrap().to_owned();
    assert_eq!(
        code,
        pairing::code(&cert.fingerprint(), &token, b"nonce"),
        "the page can check the code itself"
    );
    let credential = claimed["credential"].as_str().unwrap().to_owned();

    // The token is used: a second claim (someone else who saw the code) is refused.
    let (c, t, o) = (client.clone(), token.clone(), origin.clone());
    assert_eq!(blocking(move || c.pair(&t, b"other", &o)).await.0, 403);

    // Not confirmed yet: the credential does not work.
    let (c, k) = (client.clone(), credential.clone());
    assert_eq!(blocking(move || c.me(&k)).await, 401);
    assert_eq!(gateway.waiting(), Some(("Pixel".to_owned(), code.clone())));
    assert!(gateway.confirm("123456x").is_err());
    assert_eq!(gateway.confirm(&code).unwrap(), "Pixel");
    let (c, k) = (client.clone(), credential.clone());
    assert_eq!(blocking(move || c.me(&k)).await, 200);

    // After the desktop restarts (same certificate, same database), still paired.
    gateway.stop().await;
    let cert = cert::load_or_make(&dir.path().join("companion"), &[lo]).unwrap();
    let gateway = Gateway::start((lo, 0).into(), lo, &cert, &db, Path::new(PAGE)).await.unwrap();
    let client = Arc::new(Client::new(&cert, gateway.port()));
    let (c, k) = (client.clone(), credential.clone());
    assert_eq!(blocking(move || c.me(&k)).await, 200);
    assert_eq!(gateway.devices().unwrap().iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["Pixel"]);

    // Revoked: refused at once.
    assert!(gateway.revoke("pixel").unwrap());
    let (c, k) = (client.clone(), credential.clone());
    assert_eq!(blocking(move || c.me(&k)).await, 401);

    // A flood from one address is cut off; what was refused is counted.
    let c = client.clone();
    let statuses = blocking(move || (0..60).map(|_| c.me("guess")).collect::<Vec<_>>()).await;
    assert!(statuses.contains(&429), "{statuses:?}");
    let refused = gateway.refused();
    assert!(refused.iter().any(|(why, n)| *why == "rate" && *n > 0), "{refused:?}");
    assert!(refused.iter().any(|(why, _)| *why == "not paired"), "{refused:?}");
}
