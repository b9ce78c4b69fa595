//! A real browser for the companion page's tests: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver) with `fantoccini`. The gateway's self-signed certificate is pinned by
//! its public key (`--ignore-certificate-errors-spki-list`), so the page runs in a secure context
//! as it would on a phone that accepted the certificate.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

pub struct Browser {
    driver: Child,
    client: Client,
    runtime: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.runtime.block_on(client.close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that trusts the certificate with this public
    /// key pin (base64 SHA-256 of its SubjectPublicKeyInfo).
    pub fn start(spki_pin: &str) -> Self {
        Self::start_with(spki_pin, &[])
    }

    /// The same, with more Chromium switches (a fake microphone, say).
    pub fn start_with(spki_pin: &str, extra: &[String]) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromedriver ({e}); scripts/setup.sh installs chromium-driver")
            });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={spki_pin}"),
        ];
        let args: Vec<String> = args.into_iter().chain(extra.iter().cloned()).collect();
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "args": args }));
        let started = Instant::now();
        let client = loop {
            let connected = runtime.block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&format!("http://127.0.0.1:{port}")),
            );
            match connected {
                Ok(client) => break client,
                Err(e) if started.elapsed() > Duration::from_secs(20) => {
                    panic!("chromium did not start: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        Self { driver, client, runtime, _profile: profile }
    }

    pub fn open(&self, url: &str) {
        self.runtime.block_on(self.client.goto(url)).unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    pub fn reload(&self) {
        self.runtime.block_on(self.client.refresh()).unwrap();
    }

    /// Runs `script` in the page (a function body: `return …`); what it returned.
    pub fn script(&self, script: &str) -> serde_json::Value {
        self.runtime.block_on(self.client.execute(script, vec![])).unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// The text of the element with this id ("" if there is none).
    pub fn text(&self, id: &str) -> String {
        let client = self.client.clone();
        self.runtime.block_on(async move {
            match client.find(Locator::Id(id)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        })
    }

    /// Moves the mouse onto the element with this id and holds its left button down.
    pub fn press(&self, id: &str) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let client = self.client.clone();
        self.runtime.block_on(async move {
            let element = client.find(Locator::Id(id)).await.unwrap();
            let mouse = MouseActions::new("mouse".into())
                .then(PointerAction::MoveToElement { element, duration: None, x: 0.0, y: 0.0 })
                .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT });
            client.perform_actions(mouse).await.unwrap();
        });
    }

    /// Lets the mouse button go.
    pub fn release(&self) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        self.runtime.block_on(self.client.perform_actions(mouse)).unwrap();
    }

    /// Clicks the element with this id.
    pub fn click(&self, id: &str) {
        let client = self.client.clone();
        self.runtime.block_on(async move { client.find(Locator::Id(id)).await?.click().await }).unwrap();
    }

    /// Types `text` into the element with this id.
    pub fn type_into(&self, id: &str, text: &str) {
        let client = self.client.clone();
        self.runtime
            .block_on(async move { client.find(Locator::Id(id)).await?.send_keys(text).await })
            .unwrap();
    }

    /// Waits until what `script` returns satisfies `want`; returns it.
    pub fn wait_script(
        &self,
        script: &str,
        timeout: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        poll(timeout, || self.script(script), want, |v| format!("{script} returns {v}"))
    }

    /// Waits until the text of `id` satisfies `want`; returns it.
    pub fn wait_text(&self, id: &str, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        poll(timeout, || self.text(id), |t| want(t), |t| format!("#{id} says {t:?}"))
    }
}

/// Reads `read` every 50 ms until `want` holds, returning what was read; panics with `say` of
/// the last reading after `timeout`.
fn poll<T>(
    timeout: Duration,
    read: impl Fn() -> T,
    want: impl Fn(&T) -> bool,
    say: impl Fn(&T) -> String,
) -> T {
    let started = Instant::now();
    loop {
        let value = read();
        if want(&value) {
            return value;
        }
        assert!(started.elapsed() < timeout, "{}", say(&value));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The companion plugin's page as the source tree has it (what the gateway serves).
pub fn companion_page() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/companion/assets")
}
