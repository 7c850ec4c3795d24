//! The dashboard's operations and queues in Chromium: a client's queued and in-flight
//! messages in its detail, a trace started, downloaded (a real file saved by the browser),
//! stopped and downloaded again, the rules and plugins the gateway runs, and the effective
//! configuration with its secrets redacted.

use std::path::Path;

use roost_e2e::TestBroker;
use roost_e2e::mqtt5::{Client5, qos};

use super::cdp::Browser;
use super::{KEY, open};

/// Config for what the Operations page lists: a rule and a WebAssembly codec plugin.
pub fn config(dir: &Path) -> String {
    // A WAT guest (no AssemblyScript needed): its decode always asks for more bytes.
    let wasm = dir.join("idle.wasm");
    std::fs::write(&wasm, crate::plugin_guests::wat_guest("i32.const 0", "")).unwrap();
    format!(
        "[[rule]]\nid = \"vent-alert\"\nsql = 'SELECT payload FROM \"greenhouse/vent\"'\n\
         [[rule.action]]\ntype = \"republish\"\ntopic = \"alerts/vent\"\n\
         [[codec]]\nname = \"wasm-idle\"\nplugin = \"{}\"\nbind = \"127.0.0.1:0\"\nmountpoint = \"dev/\"\n",
        wasm.display()
    )
}

/// Clients that keep messages waiting: `sleeper` (a persistent session, offline: its queue
/// fills) and `slow-acker` (online, never acknowledges: its QoS 1 messages stay in flight).
pub async fn waiting_clients(broker: &TestBroker) -> Client5 {
    let mut sleeper = Client5::connect_persistent(broker.addr(), "sleeper", true, 3600).await;
    sleeper.subscribe("queue/#", qos(1)).await;
    sleeper.disconnect().await;
    let mut options = Client5::options(broker.addr(), "slow-acker");
    options.set_manual_acks(true);
    let mut slow = Client5::connect_with(options).await;
    slow.subscribe("queue/#", qos(1)).await;
    slow
}

/// The two clients' detail views list what waits for them.
pub async fn queued_and_in_flight(b: &mut Browser, sensor: &mut Client5) {
    for i in 0..3 {
        sensor.publish(&format!("queue/item/{i}"), qos(1), false, format!("waiting-{i}")).await;
    }
    open(b, "clients").await;
    b.fill("input[type=search]", "sleeper").await;
    b.wait_for("the sleeper listed", "document.querySelector('tr.client[data-clientid=\"sleeper\"]')").await;
    b.click("tr.client[data-clientid=\"sleeper\"]").await;
    b.wait_for(
        "the sleeper's three queued messages",
        "document.querySelectorAll('tr.queued').length === 3 && document.querySelector('tr.queued').textContent.includes('queue/item/0')",
    )
    .await;
    b.fill("input[type=search]", "slow-acker").await;
    b.wait_for("slow-acker listed", "document.querySelector('tr.client[data-clientid=\"slow-acker\"]')").await;
    b.click("tr.client[data-clientid=\"slow-acker\"]").await;
    let rows = b
        .wait_for(
            "slow-acker's messages in flight",
            "document.querySelectorAll('tr.inflight').length >= 1 && [...document.querySelectorAll('tr.inflight')].map(r => r.textContent)",
        )
        .await;
    assert!(rows[0].as_str().unwrap().contains("queue/item/0"), "{rows}");
    b.fill("input[type=search]", "").await;
}

/// Operations: a trace's file downloaded while it runs and after it stopped; rules,
/// plugins; the effective configuration without the API key or the LoRaWAN session keys.
pub async fn operations(b: &mut Browser, sensor: &mut Client5, trace_dir: &Path, downloads: &Path) {
    open(b, "operations").await;
    b.fill("#trace [name=target]", "sensor-1").await;
    b.fill("#trace [name=file]", &trace_dir.join("dashboard.trace").display().to_string()).await;
    b.click("#trace button[type=submit]").await;
    b.wait_for("the trace listed", "document.querySelector('tr.trace[data-name=\"client:sensor-1\"]')").await;
    sensor.publish("greenhouse/traced", qos(0), false, "in-the-trace").await;
    b.wait_for(
        "the traced publish counted",
        "Number(document.querySelector('tr.trace[data-name=\"client:sensor-1\"] td:nth-child(5)').textContent) >= 2",
    )
    .await;
    b.allow_downloads(downloads).await;
    b.click("button[data-download=\"client:sensor-1\"]").await;
    b.wait_for("the download done", "document.getElementById('main').innerText.includes('Downloaded client:sensor-1')")
        .await;
    let file = downloads.join("client_sensor-1.trace.txt");
    let text = b.wait_for_file(&file, "in-the-trace").await;
    assert!(text.contains("client=sensor-1"), "{text}");
    std::fs::remove_file(&file).unwrap();
    // Stopped, it stays listed (and downloadable) with the line saying so.
    b.click("tr.trace[data-name=\"client:sensor-1\"] button.danger").await;
    b.wait_for(
        "the trace stopped",
        "document.querySelector('tr.trace[data-name=\"client:sensor-1\"]').textContent.includes('stopped')",
    )
    .await;
    b.click("button[data-download=\"client:sensor-1\"]").await;
    let text = b.wait_for_file(&file, "stopped").await;
    assert!(text.contains("in-the-trace"), "{text}");

    b.wait_for("the rule", "document.querySelector('tr.rule[data-rule=\"vent-alert\"]')").await;
    let plugin = b
        .wait_for(
            "the plugin",
            "document.querySelector('tr.plugin') && document.querySelector('tr.plugin').textContent",
        )
        .await;
    assert!(plugin.as_str().unwrap().contains("idle.wasm") && plugin.as_str().unwrap().contains("wasm"), "{plugin}");
    let config = b.wait_for("the configuration", "document.getElementById('config').textContent").await;
    let config = config.as_str().unwrap();
    assert!(config.contains("name = \"edge-1\"") && config.contains("[mqtt]"), "{config}");
    for secret in [KEY, super::devices::NWK, super::devices::APP] {
        assert!(!config.contains(secret), "the configuration shows a secret:\n{config}");
    }
    assert!(config.contains("api_keys = [\"******\"]"), "{config}");
    assert!(b.eval("document.getElementById('main').innerText").await.as_str().unwrap().contains("A single node"));
}
