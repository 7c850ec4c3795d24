//! Trace: `roost ctl trace start client ...` writes a client's packets in both directions
//! (and its messages) to a file; `trace stop` closes it. Topic traces through the API. A
//! CoAP client's and an LwM2M device's traces (LoRaWAN's is in `lorawan.rs`, next to its
//! packet-forwarder helpers).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use clap::Parser;
use roost::cli::{Cli, Command};
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};
use serde_json::json;

const KEY: &str = "trace-key-0123456789abcdef";

/// `roost ctl --url ... --key ... ARGS`, run in-process as the binary runs it.
async fn ctl(http: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let url = format!("http://{http}");
    let mut argv = vec!["roost", "ctl", "--url", &url, "--key", KEY];
    argv.extend_from_slice(args);
    let Some(Command::Ctl(a)) = Cli::try_parse_from(argv).unwrap().command else { panic!("ctl") };
    roost::ctl::run(&roost::config::parse("").unwrap(), a).await
}

#[tokio::test]
async fn a_client_trace_shows_packets_both_ways_and_stops_cleanly() {
    let broker = TestBroker::start_with(&format!("[http]\napi_keys = [\"{KEY}\"]\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tr-1.log");
    let out = ctl(broker.http_addr(), &["trace", "start", "client", "tr-1", file.to_str().unwrap()]).await.unwrap();
    assert!(out.contains("trace client:tr-1 started"), "{out}");
    let listed = ctl(broker.http_addr(), &["trace", "list"]).await.unwrap();
    assert!(listed.starts_with("client:tr-1\t"), "{listed}");

    let mut c = Client5::connect(broker.addr(), "tr-1").await;
    let mut other = Client5::connect(broker.addr(), "bystander").await;
    c.subscribe("tr/#", mqtt5::qos(1)).await;
    c.publish("tr/x", mqtt5::qos(1), false, "ping").await;
    c.expect_publish(WAIT).await;
    other.publish("elsewhere", mqtt5::qos(0), false, "x").await;
    c.disconnect().await;
    other.disconnect().await;

    // The DISCONNECT is read by the broker's connection task: wait (bounded) for its line.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(&file).unwrap().contains("in packet Disconnect") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no DISCONNECT line: {}",
            std::fs::read_to_string(&file).unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let out = ctl(broker.http_addr(), &["trace", "stop", "client", "tr-1"]).await.unwrap();
    assert!(out.contains("stopped"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    for expected in [
        "mqtt client=tr-1 peer=127.0.0.1:",
        " in packet Connect { protocol: V5, client_id: \"tr-1\"",
        " out packet ConnAck(",
        " in packet Subscribe(",
        " out packet SubAck(",
        " in packet Publish(",
        " in message topic=tr/x qos=1 retain=false payload=\"ping\"",
        " out message topic=tr/x qos=1",
        " out packet Publish(",
        " in packet PubAck(",
        " in packet Disconnect(",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("bystander") && !text.contains("elsewhere"), "{text}");
    assert!(!text.contains("password"), "{text}");
    assert!(text.ends_with("trace client:tr-1 stopped\n"), "{text}");

    // Stopped: nothing more is written, and stopping again is an error.
    let c = Client5::connect(broker.addr(), "tr-1").await;
    c.disconnect().await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let err = ctl(broker.http_addr(), &["trace", "stop", "client", "tr-1"]).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    broker.stop().await;
}

#[tokio::test]
async fn topic_and_mqttsn_traces_through_the_api() {
    let broker = TestBroker::start_with(&format!("[http]\napi_keys = [\"{KEY}\"]\n")).await;
    let api = roost_e2e::api::Api::new(broker.http_addr(), KEY);
    let dir = tempfile::tempdir().unwrap();
    let topic_file = dir.path().join("topic.log");
    let sn_file = dir.path().join("sn.log");
    let (status, r) = api
        .call("POST", "/api/v1/traces", Some(&json!({ "type": "topic", "target": "tt/#", "file": topic_file })))
        .await;
    assert_eq!((status, r["name"].as_str()), (201, Some("topic:tt/#")));
    let (status, _) =
        api.call("POST", "/api/v1/traces", Some(&json!({ "type": "client", "target": "sn-9", "file": sn_file }))).await;
    assert_eq!(status, 201);
    let (status, dup) =
        api.call("POST", "/api/v1/traces", Some(&json!({ "type": "client", "target": "sn-9", "file": sn_file }))).await;
    assert_eq!((status, dup["code"].as_str()), (409, Some("CONFLICT")));
    for bad in [
        json!({ "type": "topic", "target": "a/#/b", "file": "x" }),
        json!({ "type": "nope", "target": "a", "file": "x" }),
        json!({ "type": "client", "target": "a", "file": "../x" }),
    ] {
        let (status, body) = api.call("POST", "/api/v1/traces", Some(&bad)).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{bad}: {body}");
    }

    // An MQTT-SN client: CONNECT in, CONNACK out, DISCONNECT both ways.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut connect = vec![0u8, 0x04, 0x04, 0x01, 0x00, 0x3c];
    connect.extend_from_slice(b"sn-9");
    connect[0] = connect.len() as u8;
    sock.send_to(&connect, broker.mqttsn_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await.unwrap().unwrap();
    let mut p = Client5::connect(broker.addr(), "pub").await;
    p.publish("tt/1", mqtt5::qos(0), false, "topical").await;
    p.publish("other/1", mqtt5::qos(0), false, "not this").await;
    sock.send_to(&[2, 0x18], broker.mqttsn_addr()).await.unwrap();
    tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await.unwrap().unwrap();

    let (_, list) = api.get("/api/v1/traces").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(api.call("DELETE", "/api/v1/traces?type=topic&target=tt%2F%23", None).await.0, 204);
    assert_eq!(api.call("DELETE", "/api/v1/traces?type=client&target=sn-9", None).await.0, 204);
    assert_eq!(api.get("/api/v1/traces").await.1["data"], json!([]));

    let topic = std::fs::read_to_string(&topic_file).unwrap();
    assert!(
        topic.contains("mqtt client=pub")
            && topic.contains("in packet Publish(")
            && topic.contains("in message topic=tt/1"),
        "{topic}"
    );
    assert!(!topic.contains("other/1"), "{topic}");
    let sn = std::fs::read_to_string(&sn_file).unwrap();
    for expected in [
        "mqtt-sn client=sn-9 peer=127.0.0.1:",
        " in packet Connect(",
        " out packet ConnAck",
        " in packet Disconnect",
        " out packet Disconnect",
    ] {
        assert!(sn.contains(expected), "missing {expected:?} in:\n{sn}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_coap_client_trace_shows_requests_responses_and_notifications() {
    use coap_lite::{CoapOption, MessageType, RequestType};
    use roost_e2e::coap::{Raw, request};
    let broker = TestBroker::start_with(&format!("[http]\napi_keys = [\"{KEY}\"]\n")).await;
    let api = roost_e2e::api::Api::new(broker.http_addr(), KEY);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coap.log");
    let (status, _) =
        api.call("POST", "/api/v1/traces", Some(&json!({ "type": "client", "target": "co-1", "file": file }))).await;
    assert_eq!(status, 201);

    let raw = Raw::new(broker.coap_addr()).await;
    let r = raw.call(RequestType::Put, "ps/tc/a", &["clientid=co-1"], b"hot").await;
    assert_eq!(r.header.get_type(), MessageType::Acknowledgement);
    // Observe: the notification of a publish goes out too.
    let mut obs = request(MessageType::Confirmable, RequestType::Get, 0x5151, "ps/tc/b", &["clientid=co-1"], b"");
    obs.add_option(CoapOption::Observe, vec![]);
    raw.send(&obs).await;
    assert_eq!(raw.recv().await.header.message_id, 0x5151);
    let mut p = Client5::connect(broker.addr(), "pub").await;
    p.publish("tc/b", mqtt5::qos(0), false, "news").await;
    let note = raw.recv().await;
    assert_eq!(note.payload, b"news");
    // Each line is written before its datagram is sent, so the file is complete here.
    assert_eq!(api.call("DELETE", "/api/v1/traces?type=client&target=co-1", None).await.0, 204);
    let text = std::fs::read_to_string(&file).unwrap();
    for expected in [
        "coap client=co-1 peer=127.0.0.1:",
        " in packet CON 0.03 (Request(Put)) mid=",
        " UriPath=\"ps\" UriPath=\"tc\" UriPath=\"a\"",
        " UriQuery=\"clientid=co-1\" payload=3B",
        " out packet ACK 2.04 (Response(Changed))",
        " in packet CON 0.01 (Request(Get)) mid=20817 token=4251 Observe=0",
        " out packet ACK 2.05 (Response(Content)) mid=20817 token=4251 Observe=",
        " in message topic=tc/a",
        " out message topic=tc/b",
        " out packet NON 2.05 (Response(Content))",
        "token=4251 Observe=2 payload=4B",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn an_lwm2m_device_trace_shows_its_registration_and_a_command_both_ways() {
    let broker = TestBroker::start_with(&format!("[http]\napi_keys = [\"{KEY}\"]\n")).await;
    let api = roost_e2e::api::Api::new(broker.http_addr(), KEY);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lwm2m.log");
    let (status, _) =
        api.call("POST", "/api/v1/traces", Some(&json!({ "type": "client", "target": "tr-1", "file": file }))).await;
    assert_eq!(status, 201);
    let mut dev = roost_e2e::lwm2m::Device::new(broker.lwm2m_addr()).await;
    dev.register("tr-1", 300, "U").await;
    let cmd = json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}});
    assert_eq!(api.call("POST", "/api/v1/lwm2m/devices/tr-1/commands", Some(&cmd)).await.0, 202);
    dev.serve_one().await;
    // The result is published after its response is traced: wait for it on MQTT.
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.subscribe("lwm2m/tr-1/up/resp", mqtt5::qos(0)).await;
    assert_eq!(api.call("POST", "/api/v1/lwm2m/devices/tr-1/commands", Some(&cmd)).await.0, 202);
    dev.serve_one().await;
    app.expect_publish(WAIT).await;
    assert_eq!(api.call("DELETE", "/api/v1/traces?type=client&target=tr-1", None).await.0, 204);
    let text = std::fs::read_to_string(&file).unwrap();
    for expected in [
        "lwm2m client=tr-1 peer=127.0.0.1:",
        " in packet CON 0.02 (Request(Post))",
        "UriPath=\"rd\" ContentFormat=40 UriQuery=\"ep=tr-1\"",
        " out packet ACK 2.01 (Response(Created))",
        " out packet CON 0.01 (Request(Get))",
        "UriPath=\"3\" UriPath=\"0\" UriPath=\"0\"",
        " in packet ACK 2.05 (Response(Content))",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    broker.stop().await;
}
