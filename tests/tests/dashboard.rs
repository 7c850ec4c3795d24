//! The dashboard at `/` in a real browser (headless Chromium over the DevTools protocol)
//! against the gateway with simulated devices of five protocols (MQTT, MQTT-SN, CoAP,
//! LwM2M, LoRaWAN): log in with the API key, see every page populated, kick a client,
//! publish and see the message arrive in the topic explorer, read and write an LwM2M
//! resource from the object tree, enqueue a LoRaWAN downlink; without the key the page
//! asks for it and every data call is 401.
//!
//! Also: a client's queued and in-flight messages, a publish with MQTT 5 properties seen
//! live and by a device, a trace downloaded, rules, plugins and the redacted configuration
//! (see `ops`); the cluster's nodes on a clustered gateway (see `cluster`).
//!
//! Every page is captured at 1280x800 and 390x844 and checked for sideways overflow. With
//! `ROOST_DASHBOARD_SHOTS=DIR` the screenshots go to DIR (the ones in `docs/dashboard/` are
//! made so, after a minute of traffic so the charts have lines); otherwise to a temporary
//! directory.

mod cdp;
mod cluster;
mod devices;
mod fleet;
mod ops;
mod proxy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdp::Browser;
use roost_core::ClientId;
use roost_e2e::TestBroker;
use roost_e2e::mqtt5::{Client5, qos};
use serde_json::json;

const KEY: &str = "dashboard-key-0123456789abcdef";
const PAGES: [&str; 7] = ["overview", "clients", "topics", "lwm2m", "lorawan", "sessions", "operations"];
/// Every data call the pages make (one per kind of route).
const DATA_CALLS: [&str; 18] = [
    "/stats",
    "/metrics",
    "/dashboard/history",
    "/dashboard/watch?topic=%23",
    "/clients",
    "/clients/sensor-1/messages",
    "/subscriptions",
    "/retained",
    "/traces",
    "/traces/download?type=client&target=sensor-1",
    "/config",
    "/cluster",
    "/rules",
    "/plugins",
    "/lwm2m/devices",
    "/lwm2m/objects",
    "/lorawan/gateways",
    "/lorawan/devices",
];

#[tokio::test]
async fn the_dashboard_shows_and_manages_every_protocol_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[node]\nname = \"edge-1\"\n[http]\napi_keys = [\"{KEY}\"]\n{}{}",
        devices::lorawan_config(),
        ops::config(tmp.path())
    );
    let broker = TestBroker::start_with(&config).await;
    let mut sensor = Client5::connect(broker.addr(), "sensor-1").await;
    sensor.subscribe("greenhouse/#", qos(1)).await;
    let _kick_me = Client5::connect(broker.addr(), "kick-me").await;
    let _sn = devices::mqttsn(broker.mqttsn_addr(), "sn-node-1").await;
    let _coap = devices::coap(&broker).await;
    let _lwm2m = devices::lwm2m(&broker, "lwm2m-dev-1").await;
    let _forwarder = devices::lorawan(&broker, 1).await;
    let _slow = ops::waiting_clients(&broker).await;
    let base = format!("http://{}/", broker.http_addr());

    let mut b = Browser::launch().await;
    without_a_key_nothing_is_shown(&mut b, &base).await;
    log_in(&mut b, &base).await;
    overview(&mut b).await;
    clients_and_kick(&mut b, &broker).await;
    ops::queued_and_in_flight(&mut b, &mut sensor).await;
    topics_publish_and_watch(&mut b, &mut sensor).await;
    lwm2m_read_and_write(&mut b).await;
    lorawan_downlink(&mut b, &broker).await;
    sessions(&mut b).await;
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    ops::operations(&mut b, &mut sensor, tmp.path(), &downloads).await;
    behind_a_reverse_proxy(&mut b, &broker, &mut sensor).await;

    let shots = std::env::var_os("ROOST_DASHBOARD_SHOTS").map(PathBuf::from);
    if shots.is_some() {
        // Traffic for a minute, so the charts show rates over time.
        for i in 0..60u32 {
            sensor.publish(&format!("greenhouse/temp/{}", i % 4), qos(0), false, format!("{}", 20 + i % 5)).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    screenshots(&mut b, &broker, &mut sensor, shots.as_deref().unwrap_or(tmp.path())).await;
    broker.stop().await;
}

async fn without_a_key_nothing_is_shown(b: &mut Browser, base: &str) {
    b.goto(base).await;
    b.wait_for("the login form", "document.body.dataset.page === 'login' && !document.getElementById('login').hidden")
        .await;
    let status = b.wait_for("why login is asked", "document.getElementById('status').textContent").await;
    assert!(status.as_str().unwrap().contains("API key is required"), "{status}");
    assert_eq!(b.eval("document.getElementById('main').textContent").await, json!(""));
    // Every data call without the key, and with a wrong one, is 401.
    let calls = serde_json::to_string(&DATA_CALLS).unwrap();
    let statuses = b
        .eval(&format!(
            "Promise.all({calls}.flatMap(p => [fetch('api/v1' + p).then(r => r.status),
              fetch('api/v1' + p, {{ headers: {{ Authorization: 'Bearer wrong' }} }}).then(r => r.status)]))"
        ))
        .await;
    assert_eq!(statuses, json!(vec![401; DATA_CALLS.len() * 2]), "{DATA_CALLS:?}");
}

