//! The companion page in a real browser (headless Chromium), against the gateway over HTTPS on
//! loopback: pairing from the link, the desktop's confirmation, still paired after a reload and a
//! desktop restart, and refused once revoked.

use std::net::IpAddr;
use std::time::Duration;

use partyline::companion::{cert, gateway::Gateway};
use partyline_tests::browser::{Browser, companion_page as page};

#[test]
fn a_browser_pairs_from_the_link_stays_paired_and_is_refused_once_revoked() {
    let _turn = partyline_tests::exclusive();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let cert = cert::load_or_make(&dir.path().join("companion"), &[lo]).unwrap();
    let db = dir.path().join("companion.sqlite3");
    let gateway = runtime.block_on(Gateway::start((lo, 0).into(), lo, &cert, &db, &page())).unwrap();
    let browser = Browser::start(&cert.spki_pin().unwrap());

    // The link, as the QR code carries it: the page claims it and shows the code it computed
    // itself, which is the one the desktop holds.
    let link = gateway.pair();
    browser.open(&link);
    let code = browser.wait_text("code", Duration::from_secs(20), |t| t.len() == 6);
    let (name, waiting) = gateway.waiting().expect("a device waits for confirmation");
    assert_eq!(waiting, code);
    gateway.confirm(&code).unwrap();
    let paired = browser.wait_text("status", Duration::from_secs(10), |t| t.starts_with("Paired as"));
    assert_eq!(paired, format!("Paired as {name}."));

    // The same link again (a reused token): refused, and the page says so; the device stays
    // paired.
    browser.open(&link);
    browser.wait_text("status", Duration::from_secs(10), |t| t.contains("no pairing is open"));
    browser.open(&format!("https://127.0.0.1:{}/", gateway.port()));
    browser.wait_text("status", Duration::from_secs(10), |t| t == paired);

    // After the desktop restarts, a reload is still paired.
    let port = gateway.port();
    runtime.block_on(gateway.stop());
    let gateway = runtime.block_on(Gateway::start((lo, port).into(), lo, &cert, &db, &page())).unwrap();
    browser.reload();
    browser.wait_text("status", Duration::from_secs(10), |t| t == paired);

    // Revoked on the desktop: the page is told it is not paired.
    assert!(gateway.revoke(&name).unwrap());
    browser.reload();
    browser.wait_text("status", Duration::from_secs(10), |t| t.contains("not paired"));
}

/// Through the running Partyline: `/pair-device` gives the link, the page in the browser claims
/// it, the desktop hears which device asks with which code, `/confirm-device` pairs it, and
/// `/devices` and `/revoke-device` list and unpair it.
#[test]
fn pairing_runs_through_the_headless_commands() {
    let _turn = partyline_tests::exclusive();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("config")).unwrap();
    std::fs::write(home.path().join("config/settings.toml"), "[companion]\nport = 0\n").unwrap();
    assert!(partyline_tests::plugins::plugins(home.path(), &["enable", "companion"]).0);
    let mut args = vec!["host", "--name", "ana"];
    args.extend_from_slice(partyline_tests::LOOPBACK);
    args.extend_from_slice(partyline_tests::NO_VOICE);
    let mut ana = partyline_tests::Proc::start_in("ana", home.path(), &args, None, &[]);
    ana.wait_event(Duration::from_secs(20), "link");

    ana.send("/pair-device");
    let url =
        ana.wait_event(Duration::from_secs(10), "companion-pairing")["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://") && url.contains("/#"), "{url}");
    let cert = cert::load_or_make(&home.path().join("data/companion"), &cert::lan_ips()).unwrap();
    let browser = Browser::start(&cert.spki_pin().unwrap());
    browser.open(&url);
    let code = browser.wait_text("code", Duration::from_secs(20), |t| t.len() == 6);
    let waiting = ana.wait_event(Duration::from_secs(10), "device-waiting");
    assert_eq!(waiting["code"], code.as_str());
    let name = waiting["name"].as_str().unwrap().to_owned();

    ana.send(&format!("/confirm-device {code}"));
    assert_eq!(ana.wait_event(Duration::from_secs(10), "device-paired")["name"], name.as_str());
    browser.wait_text("status", Duration::from_secs(10), |t| t == format!("Paired as {name}."));
    ana.send("/devices");
    let devices = ana.wait_event(Duration::from_secs(10), "devices");
    assert_eq!(devices["devices"][0]["name"], name.as_str(), "{devices}");

    ana.send("/confirm-device 000000");
    assert!(ana.wait_event(Duration::from_secs(10), "error")["message"].as_str().unwrap().contains("000000"));
    ana.send(&format!("/revoke-device {name}"));
    ana.wait_event(Duration::from_secs(10), "device-revoked");
    browser.reload();
    browser.wait_text("status", Duration::from_secs(10), |t| t.contains("not paired"));
}

/// The companion plugin without `companion` granted asks for it, and the gateway stays off; once
/// the user grants it, the gateway starts, with no restart.
#[test]
fn the_gateway_starts_once_its_plugin_is_granted() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("config")).unwrap();
    std::fs::write(home.path().join("config/settings.toml"), "[companion]\nport = 0\n").unwrap();
    let plugins = partyline_tests::plugins::plugins;
    assert!(plugins(home.path(), &["enable", "companion"]).0);
    assert!(plugins(home.path(), &["revoke", "companion", "companion"]).0);
    let mut args = vec!["host", "--name", "ana"];
    args.extend_from_slice(partyline_tests::LOOPBACK);
    args.extend_from_slice(partyline_tests::NO_VOICE);
    let mut ana = partyline_tests::Proc::start_in("ana", home.path(), &args, None, &[]);
    ana.wait_event(Duration::from_secs(20), "link");
    let asks = ana.seen_or_wait(Duration::from_secs(10), "the companion's ask", |e| {
        e["event"] == "plugin-asks" && e["plugin"] == "companion"
    });
    assert_eq!(asks["permissions"], serde_json::json!(["companion"]), "{asks}");
    ana.send("/pair-device");
    let off = ana.wait_event(Duration::from_secs(10), "error");
    assert!(off["message"].as_str().unwrap().contains("gateway is off"), "{off}");

    ana.send("/grant-plugin companion");
    ana.send("/pair-device");
    let url =
        ana.wait_event(Duration::from_secs(10), "companion-pairing")["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://") && url.contains("/#"), "{url}");
}
