//! Every protocol across cluster nodes (issue 18, acceptance 7): a real `nats-server -js`,
//! three `roost` processes, and the independent peers of the single-node tests: npm
//! `lwm2m-node-lib` as the LwM2M device, npm `lora-packet` building LoRaWAN frames carried in
//! Semtech UDP datagrams from simulated packet forwarders, rumqttc as the MQTT application.
//! (The CoAP observer and MQTT-SN device across nodes: `cluster::mqtt_publish_on_a_…`.)

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use roost_e2e::cluster::TestCluster;
use roost_e2e::lwm2m_peer::{line, spawn};
use roost_e2e::mqtt5::{Client5, qos};
use roost_e2e::{QUIET, WAIT};
use serde_json::{Value, json};
use tokio::net::UdpSocket;

/// The next publish whose topic ends with `suffix` (others are skipped), as (topic, JSON).
async fn next_on(c: &mut Client5, suffix: &str) -> (String, Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let p = c.recv_publish(left).await.unwrap_or_else(|| panic!("no publish on …{suffix} within {WAIT:?}"));
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        if topic.ends_with(suffix) {
            let v = serde_json::from_slice(&p.payload).unwrap_or_else(|e| panic!("{topic}: not JSON ({e})"));
            return (topic, v);
        }
    }
}

async fn command(app: &mut Client5, ep: &str, j: Value) {
    app.publish(&format!("lwm2m/{ep}/dn/cmd"), qos(1), false, j.to_string()).await;
}

#[tokio::test]
async fn lwm2m_device_on_b_is_read_and_observed_from_mqtt_on_a() {
    let c = TestCluster::start(&["a", "b", "c"]).await;
    let mut app = Client5::connect(c.node("a").mqtt, "lwm2m-app").await;
    app.subscribe("lwm2m/+/up/#", qos(1)).await;
    c.await_remote_routes("b", 1).await;

    let (mut child, mut lines) = spawn(c.node("b").lwm2m.expect("node b has an LwM2M listener"), "far-1");
    let (topic, ev) = next_on(&mut app, "/up/resp").await;
    assert_eq!((topic.as_str(), ev["msgType"].as_str()), ("lwm2m/far-1/up/resp", Some("register")), "{ev}");
    line(&mut lines, "registered").await;
    // The device's command filter (on B) must be known on A before A routes a command.
    c.await_remote_routes("a", 1).await;

    command(&mut app, "far-1", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3303/0/5700"}})).await;
    let (_, r) = next_on(&mut app, "/up/resp").await;
    assert_eq!((r["reqID"].as_u64(), r["data"]["code"].as_str()), (Some(1), Some("2.05")), "{r}");
    assert_eq!(r["data"]["content"], json!([{"path": "/3303/0/5700", "value": 21.5}]));
    assert_eq!(line(&mut lines, "request").await, "request read /3303/0/5700 21.5");

    command(&mut app, "far-1", json!({"reqID": 2, "msgType": "observe", "data": {"path": "/3303/0/5700"}})).await;
    let (_, r) = next_on(&mut app, "/up/resp").await;
    assert_eq!((r["msgType"].as_str(), r["data"]["code"].as_str()), (Some("observe"), Some("2.05")), "{r}");
    assert_eq!(
        line(&mut lines, "request").await,
        "request read /3303/0/5700 21.5",
        "the observe is a read to the peer"
    );
    // lwm2m-node-lib notifies an observed resource when it changes: a write from A changes it.
    command(
        &mut app,
        "far-1",
        json!({"reqID": 3, "msgType": "write", "data": {"path": "/3303/0/5700", "type": "Float", "value": 30.5}}),
    )
    .await;
    let (mut write_answered, mut notified) = (false, None);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(write_answered && notified.is_some()) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let p = app
            .recv_publish(left)
            .await
            .unwrap_or_else(|| panic!("write answered: {write_answered}, notified: {notified:?} (within {WAIT:?})"));
        let v: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
        match (String::from_utf8_lossy(&p.topic).as_ref(), v["msgType"].as_str()) {
            ("lwm2m/far-1/up/resp", Some("write")) => write_answered = v["data"]["code"] == "2.04",
            ("lwm2m/far-1/up/notify", Some("notify")) => notified = Some(v),
            (t, _) => panic!("unexpected publish on {t}: {v}"),
        }
    }
    let n = notified.unwrap_or_default();
    assert_eq!(n["reqID"], 2, "the notification names the observe command: {n}");
    assert_eq!(n["data"]["content"], json!([{"path": "/3303/0/5700", "value": 30.5}]), "{n}");
    assert_eq!(line(&mut lines, "request").await, "request write /3303/0/5700 30.5");
    app.assert_no_publish(QUIET).await;

    let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success()));
    let (_, ev) = next_on(&mut app, "/up/resp").await;
    assert_eq!(ev["msgType"], "deregister", "{ev}");
    let _ = tokio::time::timeout(WAIT, child.wait()).await;
}

const ABP_EUI: &str = "0101010101010101";
const ABP_ADDR: &str = "26011234";
const NWK: &str = "01010101010101010101010101010101";
const APP: &str = "02020202020202020202020202020202";

/// The same device registry on every node, as a fleet's config would be.
fn lorawan_devices() -> String {
    format!(
        "[[lorawan.device]]\ndev_eui = \"{ABP_EUI}\"\nname = \"abp-1\"\napplication_id = \"app1\"\n\
         dev_addr = \"{ABP_ADDR}\"\nnwk_s_key = \"{NWK}\"\napp_s_key = \"{APP}\"\n"
    )
}