async fn log_in(b: &mut Browser, base: &str) {
    b.fill("#key", "not-the-key").await;
    b.click("#keyform button").await;
    b.wait_for("a refused key", "document.getElementById('status').textContent.includes('API key is required')").await;
    b.fill("#key", KEY).await;
    b.click("#keyform button").await;
    b.wait_for("the overview after login", "document.body.dataset.page === 'overview' && document.body.dataset.loaded")
        .await;
    assert!(b.eval("document.getElementById('login').hidden").await.as_bool().unwrap());
    // The page uses relative URLs only, so a reverse proxy may serve it under any prefix.
    let absolute = b
        .eval("[...document.querySelectorAll('script[src],link[href]')].map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => u.startsWith('/'))")
        .await;
    assert_eq!(absolute, json!([]), "absolute asset URLs");
    assert!(base.ends_with('/'));
}

async fn overview(b: &mut Browser) {
    let text = b.eval("document.getElementById('main').innerText").await;
    let text = text.as_str().unwrap();
    for want in [
        "version",
        "uptime",
        "connections",
        "Connections by protocol",
        "Messages in per second",
        "Resident memory",
        "CPU",
    ] {
        assert!(text.contains(want), "overview lacks {want:?}:\n{text}");
    }
    assert!(b.eval("document.getElementById('node').textContent").await.as_str().unwrap().contains("edge-1"));
    assert_eq!(b.eval("document.querySelectorAll('canvas.chart').length").await, json!(6));
    // The charts come from the bounded history: at least the sample taken at start.
    let samples = b.eval("fetch('api/v1/dashboard/history', { headers: { Authorization: 'Bearer ' + localStorage.getItem('roost.api_key') } }).then(r => r.json()).then(h => [h.time.length, h.capacity])").await;
    assert!(samples[0].as_u64().unwrap() >= 1 && samples[1] == json!(720), "{samples}");
}

pub(crate) async fn open(b: &mut Browser, page: &str) {
    b.eval(&format!("location.hash = '#/{page}'")).await;
    b.wait_for(
        &format!("the {page} page"),
        &format!("document.body.dataset.page === '{page}' && document.body.dataset.loaded"),
    )
    .await;
}

