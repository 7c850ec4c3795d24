//! CoAP devices in the HTTP API (issue 25, acceptance 4): an aiocoap observer and a libcoap
//! `coap-client-notls` publisher appear in `/api/v1/coap/sessions` with their client id,
//! username, address and observations; one session's detail; closing the observer's
//! session through the API removes it from the core (no longer a client, its subscription
//! gone, so MQTT publishes no longer reach it) and ends its observation at the device with a
//! 5.03 notification.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering::Relaxed;

use roost_e2e::TestBroker;
use roost_e2e::mqtt311::{Client311, qos};
use serde_json::Value;

use crate::coap::{Peer, coap_client, url};

/// The session of `id` in a list answer.
fn find<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["data"].as_array().unwrap().iter().find(|s| s["clientid"] == id)
}

#[tokio::test]
async fn coap_sessions_listed_shown_and_closed_through_the_api() {
    let broker = TestBroker::start().await;
    let (api, coap) = (broker.api(), broker.coap_addr());
    let port = coap.port().to_string();
    let mut observer = Peer::start(&["observe", &port, "ps/cmd/+?clientid=obs-1&username=alice"]);
    assert_eq!(observer.line().await, "registered 2.05 True");
    coap_client(&["-m", "put", "-e", "21", &url(coap, "ps/data/t?clientid=put-1")]).await;

    let (status, list) = api.get("/api/v1/coap/sessions").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["count"], 2, "{list}");
    let obs = find(&list, "obs-1").unwrap_or_else(|| panic!("obs-1 not listed: {list}"));
    assert_eq!(obs["username"], "alice");
    assert_eq!(obs["identity"], Value::Null, "plain UDP has no DTLS identity");
    assert_eq!(obs["connection"], false);
    assert_eq!(obs["observations"], serde_json::json!([{ "path": "ps/cmd/+", "topic": "cmd/+" }]));
    let peer: std::net::SocketAddr = obs["peer"].as_str().unwrap().parse().unwrap();
    assert!(peer.ip().is_loopback() && peer.port() != coap.port(), "{peer}");
    let put = find(&list, "put-1").unwrap_or_else(|| panic!("put-1 not listed: {list}"));
    assert_eq!(put["observations"], serde_json::json!([]));
    // Paging follows the other lists.
    let (_, page) = api.get("/api/v1/coap/sessions?limit=1&page=2").await;
    assert_eq!((page["data"].as_array().unwrap().len(), &page["meta"]["hasnext"]), (1, &Value::Bool(false)));

    let (status, one) = api.get("/api/v1/coap/sessions/obs-1").await;
    assert_eq!(status, 200);
    assert_eq!(one["clientid"], "obs-1");
    assert!(one["created_at"].as_str().unwrap().ends_with('Z'), "{one}");
    assert_eq!(api.get("/api/v1/coap/sessions/nobody").await.0, 404);

    // The observer is a client of the core with its subscription, and is notified.
    let (status, client) = api.get("/api/v1/clients/obs-1").await;
    assert_eq!((status, &client["protocol"]), (200, &Value::from("coap")), "{client}");
    let mut mqtt = Client311::connect(broker.addr(), "commander").await;
    mqtt.publish("cmd/lamp", qos(1), false, "on").await;
    assert_eq!(observer.line().await, "notify on");

    // Closed through the API: gone from the API, from the core, and the device is told.
    let (status, body) = api.call("DELETE", "/api/v1/coap/sessions/obs-1", None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(observer.line().await, "ended 5.03");
    assert_eq!(observer.line().await, "observation over");
    assert_eq!(api.get("/api/v1/coap/sessions/obs-1").await.0, 404);
    assert_eq!(api.get("/api/v1/clients/obs-1").await.0, 404);
    let (_, subs) = api.get("/api/v1/subscriptions?clientid=obs-1").await;
    assert_eq!(subs["data"], serde_json::json!([]), "{subs}");
    assert_eq!(broker.coap_counters().observers.load(Relaxed), 0);
    let (_, list) = api.get("/api/v1/coap/sessions").await;
    assert!(find(&list, "obs-1").is_none() && find(&list, "put-1").is_some(), "{list}");
    assert_eq!(api.call("DELETE", "/api/v1/coap/sessions/obs-1", None).await.0, 404);
    broker.stop().await;
}

/// A DTLS (PSK) device is listed with the identity DTLS authenticated (the PSK's username),
/// and closed like any other.
#[tokio::test]
async fn coap_dtls_session_shows_its_identity() {
    let config = "[coap]\ndtls_bind = [\"127.0.0.1:0\"]\n[[coap.psk]]\nidentity = \"dev1\"\nkey = \"secret-key-1\"\nusername = \"user1\"\n";
    let broker = TestBroker::start_with(config).await;
    let url = format!("coaps://{}/ps/sec/api", broker.coaps_addr());
    let run = tokio::process::Command::new("coap-client-openssl")
        .args(["-m", "put", "-e", "1", "-u", "dev1", "-k", "secret-key-1", &url])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("coap-client-openssl finished within 20 s")
        .expect("coap-client-openssl runs (scripts/test installs libcoap3-bin)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let api = broker.api();
    let (_, list) = api.get("/api/v1/coap/sessions").await;
    let s = list["data"].as_array().unwrap().first().unwrap_or_else(|| panic!("no session: {list}")).clone();
    assert_eq!((&s["identity"], &s["username"]), (&Value::from("user1"), &Value::from("user1")), "{s}");
    let id = s["clientid"].as_str().unwrap();
    let (status, _) = api.call("DELETE", &format!("/api/v1/coap/sessions/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(api.get(&format!("/api/v1/clients/{id}")).await.0, 404);
    broker.stop().await;
}
