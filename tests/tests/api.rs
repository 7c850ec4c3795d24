//! The HTTP management API (`/api/v1`), every endpoint through real HTTP, with real MQTT and
//! MQTT-SN clients to list, search and kick.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use roost_e2e::api::Api;
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};
use serde_json::{Value, json};
use tokio::net::UdpSocket;

const KEY: &str = "test-key-0123456789abcdef";

async fn broker() -> TestBroker {
    TestBroker::start_with(&format!("[node]\nname = \"api-node\"\n[http]\napi_keys = [\"{KEY}\"]\n")).await
}

/// An MQTT-SN client connected by raw datagrams (CONNECT, CONNACK), kept open.
async fn mqttsn_connect(gw: SocketAddr, client_id: &str) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut m = vec![0u8, 0x04, 0x04, 0x01, 0x00, 0x3c];
    m.extend_from_slice(client_id.as_bytes());
    m[0] = m.len() as u8;
    sock.send_to(&m, gw).await.unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await.expect("CONNACK in time").unwrap();
    assert_eq!(&buf[..n], &[3, 0x05, 0x00], "MQTT-SN CONNACK accepted");
    sock
}

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|c| c["clientid"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn api_requires_a_key_and_describes_itself() {
    let broker = broker().await;
    let anon = Api::anonymous(broker.http_addr());
    for (method, path) in [
        ("GET", "/api/v1/clients"),
        ("GET", "/api/v1/stats"),
        ("DELETE", "/api/v1/clients/x"),
        ("POST", "/api/v1/publish"),
    ] {
        let (status, body) = anon.call(method, path, None).await;
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(body["code"], "UNAUTHORIZED", "{method} {path}: {body}");
        assert!(body["message"].is_string());
    }
    let (status, _) = Api::new(broker.http_addr(), "wrong-key-0123456789").get("/api/v1/clients").await;
    assert_eq!(status, 401);
    // Basic: any user name, the key as the password.
    let mut basic = Api::anonymous(broker.http_addr());
    basic.auth = Some(format!("Basic {}", b64(&format!("admin:{KEY}"))));
    assert_eq!(basic.get("/api/v1/stats").await.0, 200);

    let (status, doc) = anon.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/clients"]["get"].is_object());

    let (status, body) = broker.api().get("/api/v1/no-such-thing").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = broker.api().call("PUT", "/api/v1/stats", None).await;
    assert_eq!((status, body["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
    broker.stop().await;
}

fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

#[tokio::test]
async fn clients_are_listed_searched_paged_shown_and_kicked() {
    let broker = broker().await;
    let api = broker.api();
    let mut o = Client5::options(broker.addr(), "dev-1");
    o.set_credentials("alice", "pw");
    let _dev1 = Client5::connect_with(o).await;
    let mut o = Client5::options(broker.addr(), "dev-2");
    o.set_credentials("bob", "pw");
    let mut dev2 = Client5::connect_with(o).await;
    let _sn = mqttsn_connect(broker.mqttsn_addr(), "sn-1").await;

    let (status, all) = api.get("/api/v1/clients").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), ["dev-1", "dev-2", "sn-1"]);
    assert_eq!(all["meta"]["count"], 3);

    let (_, sn) = api.get("/api/v1/clients?protocol=mqtt-sn").await;
    assert_eq!(ids(&sn), ["sn-1"]);
    assert_eq!(sn["data"][0]["protocol"], "mqtt-sn");
    assert_eq!(ids(&api.get("/api/v1/clients?clientid=dev").await.1), ["dev-1", "dev-2"]);
    assert_eq!(ids(&api.get("/api/v1/clients?username=alice").await.1), ["dev-1"]);
    assert_eq!(ids(&api.get("/api/v1/clients?protocol=mqtt&connected=true").await.1), ["dev-1", "dev-2"]);

    let (_, page2) = api.get("/api/v1/clients?limit=1&page=2").await;
    assert_eq!(ids(&page2), ["dev-2"]);
    assert_eq!(page2["meta"], json!({ "page": 2, "limit": 1, "count": 3, "hasnext": true }));
    for bad in [
        "/api/v1/clients?page=0",
        "/api/v1/clients?limit=5000",
        "/api/v1/clients?page=x",
        "/api/v1/clients?connected=maybe",
    ] {
        let (status, body) = api.get(bad).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{bad}: {body}");
    }

    let (status, one) = api.get("/api/v1/clients/dev-1").await;
    assert_eq!(status, 200);
    assert_eq!(one["clientid"], "dev-1");
    assert_eq!(one["protocol"], "mqtt");
    assert_eq!(one["username"], "alice");
    assert_eq!(one["connected"], true);
    assert!(one["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(one["connected_at"].as_str().unwrap().ends_with('Z'));
    let (status, missing) = api.get("/api/v1/clients/nobody").await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("NOT_FOUND")));

    // Kick: the client is disconnected (MQTT 5 DISCONNECT 0x98) and the session, which had
    // no expiry, is gone.
    let (status, _) = api.call("DELETE", "/api/v1/clients/dev-2", None).await;
    assert_eq!(status, 204);
    assert!(dev2.recv_publish(WAIT).await.is_none(), "the kicked client's connection ends");
    let deadline = tokio::time::Instant::now() + WAIT;
    while api.get("/api/v1/clients/dev-2").await.0 != 404 {
        assert!(tokio::time::Instant::now() < deadline, "dev-2 still listed after the kick");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(api.call("DELETE", "/api/v1/clients/dev-2", None).await.0, 404);
    broker.stop().await;
}

#[tokio::test]
async fn subscriptions_publish_and_retained_messages() {
    let broker = broker().await;
    let api = broker.api();
    let mut sub = Client5::connect(broker.addr(), "listener").await;
    sub.subscribe("a/+", mqtt5::qos(1)).await;

    let (status, subs) = api.get("/api/v1/subscriptions?clientid=listener").await;
    assert_eq!(status, 200);
    assert_eq!(
        subs["data"],
        json!([{ "clientid": "listener", "topic": "a/+", "qos": 1, "no_local": false, "retain_as_published": false, "retain_handling": 0 }])
    );
    assert_eq!(api.get("/api/v1/subscriptions?topic=nope").await.1["meta"]["count"], 0);

    let (status, r) = api
        .call("POST", "/api/v1/publish", Some(&json!({ "topic": "a/b", "payload": "hi", "qos": 1, "retain": true })))
        .await;
    assert_eq!((status, &r), (200, &json!({ "matched": 1 })));
    let p = sub.expect_publish(WAIT).await;
    assert_eq!((&p.topic[..], &p.payload[..]), (&b"a/b"[..], &b"hi"[..]));
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/publish",
            Some(&json!({ "topic": "bin/x", "payload": "AAEC/w==", "encoding": "base64", "retain": true })),
        )
        .await;
    assert_eq!(status, 200);
    for bad in [
        json!({ "topic": "a/#" }),
        json!({ "topic": "a", "qos": 3 }),
        json!({ "payload": "x" }),
        json!({ "topic": "a", "encoding": "base64", "payload": "!" }),
        json!({ "topic": "a", "extra": 1 }),
        json!({ "topic": "a", "properties": { "payload_format_indicator": 2 } }),
        json!({ "topic": "a", "encoding": "base64", "payload": "/w==", "properties": { "payload_format_indicator": 1 } }),
        json!({ "topic": "a", "properties": { "response_topic": "r/#" } }),
        json!({ "topic": "a", "properties": { "unknown": 1 } }),
    ] {
        let (status, body) = api.call("POST", "/api/v1/publish", Some(&bad)).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{bad}: {body}");
    }
    let (status, _) = api.call_raw("POST", "/api/v1/publish", None).await;
    assert_eq!(status, 400, "no body");

    let (status, list) = api.get("/api/v1/retained").await;
    assert_eq!(status, 200);
    assert_eq!(list["meta"]["count"], 2);
    assert_eq!(
        list["data"][0],
        json!({ "topic": "a/b", "payload": "hi", "encoding": "plain", "qos": 1, "publisher": null, "properties": {} })
    );
    // MQTT 5 properties travel with an API publish and are listed with the retained message.
    let props = json!({ "content_type": "text/plain", "payload_format_indicator": 1, "response_topic": "a/reply",
        "correlation_data": "c-1", "user_properties": { "k": "v" } });
    let body = json!({ "topic": "props/x", "payload": "p", "retain": true, "properties": props });
    assert_eq!(api.call("POST", "/api/v1/publish", Some(&body)).await.0, 200);
    assert_eq!(api.get("/api/v1/retained/props/x").await.1["properties"], props);
    assert_eq!(api.call("DELETE", "/api/v1/retained/props/x", None).await.0, 204);
    assert_eq!(list["data"][1]["encoding"], "base64");
    assert_eq!(list["data"][1]["payload"], "AAEC/w==");
    assert_eq!(api.get("/api/v1/retained?topic=bin/%23").await.1["meta"]["count"], 1);
    assert_eq!(api.get("/api/v1/retained?topic=a/%23/b").await.0, 400);

    let (status, one) = api.get("/api/v1/retained/a/b").await;
    assert_eq!((status, one["payload"].as_str()), (200, Some("hi")));
    assert_eq!(api.call("DELETE", "/api/v1/retained/a/b", None).await.0, 204);
    assert_eq!(api.call("DELETE", "/api/v1/retained/a/b", None).await.0, 404);
    assert_eq!(api.get("/api/v1/retained/a/b").await.0, 404);
    assert_eq!(api.get("/api/v1/retained").await.1["meta"]["count"], 1);
    // Deleting publishes nothing to subscribers.
    sub.assert_no_publish(roost_e2e::QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn stats_and_metrics_count_what_clients_did() {
    let broker = broker().await;
    let api = broker.api();
    let mut sub = Client5::connect(broker.addr(), "s").await;
    sub.subscribe("t", mqtt5::qos(0)).await;
    let mut publ = Client5::connect(broker.addr(), "p").await;
    for _ in 0..3 {
        publ.publish("t", mqtt5::qos(0), false, "x").await;
    }
    for _ in 0..3 {
        sub.expect_publish(WAIT).await;
    }
    let _sn = mqttsn_connect(broker.mqttsn_addr(), "sn").await;

    let (status, stats) = api.get("/api/v1/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["node"], "api-node");
    assert_eq!(stats["connections"], 3);
    assert_eq!(stats["connections_by_protocol"]["mqtt"], 2);
    assert_eq!(stats["connections_by_protocol"]["mqtt-sn"], 1);
    assert_eq!(stats["sessions"], 3);
    assert_eq!(stats["subscriptions"], 1);

    let (status, m) = api.get("/api/v1/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(m["messages_received"], 3);
    assert_eq!(m["messages_sent"], 3);
    assert_eq!(m["by_protocol"]["mqtt"]["messages_received"], 3);
    assert_eq!(m["connects"], 3);
    assert!(m["bytes_received"].as_u64().unwrap() > 0);
    broker.stop().await;
}

#[tokio::test]
async fn a_key_is_generated_when_none_is_configured() {
    // In-memory storage: the generated key lives for the process; the API takes it.
    let broker = TestBroker::start().await;
    assert_eq!(broker.api_key().len(), 64);
    assert_eq!(broker.api().get("/api/v1/stats").await.0, 200);
    assert_eq!(Api::anonymous(broker.http_addr()).get("/api/v1/stats").await.0, 401);
    broker.stop().await;
}
