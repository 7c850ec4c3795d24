//! Live reload (issue 24) of the `[mqtt]` rate limits and the `[[webhook]]`s: a reload
//! applies new rates to the connections that come after it while an open connection keeps
//! its budgets, and webhooks added by a reload get the next events, a kept one keeps its
//! counters, a removed one gets nothing more.
#![allow(clippy::unwrap_used)]

use roost::config::Settings;
use roost_core::metrics::Limited;
use roost_e2e::mqtt5::Client5;
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{QUIET, TestBroker, WAIT};
use rumqttc::mqttbytes::v4;

use crate::webhook::{next_event, receiver};

/// `toml` parsed, with the listeners [`TestBroker`] gave the running gateway (each on
/// 127.0.0.1:0), so that only what the test changes differs.
fn reload_settings(toml: &str) -> Settings {
    let mut s = roost::config::parse(toml).unwrap_or_else(|e| panic!("test config rejected: {e}\n{toml}"));
    let any = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))];
    (s.mqtt.bind, s.mqttsn.bind, s.coap.bind, s.lwm2m.bind) = (any.clone(), any.clone(), any.clone(), any.clone());
    (s.lorawan.bind, s.http_bind) = (any.clone(), any);
    s.storage.disk = false;
    s
}

/// Sends `n` QoS 1 publishes in one go.
async fn publish_burst(c: &mut RawClient, n: u16) {
    for i in 1..=n {
        let mut p = v4::Publish::new("burst", rumqttc::QoS::AtLeastOnce, "x");
        p.pkid = i;
        c.send_v4(&v4::Packet::Publish(p)).await;
    }
}

#[tokio::test]
async fn reload_rate_limits_apply_to_new_connections() {
    let broker = TestBroker::start_with("").await;
    let addr = broker.addr();
    let (mut before, _) = RawClient::connect_v4(addr, raw::connect_v4("before")).await;
    let report = broker
        .gateway()
        .apply(reload_settings("[mqtt]\nmessages_rate = \"5/s\"\nrate_limit_action = \"disconnect\"\n"))
        .await
        .unwrap();
    assert!(report.applied.iter().any(|l| l.starts_with("mqtt: rate limits")), "{report:?}");
    assert!(report.restart_needed.is_empty(), "{report:?}");
    // A connection after the reload: 30 publishes at once against 5/s, disconnect: closed.
    let (mut after, _) = RawClient::connect_v4(addr, raw::connect_v4("after")).await;
    publish_burst(&mut after, 30).await;
    after.expect_close(WAIT).await;
    assert!(broker.broker().metrics().snapshot().limited(Limited::MessageRate) > 0);
    // The connection from before keeps its (unlimited) budgets: every publish acknowledged.
    publish_burst(&mut before, 30).await;
    let mut acks = 0;
    while acks < 30 {
        if let v4::Packet::PubAck(_) = before.recv_v4(WAIT).await {
            acks += 1;
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn reload_starts_keeps_and_stops_webhooks() {
    let (hook, mut rx, _server) = receiver("127.0.0.1:0".parse().unwrap(), 0).await;
    let broker = TestBroker::start_with("").await;
    let webhook = |events: &str| {
        format!("[[webhook]]\nurl = \"http://{hook}/hook\"\nbatch_delay = \"0s\"\nevents = [{events}]\n")
    };
    let connected = webhook("\"client.connected\"");
    let b = &broker;
    let apply = |toml: String| {
        let settings = reload_settings(&toml);
        async move { b.gateway().apply(settings).await.unwrap() }
    };
    // Added: the next connect is posted.
    let report = apply(connected.clone()).await;
    assert!(report.applied.contains(&"webhook: 1 started, 0 stopped, 0 kept".to_string()), "{report:?}");
    Client5::connect(broker.addr(), "one").await.disconnect().await;
    let e = next_event(&mut rx).await;
    assert_eq!((e["event"].as_str(), e["clientid"].as_str()), (Some("client.connected"), Some("one")));
    // A second one added: the first is kept (its counters go on), both post.
    let report = apply(format!("{connected}{}", webhook("\"client.disconnected\""))).await;
    assert!(report.applied.contains(&"webhook: 1 started, 0 stopped, 1 kept".to_string()), "{report:?}");
    Client5::connect(broker.addr(), "two").await.disconnect().await;
    let mut got = vec![next_event(&mut rx).await, next_event(&mut rx).await];
    got.sort_by_key(|e| e["event"].as_str().unwrap_or_default().to_string());
    assert_eq!(got[0]["event"], "client.connected");
    assert_eq!(got[1]["event"], "client.disconnected");
    assert!(got.iter().all(|e| e["clientid"] == "two"), "{got:?}");
    let hooks = broker.webhooks();
    assert_eq!(hooks.len(), 2);
    // The kept webhook's counter goes on from before the reload ("one", then "two").
    let sent = || hooks[0].counters.sent.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + WAIT;
    while sent() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(sent(), 2);
    // Removed: nothing more is posted.
    let report = apply(String::new()).await;
    assert!(report.applied.contains(&"webhook: 0 started, 2 stopped, 0 kept".to_string()), "{report:?}");
    assert!(broker.webhooks().is_empty());
    Client5::connect(broker.addr(), "three").await.disconnect().await;
    assert!(tokio::time::timeout(QUIET * 3, rx.recv()).await.is_err(), "an event after the webhooks were removed");
    broker.stop().await;
}
