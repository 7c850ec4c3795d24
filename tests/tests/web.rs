//! The web page at `/`, loaded in headless Chromium (Debian `chromium`, installed by
//! `scripts/test`): it reads the API with the key it is given and lists a connected client.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use roost_e2e::TestBroker;
use roost_e2e::mqtt5::Client5;

const KEY: &str = "web-key-0123456789abcdef";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=FILE`),
/// bounded; returns its standard output.
async fn chromium(profile: &Path, mode: &str, url: &str) -> String {
    assert!(Path::new(CHROMIUM).is_file(), "{CHROMIUM} is missing: install Debian's chromium (scripts/test does)");
    let run = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,800",
            // Virtual time runs the page's timers and waits for its fetches before the dump.
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("chromium finished in time")
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_page_shows_stats_and_a_connected_client_in_chromium() {
    let broker =
        TestBroker::start_with(&format!("[node]\nname = \"web-node\"\n[http]\napi_keys = [\"{KEY}\"]\n")).await;
    let _device = Client5::connect(broker.addr(), "visible-device").await;
    let dir = tempfile::tempdir().unwrap();
    // The dashboard's client list (tests/tests/dashboard.rs drives every page).
    let url = format!("http://{}/#/clients?key={KEY}", broker.http_addr());

    let dom = chromium(&dir.path().join("profile-dom"), "--dump-dom", &url).await;
    assert!(dom.contains("data-loaded=\"true\""), "the page did not load its data:\n{dom}");
    assert!(dom.contains("data-clientid=\"visible-device\""), "client missing from the page:\n{dom}");
    assert!(dom.contains("web-node"), "node name missing:\n{dom}");
    assert!(dom.contains(">mqtt</span>"), "{dom}");

    // Without the key the page says so instead of listing anything.
    let dom =
        chromium(&dir.path().join("profile-nokey"), "--dump-dom", &format!("http://{}/", broker.http_addr())).await;
    assert!(dom.contains("API: an API key is required") && !dom.contains("visible-device"), "{dom}");

    let shot = dir.path().join("page.png");
    chromium(&dir.path().join("profile-shot"), &format!("--screenshot={}", shot.display()), &url).await;
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert!(png.len() > 10_000, "a page with content, not a blank image ({} bytes)", png.len());
    broker.stop().await;
}
