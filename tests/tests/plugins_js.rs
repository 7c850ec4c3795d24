//! TS013 JavaScript payload codecs end to end (issue 21): vendor-style codecs
//! (`gateway/plugins/guests/ts013`) decode LoRaWAN uplinks into `object` of `event/up` and
//! encode `command/down` objects into the downlink lora-packet reads back; the same sensor
//! codec file decodes a CoAP device's publishes on its topic, and the valve codec encodes
//! MQTT commands on a topic, which a CoAP observer receives as the device's bytes. Real
//! sockets, real peers (lora-packet, rumqttc, libcoap's coap-client, aiocoap, CoAP over UDP).

use std::time::Duration;

use coap_lite::{MessageClass, RequestType, ResponseType};
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::qos;
use roost_e2e::{TestBroker, WAIT};
use serde_json::{Value, json};

use crate::lorawan::{ABP_ADDR, ABP_EUI, APP, Forwarder, NWK, app_client, b64, expect_event, hex, peer, unb64, unhex};

const VALVE_EUI: &str = "0303030303030303";
const VALVE_ADDR: &str = "26015678";

fn codec(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../gateway/plugins/guests/ts013/").to_string() + name
}

fn config() -> String {
    format!(
        r#"
[[payload_codec]]
name = "th-sensor"
script = "{th}"
uplink_topics = ["coap/th/+"]
fport = 2

[[payload_codec]]
name = "valve"
script = "{valve}"
downlink_topics = ["coap/valve/+/cmd"]

[[lorawan.device]]
dev_eui = "{ABP_EUI}"
name = "th-1"
application_id = "farm"
dev_addr = "{ABP_ADDR}"
nwk_s_key = "{NWK}"
app_s_key = "{APP}"
payload_codec = "th-sensor"

[[lorawan.device]]
dev_eui = "{VALVE_EUI}"
name = "valve-1"
application_id = "farm"
dev_addr = "{VALVE_ADDR}"
nwk_s_key = "{NWK}"
app_s_key = "{APP}"
payload_codec = "valve"
"#,
        th = codec("th-sensor.js"),
        valve = codec("valve.js"),
    )
}

/// 3.000 V, 21.50 degC, 57.0 %, 1014.0 hPa, low battery, sequence 7.
const TH_BYTES: [u8; 10] = [0x0b, 0xb8, 0x08, 0x66, 0x02, 0x3a, 0x27, 0x9c, 0x02, 0x07];

async fn uplink(addr: &str, fcnt: u32, fport: u8, data: &[u8]) -> Vec<u8> {
    unhex(&peer(&["uplink", addr, NWK, APP, &fcnt.to_string(), &fport.to_string(), &hex(data), "false"]).await)
}

#[tokio::test]
async fn lorawan_uplinks_get_object_from_the_codec_and_command_objects_are_encoded() {
    let broker = TestBroker::start_with(&config()).await;
    let mut app = app_client(&broker, "application/#").await;
    let mut gw = Forwarder::start(broker.lorawan_addr(), 0xaa55_5a00_0000_0202).await;

    gw.push(&uplink(ABP_ADDR, 1, 2, &TH_BYTES).await, 1_000, -60, 7.0).await;
    let up = expect_event(&mut app, &format!("/device/{ABP_EUI}/event/up")).await;
    assert_eq!(up["data"], b64(&TH_BYTES));
    assert_eq!(
        up["object"],
        json!({"battery": 3, "temperature": 21.5, "humidity": 57, "pressure": 1014, "tamper": false, "sequence": 7})
    );
    assert_eq!(up["warnings"], json!(["low battery"]));
    assert!(up.get("errors").is_none(), "{up}");

    // The codec's errors land in the event; no object.
    gw.push(&uplink(ABP_ADDR, 2, 9, &[1, 2]).await, 2_000, -60, 7.0).await;
    let up = expect_event(&mut app, &format!("/device/{ABP_EUI}/event/up")).await;
    assert_eq!(up["errors"], json!(["unknown fPort 9"]));
    assert!(up.get("object").is_none(), "{up}");

    // A command object the codec refuses is not queued (counted); a good one goes down.
    let down = format!("application/farm/device/{VALVE_EUI}/command/down");
    app.publish(&down, qos(1), false, json!({"object": {"valve": "ajar"}}).to_string()).await;
    let counters = broker.lorawan_counters().ns.clone();
    crate::lorawan::counter_reaches(
        || counters.bad_commands.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "bad_commands",
    )
    .await;
    app.publish(&down, qos(1), false, json!({"object": {"valve": "open", "minutes": 300}}).to_string()).await;
    let mut sent = None;
    for fcnt in 1..=5u32 {
        gw.push(&uplink(VALVE_ADDR, fcnt, 10, &[1, 0, 120, 90]).await, 10_000 + fcnt, -60, 7.0).await;
        let up = expect_event(&mut app, &format!("/device/{VALVE_EUI}/event/up")).await;
        assert_eq!(up["object"], json!({"state": "open", "flow": 120, "battery": 90}));
        if let Some(d) = Forwarder::recv(&gw.down, Duration::from_millis(800)).await {
            sent = Some(d);
            break;
        }
    }
    let d = sent.expect("a PULL_RESP with the valve command");
    let txpk: Value = serde_json::from_slice::<Value>(&d[4..]).unwrap()["txpk"].clone();
    let phy = unb64(txpk["data"].as_str().unwrap());
    let frame: Value = serde_json::from_str(&peer(&["down", &hex(&phy), NWK, APP]).await).unwrap();
    assert_eq!(frame["micOk"], true);
    assert_eq!(frame["fport"], 20, "the codec's fPort");
    assert_eq!(frame["payload"], "01012c", "open for 300 minutes");
    broker.stop().await;
}