/// An unconfirmed ABP uplink built by lora-packet (`peers/lorawan_peer.js`).
async fn lora_packet_uplink(fcnt: u32, data: &[u8]) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");
    assert!(
        std::path::Path::new(dir).join("node_modules/lora-packet").is_dir(),
        "lora-packet is missing: run scripts/test (it runs `npm install --prefix tests/tests/peers lora-packet`)"
    );
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let out = tokio::process::Command::new("node")
        .arg(format!("{dir}/lorawan_peer.js"))
        .args(["uplink", ABP_ADDR, NWK, APP, &fcnt.to_string(), "1", &hex, "false"])
        .output()
        .await
        .expect("node runs (scripts/test installs nodejs)");
    assert!(out.status.success(), "lora-packet peer failed: {}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_default()).collect()
}

/// One Semtech UDP PUSH_DATA (protocol 2) from gateway `eui`, awaiting its PUSH_ACK.
async fn push_data(server: SocketAddr, eui: [u8; 8], token: u16, phy: &[u8]) {
    let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rxpk = json!({"rxpk": [{
        "time": "2026-12-07T16:00:00.000000Z", "tmst": 1_000_000, "chan": 2, "rfch": 0, "freq": 868.5, "stat": 1,
        "modu": "LORA", "datr": "SF7BW125", "codr": "4/5", "rssi": -60, "lsnr": 7.0, "size": phy.len(),
        "data": base64::engine::general_purpose::STANDARD.encode(phy),
    }]});
    let t = token.to_be_bytes();
    let mut d = vec![2, t[0], t[1], 0x00];
    d.extend_from_slice(&eui);
    d.extend_from_slice(rxpk.to_string().as_bytes());
    up.send_to(&d, server).await.unwrap();
    let mut ack = [0u8; 16];
    let n = tokio::time::timeout(WAIT, up.recv(&mut ack)).await.expect("PUSH_ACK in time").unwrap();
    assert_eq!(&ack[..n], &[2, t[0], t[1], 0x01], "PUSH_ACK");
}

#[tokio::test]
async fn lorawan_uplink_delivered_to_c_reaches_an_application_on_a() {
    let c = TestCluster::start_with(&["a", "b", "c"], &lorawan_devices()).await;
    let mut app = Client5::connect(c.node("a").mqtt, "lora-app").await;
    app.subscribe("application/+/device/+/event/up", qos(1)).await;
    c.await_remote_routes("c", 1).await;

    let gateway = 0xaa55_5a00_0000_0c01u64.to_be_bytes();
    let lorawan_c = c.node("c").lorawan.expect("node c has a LoRaWAN listener");
    for fcnt in 1..=3u32 {
        push_data(lorawan_c, gateway, fcnt as u16, &lora_packet_uplink(fcnt, format!("up-{fcnt}").as_bytes()).await)
            .await;
        let (topic, up) = next_on(&mut app, "/event/up").await;
        assert_eq!(topic, format!("application/app1/device/{ABP_EUI}/event/up"));
        let data = base64::engine::general_purpose::STANDARD.decode(up["data"].as_str().unwrap_or_default());
        assert_eq!(data.ok(), Some(format!("up-{fcnt}").into_bytes()), "{up}");
        assert_eq!(up["fCnt"], fcnt, "{up}");
        assert_eq!(up["rxInfo"][0]["gatewayId"], "aa555a0000000c01", "{up}");
    }
    // Once each: the other nodes, which know the device too, heard nothing and publish nothing.
    app.assert_no_publish(QUIET).await;
    // Every node holds the device with its command subscription (none took it over from
    // another when it started): a downlink commanded on A is queued on B too, and goes out
    // through B's gateway (PULL_DATA registered) when B hears the device's next uplink.
    let lorawan_b = c.node("b").lorawan.expect("node b has a LoRaWAN listener");
    let gw_b = 0xaa55_5a00_0000_0b01u64.to_be_bytes();
    let down = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut pull = vec![2, 0x77, 0x01, 0x02];
    pull.extend_from_slice(&gw_b);
    down.send_to(&pull, lorawan_b).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, down.recv(&mut buf)).await.expect("PULL_ACK in time").unwrap();
    assert_eq!(&buf[..n], &[2, 0x77, 0x01, 0x04], "PULL_ACK");
    let cmd = json!({"devEui": ABP_EUI, "confirmed": false, "fPort": 7, "data": "b24="});
    app.publish(&format!("application/app1/device/{ABP_EUI}/command/down"), qos(1), false, cmd.to_string()).await;
    let mut resp = None;
    for fcnt in 4..=8u32 {
        push_data(lorawan_b, gw_b, fcnt as u16, &lora_packet_uplink(fcnt, b"via-b").await).await;
        let (_, up) = next_on(&mut app, "/event/up").await;
        assert_eq!(
            (up["fCnt"].as_u64(), up["rxInfo"][0]["gatewayId"].as_str()),
            (Some(fcnt.into()), Some("aa555a0000000b01"))
        );
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(800), down.recv(&mut buf)).await {
            resp = Some(buf[..n].to_vec());
            break;
        }
    }
    let resp = resp.expect("a PULL_RESP on B's gateway: the downlink commanded on A was queued on B");
    assert_eq!((resp[0], resp[3]), (2, 0x03), "PULL_RESP");
    app.assert_no_publish(QUIET).await;
}
