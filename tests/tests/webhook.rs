//! `[[webhook]]`: a receiver started by the test gets a scripted session's events in order;
//! when it is down, events are retried, then counted as dropped, and the broker goes on.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};
use serde_json::Value;
use tokio::sync::mpsc;

/// An HTTP server taking webhook POSTs: every event of every batch goes to the channel.
/// The first `fail_first` POSTs are answered 503.
pub(crate) async fn receiver(
    bind: SocketAddr,
    fail_first: usize,
) -> (SocketAddr, mpsc::UnboundedReceiver<Value>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let failures = Arc::new(AtomicUsize::new(fail_first));
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(batch): Json<Value>| {
            let (tx, failures) = (tx.clone(), failures.clone());
            async move {
                if failures.load(Relaxed) > 0 {
                    failures.fetch_sub(1, Relaxed);
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                for e in batch.as_array().expect("a JSON array of events") {
                    let _ = tx.send(e.clone());
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rx, task)
}

pub(crate) async fn next_event(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("a webhook event in time").expect("receiver open")
}

#[tokio::test]
async fn webhook_receives_a_sessions_events_in_order() {
    let (addr, mut rx, _server) = receiver("127.0.0.1:0".parse().unwrap(), 0).await;
    let broker = TestBroker::start_with(&format!(
        "[node]\nname = \"hooked\"\n[[webhook]]\nurl = \"http://{addr}/hook\"\nbatch_delay = \"20ms\"\n\
         events = [\"client.authenticate\", \"session.created\", \"client.connected\", \"session.subscribed\", \
         \"message.publish\", \"message.delivered\", \"message.acked\", \"session.unsubscribed\", \
         \"client.disconnected\", \"session.terminated\"]\n"
    ))
    .await;

    let mut c = Client5::connect(broker.addr(), "w1").await;
    c.subscribe("t/#", mqtt5::qos(1)).await;
    c.publish("t/1", mqtt5::qos(1), false, "hello").await;
    c.expect_publish(WAIT).await;
    c.unsubscribe("t/#").await;
    c.disconnect().await;

    let expected = [
        "client.authenticate",
        "session.created",
        "client.connected",
        "session.subscribed",
        "message.publish",
        "message.delivered",
        "message.acked",
        "session.unsubscribed",
        "client.disconnected",
        "session.terminated",
    ];
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let e = next_event(&mut rx).await;
        assert_eq!(e["node"], "hooked");
        assert!(e["timestamp"].as_u64().unwrap() > 0);
        if e["clientid"] != "w1" {
            continue;
        }
        match e["event"].as_str().unwrap() {
            "client.connected" => {
                assert_eq!(e["protocol"], "mqtt");
                assert!(e["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
            }
            "message.publish" | "message.delivered" | "message.acked" => {
                assert_eq!((e["topic"].as_str(), e["payload"].as_str()), (Some("t/1"), Some("hello")), "{e}");
            }
            "session.subscribed" | "session.unsubscribed" => assert_eq!(e["topic"], "t/#"),
            "client.disconnected" => assert_eq!(e["reason"], "normal"),
            _ => {}
        }
        seen.push(e["event"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, expected);
    let w = broker.webhooks()[0].clone();
    assert_eq!(w.counters.dropped(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn webhook_down_retries_then_drops_and_never_blocks_the_broker() {
    // A port with nobody listening.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let broker = TestBroker::start_with(&format!(
        "[[webhook]]\nurl = \"http://{free}/hook\"\nevents = [\"client.connected\"]\n\
         batch_size = 1\nbatch_delay = \"0s\"\nqueue = 2\nretries = 2\nretry_backoff = \"50ms\"\ntimeout = \"1s\"\n"
    ))
    .await;
    // Many connects while the endpoint is down: each is accepted at once.
    const N: usize = 20;
    for i in 0..N {
        let started = tokio::time::Instant::now();
        let c = Client5::connect(broker.addr(), &format!("d{i}")).await;
        assert!(started.elapsed() < WAIT, "connect {i} took {:?}", started.elapsed());
        c.disconnect().await;
    }
    let counters = broker.webhooks()[0].counters.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counters.dropped() < N as u64 {
        assert!(tokio::time::Instant::now() < deadline, "events not all counted as dropped: {counters:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counters.dropped(), N as u64);
    assert_eq!(counters.sent.load(Relaxed), 0);
    assert!(counters.dropped_queue_full.load(Relaxed) > 0, "the bounded queue overflowed: {counters:?}");
    let failed_batches = counters.dropped_failed.load(Relaxed);
    assert!(failed_batches > 0, "{counters:?}");
    assert_eq!(
        counters.failed_posts.load(Relaxed),
        failed_batches * 3,
        "each failed event was tried 1 + 2 retries times"
    );

    // The endpoint comes back but refuses its first POST: the retry delivers.
    let (_, mut rx, _server) = receiver(free, 1).await;
    let c = Client5::connect(broker.addr(), "back").await;
    let e = next_event(&mut rx).await;
    assert_eq!((e["event"].as_str(), e["clientid"].as_str()), (Some("client.connected"), Some("back")));
    // The sender counts after the POST's response; the receiver saw it just before.
    let deadline = tokio::time::Instant::now() + WAIT;
    while counters.sent.load(Relaxed) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "delivery not counted: {counters:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counters.failed_posts.load(Relaxed), failed_batches * 3 + 1);
    c.disconnect().await;

    // The drops show in /metrics.
    let (status, body) = roost_e2e::api::Api::anonymous(broker.http_addr()).call_raw("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("roost_webhook_events_dropped_total{url=\"http://"), "{text}");
    broker.stop().await;
}