#[tokio::test]
async fn the_same_codec_file_decodes_a_coap_topic_and_encodes_mqtt_commands() {
    let broker = TestBroker::start_with(&config()).await;
    let mut sub = Client5::connect(broker.addr(), "farm-app").await;
    sub.subscribe("coap/#", mqtt5::qos(1)).await;
    let coap = roost_e2e::coap::Raw::new(broker.coap_addr()).await;
    let r = coap.call(RequestType::Put, "ps/coap/th/greenhouse", &[], &TH_BYTES).await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    let p = sub.expect_publish(WAIT).await;
    assert_eq!(&p.topic[..], b"coap/th/greenhouse");
    let event: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(event["object"]["temperature"], 21.5);
    assert_eq!((event["fPort"].clone(), event["data"].clone()), (json!(2), json!(b64(&TH_BYTES))));
    let props = p.properties.unwrap_or_default();
    assert_eq!(props.content_type.as_deref(), Some("application/json"));

    // A short reading: the codec says so in `errors` (the publish still goes through).
    let short = coap.call(RequestType::Put, "ps/coap/th/greenhouse", &[], &[1, 2, 3]).await;
    assert_eq!(short.header.code, MessageClass::Response(ResponseType::Changed));
    let event: Value = serde_json::from_slice(&sub.expect_publish(WAIT).await.payload).unwrap();
    assert_eq!(event["errors"], json!(["expected 10 bytes on fPort 2, got 3"]));

    // Commands: a refused one never reaches the topic; a good one arrives as the bytes.
    let mut app = Client5::connect(broker.addr(), "farm-cmd").await;
    app.publish("coap/valve/7/cmd", mqtt5::qos(0), false, r#"{"valve":"sideways"}"#).await;
    app.publish("coap/valve/7/cmd", mqtt5::qos(0), false, r#"{"valve":"open","minutes":2}"#).await;
    let p = sub.expect_publish(WAIT).await;
    assert_eq!((&p.topic[..], &p.payload[..]), (&b"coap/valve/7/cmd"[..], &[1u8, 0, 2][..]));
    broker.stop().await;
}

/// The CoAP side with third-party CoAP clients: libcoap's `coap-client-notls` PUTs the
/// sensor's bytes (decoded by the same `th-sensor.js` the LoRaWAN device uses), and an aiocoap
/// observer of the valve's command topic receives the bytes `valve.js` encoded from an MQTT
/// application's JSON command.
#[tokio::test]
async fn real_coap_clients_put_sensor_bytes_and_observe_encoded_valve_commands() {
    let broker = TestBroker::start_with(&config()).await;
    let port = broker.coap_addr().port().to_string();
    let mut sub = Client5::connect(broker.addr(), "farm-app").await;
    sub.subscribe("coap/th/#", mqtt5::qos(1)).await;
    let mut observer = crate::coap::Peer::start(&["observe", &port, "ps/coap/valve/9/cmd"]);
    assert_eq!(observer.line().await, "registered 2.05 True");

    let dir = tempfile::tempdir().unwrap();
    let reading = dir.path().join("reading.bin");
    std::fs::write(&reading, TH_BYTES).unwrap();
    let url = format!("coap://{}/ps/coap/th/barn", broker.coap_addr());
    let put = tokio::process::Command::new("coap-client-notls")
        .args(["-m", "put", "-f"])
        .arg(&reading)
        .arg(&url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), put)
        .await
        .expect("coap-client finished within 20 s")
        .expect("coap-client-notls runs (scripts/test installs libcoap3-bin)");
    assert!(out.status.success(), "coap-client: {}", String::from_utf8_lossy(&out.stderr));
    let p = sub.expect_publish(WAIT).await;
    assert_eq!(&p.topic[..], b"coap/th/barn");
    let event: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(
        event["object"],
        json!({"battery": 3, "temperature": 21.5, "humidity": 57, "pressure": 1014, "tamper": false, "sequence": 7})
    );
    assert_eq!(event["warnings"], json!(["low battery"]));

    let mut app = Client5::connect(broker.addr(), "farm-cmd").await;
    app.publish("coap/valve/9/cmd", mqtt5::qos(1), false, r#"{"valve":"close"}"#).await;
    // aiocoap prints the payload as text: the bytes 00 00 00 ("close").
    assert_eq!(observer.line().await, "notify \u{0}\u{0}\u{0}");
    app.publish("coap/valve/9/cmd", mqtt5::qos(1), false, r#"{"valve":"open","minutes":258}"#).await;
    assert_eq!(observer.line().await, "notify \u{1}\u{1}\u{2}", "open for 258 minutes: 01 0102");
    broker.stop().await;
}