async fn clients_and_kick(b: &mut Browser, broker: &TestBroker) {
    open(b, "clients").await;
    let protocols = b
        .wait_for(
            "clients of every protocol",
            "(() => { const p = new Set([...document.querySelectorAll('tr.client td:nth-child(2)')].map(t => t.textContent));
               return ['mqtt', 'mqtt-sn', 'coap', 'lwm2m', 'lorawan'].every(x => p.has(x)) && [...p]; })()",
        )
        .await;
    eprintln!("client list protocols: {protocols}");
    // Server-side search.
    b.fill("input[type=search]", "kick").await;
    b.wait_for("the search result", "document.querySelectorAll('tr.client').length === 1 && document.querySelector('tr.client[data-clientid=\"kick-me\"]')").await;
    b.click("tr.client[data-clientid=\"kick-me\"]").await;
    b.wait_for("the client's detail", "document.querySelector('[data-action=kick]')").await;
    b.click("[data-action=kick]").await;
    b.wait_for("the kick confirmed", "document.getElementById('main').innerText.includes('Kicked.')").await;
    let online = broker.broker().client(&ClientId::new("kick-me")).is_some_and(|c| c.connected);
    assert!(!online, "kick-me is still connected");
    b.fill("input[type=search]", "sensor").await;
    b.wait_for("the search result", "document.querySelectorAll('tr.client').length === 1 && document.querySelector('tr.client[data-clientid=\"sensor-1\"]')").await;
    b.click("tr.client[data-clientid=\"sensor-1\"]").await;
    b.wait_for(
        "sensor-1's subscription in its detail",
        "document.getElementById('main').innerText.includes('greenhouse/#')",
    )
    .await;
    b.fill("input[type=search]", "").await;
}

async fn topics_publish_and_watch(b: &mut Browser, sensor: &mut Client5) {
    open(b, "topics").await;
    b.wait_for("the watch running", "document.body.dataset.watching === '#'").await;
    b.wait_for(
        "the CoAP retained value listed",
        "document.querySelector('tr.retained[data-topic=\"greenhouse/vent\"]')",
    )
    .await;
    b.fill("#publish [name=topic]", "greenhouse/lamp/set").await;
    b.fill("#publish [name=payload]", "on-from-dashboard").await;
    // MQTT 5 properties, from the form's properties section.
    b.fill("#publish [name=content_type]", "text/plain").await;
    b.fill("#publish [name=response_topic]", "greenhouse/lamp/reply").await;
    b.fill("#publish [name=correlation_data]", "req-7").await;
    b.fill("#publish [name=message_expiry_interval]", "600").await;
    b.fill("#publish [name=user_properties]", "site=north\nrow=3").await;
    b.click("#publish button[type=submit]").await;
    b.wait_for("the published message in the live view", "[...document.querySelectorAll('tr.message[data-topic=\"greenhouse/lamp/set\"]')].some(r => r.textContent.includes('on-from-dashboard') && r.textContent.includes('site=north') && r.textContent.includes('content-type: text/plain'))").await;
    // The device subscribed to greenhouse/# gets it too (after the CoAP device's value),
    // with its properties.
    loop {
        let p = sensor.expect_publish(roost_e2e::WAIT).await;
        if &p.topic[..] == b"greenhouse/lamp/set" {
            assert_eq!(&p.payload[..], b"on-from-dashboard");
            let props = p.properties.expect("the publish carries properties");
            assert_eq!(props.content_type.as_deref(), Some("text/plain"));
            assert_eq!(props.response_topic.as_deref(), Some("greenhouse/lamp/reply"));
            assert_eq!(props.correlation_data.as_deref(), Some(&b"req-7"[..]));
            assert!(props.message_expiry_interval.is_some_and(|s| s <= 600 && s > 500), "{props:?}");
            assert_eq!(props.user_properties, vec![("row".into(), "3".into()), ("site".into(), "north".into())]);
            break;
        }
    }
    // A device's publish shows up too.
    sensor.publish("greenhouse/temp/1", qos(0), false, "21.5").await;
    b.wait_for(
        "a device's message in the live view",
        "document.querySelector('tr.message[data-topic=\"greenhouse/temp/1\"]')",
    )
    .await;
    // Delete a retained message from the list.
    b.click("button[data-delete=\"greenhouse/vent\"]").await;
    b.wait_for("the retained message gone", "!document.querySelector('tr.retained[data-topic=\"greenhouse/vent\"]')")
        .await;
}

