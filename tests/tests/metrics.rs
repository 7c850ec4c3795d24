//! `GET /metrics`: parses as Prometheus text and its counters match what the test did.

use std::time::Duration;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(broker: &TestBroker) -> prometheus_parse::Scrape {
    let mut s = tokio::net::TcpStream::connect(broker.http_addr()).await.expect("connect to /metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: roost\r\nConnection: close\r\n\r\n").await.expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw)).await.expect("response in time").expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"));
    match sample.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected {other:?}"),
    }
}

#[tokio::test]
async fn metrics_count_what_clients_did() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("m/#", mqtt5::qos(1)).await;
    let mut publ = Client5::connect(broker.addr(), "pub").await;
    for i in 0..5 {
        publ.publish("m/x", mqtt5::qos(1), false, format!("{i}")).await;
    }
    for _ in 0..5 {
        sub.expect_publish(WAIT).await;
    }
    publ.publish("nobody/listens", mqtt5::qos(0), false, "x").await;
    let before_ms = std::time::Instant::now();
    let scrape = scrape(&broker).await;
    assert!(before_ms.elapsed() < Duration::from_secs(3));
    assert_eq!(value(&scrape, "roost_connections", Some(("protocol", "mqtt"))), 2.0);
    assert_eq!(value(&scrape, "roost_messages_received_total", Some(("protocol", "mqtt"))), 6.0);
    assert_eq!(value(&scrape, "roost_messages_sent_total", Some(("protocol", "mqtt"))), 5.0);
    assert_eq!(value(&scrape, "roost_messages_dropped_total", Some(("reason", "no_subscribers"))), 1.0);
    assert_eq!(value(&scrape, "roost_sessions", None), 2.0);
    assert!(value(&scrape, "roost_process_resident_memory_bytes", None) > 0.0);
    assert!(value(&scrape, "roost_received_bytes_total", None) > 0.0);
}
