//! The event bus: in-process handlers that rewrite or reject a publish, interest masks, and
//! the order of a session's events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::req;
use parking_lot::Mutex;
use roost_core::hooks::{Event, EventKind, EventMask, Hook, PublishVerdict};
use roost_core::metrics::DropReason;
use roost_core::settings::BrokerSettings;
use roost_core::{Broker, ClientInfo, Delivery, Message, PublishError, QoS, SubOptions};

/// Moves `raw/...` to `cooked/...` in upper case; rejects `forbidden/...`.
struct Rewriter;

impl Hook for Rewriter {
    fn interests(&self) -> EventMask {
        EventMask::NONE
    }
    fn rewrites_publish(&self) -> bool {
        true
    }
    fn on_publish(&self, _client: Option<&ClientInfo>, m: &mut Message) -> PublishVerdict {
        if m.topic.starts_with("forbidden/") {
            return PublishVerdict::Reject;
        }
        if let Some(rest) = m.topic.strip_prefix("raw/") {
            m.topic = format!("cooked/{rest}").into();
            m.payload = Bytes::from(String::from_utf8_lossy(&m.payload).to_uppercase());
        }
        PublishVerdict::Continue
    }
}

/// Records the kinds it is told of.
struct Recorder(EventMask, Mutex<Vec<(EventKind, Option<String>)>>);

impl Hook for Recorder {
    fn interests(&self) -> EventMask {
        self.0
    }
    fn on_event(&self, e: &Event<'_>) {
        self.1.lock().push((e.kind(), e.client_id().map(|c| c.to_string())));
    }
}

fn sub_qos1() -> SubOptions {
    SubOptions { qos: QoS::AtLeastOnce, ..SubOptions::default() }
}

#[tokio::test]
async fn an_in_process_hook_rewrites_and_rejects_publishes() {
    let dropped = Arc::new(Recorder(EventMask::of(&[EventKind::MessageDropped]), Mutex::new(Vec::new())));
    let b = Broker::builder(BrokerSettings::default()).hook(Arc::new(Rewriter)).hook(dropped.clone()).build().unwrap();
    let sub = b.connect(req("sub", true, Some(Duration::ZERO))).await.unwrap();
    sub.subscribe("cooked/#", sub_qos1()).await.unwrap();
    let publ = b.connect(req("pub", true, Some(Duration::ZERO))).await.unwrap();

    let r = publ.publish(Message::new("raw/t", "hello", QoS::AtLeastOnce, false)).await.unwrap();
    assert_eq!(r.matched, 1);
    match sub.try_next_delivery() {
        Some(Delivery::Publish { pending, .. }) => {
            assert_eq!((&*pending.message.topic, &pending.message.payload[..]), ("cooked/t", &b"HELLO"[..]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        publ.publish(Message::new("forbidden/x", "no", QoS::AtMostOnce, false)).await,
        Err(PublishError::NotAuthorized)
    );
    assert_eq!(b.metrics().snapshot().dropped(DropReason::Rejected), 1);
    assert_eq!(*dropped.1.lock(), [(EventKind::MessageDropped, Some("pub".to_string()))]);
}

#[tokio::test]
async fn hooks_hear_only_what_they_asked_for_in_order() {
    let all = Arc::new(Recorder(EventMask::ALL, Mutex::new(Vec::new())));
    let none = Arc::new(Recorder(EventMask::NONE, Mutex::new(Vec::new())));
    let b = Broker::builder(BrokerSettings::default()).hook(all.clone()).hook(none.clone()).build().unwrap();
    let c = b.connect(req("c", true, Some(Duration::ZERO))).await.unwrap();
    c.subscribe("t", sub_qos1()).await.unwrap();
    c.publish(Message::new("t", "x", QoS::AtLeastOnce, false)).await.unwrap();
    let Some(Delivery::Publish { id, .. }) = c.try_next_delivery() else { panic!("a delivery") };
    assert!(c.ack(id));
    c.publish(Message::new("nobody", "x", QoS::AtMostOnce, false)).await.unwrap();
    c.unsubscribe("t").await.unwrap();
    c.disconnect(roost_core::DisconnectReason::Normal).await;
    // A persistent session resumed, then discarded by a clean start.
    drop(b.connect(req("p", false, None)).await.unwrap());
    drop(b.connect(req("p", false, None)).await.unwrap());
    drop(b.connect(req("p", true, Some(Duration::ZERO))).await.unwrap());

    let kinds: Vec<&str> = all.1.lock().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "client.authenticate",
            "session.created",
            "client.connected",
            "session.subscribed",
            "message.publish",
            "message.delivered",
            "message.acked",
            "message.publish",
            "message.dropped",
            "session.unsubscribed",
            "client.disconnected",
            "session.terminated",
            // p: created, then resumed, then discarded by the clean start.
            "client.authenticate",
            "session.created",
            "client.connected",
            "client.disconnected",
            "client.authenticate",
            "session.resumed",
            "client.connected",
            "client.disconnected",
            "client.authenticate",
            "session.terminated",
            "session.created",
            "client.connected",
            "client.disconnected",
            "session.terminated",
        ]
    );
    assert!(none.1.lock().is_empty());
}