async fn lwm2m_read_and_write(b: &mut Browser) {
    open(b, "lwm2m").await;
    b.click("tr.device[data-endpoint=\"lwm2m-dev-1\"]").await;
    b.wait_for("the object tree", "document.querySelector('button[data-op=read][data-path=\"/3/0/0\"]')").await;
    let names = b.eval("document.querySelector('.tree').innerText").await;
    assert!(names.as_str().unwrap().contains("Device") && names.as_str().unwrap().contains("Manufacturer"), "{names}");
    b.click("button[data-op=read][data-path=\"/3/0/0\"]").await;
    let v =
        b.wait_for("the manufacturer read", "document.querySelector('.val[data-path=\"/3/0/0\"]').dataset.value").await;
    assert_eq!(v, json!("Roost"));
    b.fill("input[aria-label=\"value for /3/0/14\"]", "+02:00").await;
    b.click("button[data-op=write][data-path=\"/3/0/14\"]").await;
    b.wait_for(
        "the write's 2.04",
        "[...document.querySelectorAll('tr.result[data-path=\"/3/0/14\"]')].some(r => r.textContent.includes('2.04'))",
    )
    .await;
    b.click("button[data-op=read][data-path=\"/3/0/14\"]").await;
    b.wait_for(
        "the written value read back",
        "document.querySelector('.val[data-path=\"/3/0/14\"]').dataset.value === '+02:00'",
    )
    .await;
}

async fn lorawan_downlink(b: &mut Browser, broker: &TestBroker) {
    open(b, "lorawan").await;
    b.wait_for("the gateway", "document.querySelector('tr.gateway') && document.querySelector('tr.gateway').textContent.includes('aa55000000000001')").await;
    b.wait_for("the device", "document.querySelector('tr.lora-device[data-deveui=\"0101010101010101\"]')").await;
    // An uplink while the page watches: it enters the frame log with its radio figures.
    let _fwd = devices::lorawan(broker, 2).await;
    b.wait_for(
        "the uplink in the frame log",
        "[...document.querySelectorAll('tr.frame')].some(r => r.textContent.includes('-57'))",
    )
    .await;
    b.fill("#downlink [name=data_hex]", "01ff").await;
    b.fill("#downlink [name=f_port]", "10").await;
    b.click("#downlink button[type=submit]").await;
    b.wait_for("the downlink queued", "document.getElementById('downlink').innerText.includes('Queued (id')").await;
    b.wait_for(
        "the queue depth in the device list",
        "document.querySelector('tr.lora-device[data-deveui=\"0101010101010101\"] td:last-child').textContent === '1'",
    )
    .await;
}

async fn sessions(b: &mut Browser) {
    open(b, "sessions").await;
    b.wait_for("the MQTT-SN session", "document.querySelector('tr.session[data-clientid=\"sn-node-1\"]')").await;
    b.wait_for("a CoAP session", "document.querySelectorAll('tr.session').length >= 2").await;
    b.click("tr.session[data-clientid=\"sn-node-1\"]").await;
    b.wait_for(
        "what waits for the MQTT-SN client",
        "document.getElementById('main').innerText.includes('Waiting for sn-node-1') && document.querySelector('.messages')",
    )
    .await;
}

/// The same page under `/roost/` of a reverse proxy: it logs in, lists, and streams.
async fn behind_a_reverse_proxy(b: &mut Browser, broker: &TestBroker, sensor: &mut Client5) {
    let proxy = proxy::start("/roost", broker.http_addr()).await;
    b.goto(&format!("http://{proxy}/roost/#/clients?key={KEY}")).await;
    b.wait_for(
        "the client list through the proxy",
        "document.body.dataset.page === 'clients' && document.querySelector('tr.client[data-clientid=\"sensor-1\"]')",
    )
    .await;
    assert_eq!(b.eval("location.pathname").await, json!("/roost/"), "the key left the address bar, the prefix stayed");
    open(b, "topics").await;
    b.wait_for("the watch through the proxy", "document.body.dataset.watching === '#'").await;
    sensor.publish("greenhouse/proxy", qos(0), false, "via-proxy").await;
    b.wait_for(
        "a message streamed through the proxy",
        "document.querySelector('tr.message[data-topic=\"greenhouse/proxy\"]')",
    )
    .await;
    b.goto(&format!("http://{}/", broker.http_addr())).await;
    b.wait_for("the overview again", "document.body.dataset.page === 'overview' && document.body.dataset.loaded").await;
}

/// Every page at a desktop and a phone size, each with something to show: nothing wider
/// than the screen, a PNG each.
async fn screenshots(b: &mut Browser, broker: &TestBroker, sensor: &mut Client5, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut fcnt = 3;
    for (name, w, h, mobile) in [("desktop", 1280, 800, false), ("phone", 390, 844, true)] {
        b.viewport(w, h, mobile).await;
        for page in PAGES {
            open(b, page).await;
            match page {
                "clients" => {
                    b.click("tr.client[data-clientid=\"sleeper\"]").await;
                    b.wait_for("the sleeper's queue", "document.querySelector('tr.queued')").await;
                }
                "topics" => {
                    b.wait_for("the watch running", "document.body.dataset.watching === '#'").await;
                    sensor.publish("greenhouse/vent/state", qos(1), true, "half-open").await;
                    for (t, v) in [("greenhouse/temp/1", "21.4"), ("greenhouse/humidity/1", "{\"rh\": 64}")] {
                        sensor.publish(t, qos(0), false, v).await;
                    }
                    b.wait_for("messages in the live view", "document.querySelectorAll('tr.message').length >= 3")
                        .await;
                    b.click("#main .card:last-child button.secondary").await;
                    b.wait_for("a retained message", "document.querySelector('tr.retained')").await;
                }
                "lwm2m" => {
                    b.click("tr.device[data-endpoint=\"lwm2m-dev-1\"]").await;
                    b.wait_for("the object tree", "document.querySelector('button[data-op=read][data-path=\"/3/0\"]')")
                        .await;
                    b.click("button[data-op=read][data-path=\"/3/0\"]").await;
                    b.wait_for(
                        "the device object read",
                        "document.querySelector('.val[data-path=\"/3/0/1\"]').dataset.value",
                    )
                    .await;
                }
                "lorawan" => {
                    let _fwd = devices::lorawan(broker, fcnt).await;
                    fcnt += 1;
                    b.wait_for("a frame", "document.querySelector('tr.frame') && document.querySelector('tr.gateway')")
                        .await;
                }
                "sessions" => {
                    // A CoAP device heard again (its session is dropped when it goes quiet).
                    let _coap = devices::coap(broker).await;
                    b.wait_for("both sessions", "document.querySelectorAll('tr.session').length >= 2").await;
                }
                _ => {}
            }
            let null = b.eval("document.getElementById('main').innerText.includes('null')").await;
            assert_eq!(null, json!(false), "{page} shows a null");
            let over = b.overflow_x().await;
            assert_eq!(over, 0, "{page} at {w}x{h} is {over} px wider than the screen");
            let file = dir.join(format!("{page}-{name}.png"));
            b.screenshot(&file).await;
            assert!(std::fs::metadata(&file).unwrap().len() > 5_000, "{} looks blank", file.display());
        }
    }
}
