//! Core behaviour through the adapter API only, with tokio's paused clock for timers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use roost_core::metrics::DropReason;
use roost_core::settings::{BrokerSettings, SharedStrategy};
use roost_core::store::MemoryStore;
use roost_core::{
    Broker, ClientId, ConnectRequest, Connection, Delivery, DisconnectReason, Message, Protocol, QoS, SubOptions, Will,
};

mod common;
use common::req;

async fn connect(b: &Broker, id: &str) -> Connection {
    b.connect(req(id, true, Some(Duration::ZERO))).await.unwrap()
}

fn qos(q: QoS) -> SubOptions {
    SubOptions { qos: q, ..Default::default() }
}

fn msg(topic: &str, body: &str, q: QoS) -> Message {
    Message::new(topic, body.as_bytes().to_vec(), q, false)
}

/// Next publish ready now: (packet id, dup, topic, payload).
fn next(c: &Connection) -> Option<(u16, bool, String, String)> {
    match c.try_next_delivery()? {
        Delivery::Publish { id, dup, pending } => Some((
            id,
            dup,
            pending.message.topic.to_string(),
            String::from_utf8_lossy(&pending.message.payload).into_owned(),
        )),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn wildcards_overlap_and_no_local() {
    let b = Broker::new(BrokerSettings::default());
    let sub = connect(&b, "sub").await;
    sub.subscribe("a/+", SubOptions { qos: QoS::AtLeastOnce, subscription_id: Some(1), ..Default::default() })
        .await
        .unwrap();
    sub.subscribe("a/#", SubOptions { qos: QoS::AtMostOnce, subscription_id: Some(2), ..Default::default() })
        .await
        .unwrap();
    sub.subscribe("$SYS/#", qos(QoS::AtMostOnce)).await.unwrap();
    let publ = connect(&b, "pub").await;
    publ.subscribe("a/b", SubOptions { no_local: true, ..Default::default() }).await.unwrap();
    publ.publish(msg("a/b", "1", QoS::AtLeastOnce)).await.unwrap();
    // One copy, with the higher QoS and both subscription ids.
    match sub.try_next_delivery() {
        Some(Delivery::Publish { pending, .. }) => {
            assert_eq!(pending.qos, QoS::AtLeastOnce);
            let mut ids = pending.subscription_ids.clone();
            ids.sort();
            assert_eq!(ids, [1, 2]);
        }
        other => panic!("{other:?}"),
    }
    assert!(sub.try_next_delivery().is_none());
    assert!(publ.try_next_delivery().is_none(), "no local");
    b.publish(msg("$SYS/x", "s", QoS::AtMostOnce));
    assert_eq!(next(&sub).map(|d| d.2), Some("$SYS/x".into()));
}

#[tokio::test]
async fn shared_round_robin_and_hash() {
    for strategy in [SharedStrategy::RoundRobin, SharedStrategy::HashClientId] {
        let b = Broker::new(BrokerSettings { shared_strategy: strategy, ..Default::default() });
        let m1 = connect(&b, "m1").await;
        let m2 = connect(&b, "m2").await;
        m1.subscribe("$share/g/t", qos(QoS::AtMostOnce)).await.unwrap();
        m2.subscribe("$share/g/t", qos(QoS::AtMostOnce)).await.unwrap();
        let p = connect(&b, "p").await;
        for i in 0..10 {
            p.publish(msg("t", &i.to_string(), QoS::AtMostOnce)).await.unwrap();
        }
        let (mut n1, mut n2) = (0, 0);
        while next(&m1).is_some() {
            n1 += 1;
        }
        while next(&m2).is_some() {
            n2 += 1;
        }
        assert_eq!(n1 + n2, 10);
        match strategy {
            SharedStrategy::RoundRobin => assert_eq!((n1, n2), (5, 5)),
            _ => assert!(n1 == 10 || n2 == 10, "hash keeps one publisher on one member"),
        }
    }
}

#[tokio::test]
async fn bounded_queue_drops_oldest_qos0_and_counts() {
    let b = Broker::new(BrokerSettings { max_queued_messages: 3, ..Default::default() });
    let s = connect(&b, "s").await;
    s.subscribe("t", qos(QoS::AtLeastOnce)).await.unwrap();
    let p = connect(&b, "p").await;
    p.publish(msg("t", "q1", QoS::AtLeastOnce)).await.unwrap();
    p.publish(msg("t", "q0", QoS::AtMostOnce)).await.unwrap();
    p.publish(msg("t", "q1b", QoS::AtLeastOnce)).await.unwrap();
    p.publish(msg("t", "new", QoS::AtLeastOnce)).await.unwrap();
    let got: Vec<String> = std::iter::from_fn(|| next(&s)).map(|d| d.3).collect();
    assert_eq!(got, ["q1", "q1b", "new"]);
    assert_eq!(b.metrics().snapshot().dropped(DropReason::QueueFull), 1);
}

#[tokio::test]
async fn inflight_window_and_redelivery_on_resume() {
    let b = Broker::new(BrokerSettings::default());
    let mut r = req("s", false, None);
    r.receive_maximum = 2;
    let s = b.connect(r.clone()).await.unwrap();
    s.subscribe("t", qos(QoS::ExactlyOnce)).await.unwrap();
    let p = connect(&b, "p").await;
    for i in 0..3 {
        p.publish(msg("t", &i.to_string(), QoS::ExactlyOnce)).await.unwrap();
    }
    let a = next(&s).unwrap();
    let c = next(&s).unwrap();
    assert!(next(&s).is_none(), "window of 2 is full");
    assert!(s.received(a.0), "PUBREC for the first");
    drop(s); // connection lost
    let s = b.connect(r).await.unwrap();
    assert!(s.session_present());
    assert!(matches!(s.try_next_delivery(), Some(Delivery::Release { id }) if id == a.0));
    let again = next(&s).unwrap();
    assert_eq!((again.0, again.1, again.3.as_str()), (c.0, true, "1"));
    assert!(next(&s).is_none(), "window still full");
    assert!(s.ack(a.0));
    assert_eq!(next(&s).map(|d| (d.1, d.3)), Some((false, "2".to_string())));
}

#[tokio::test]
async fn takeover_closes_the_first_connection() {
    let b = Broker::new(BrokerSettings::default());
    let first = connect(&b, "same").await;
    let _second = connect(&b, "same").await;
    assert!(matches!(first.next_delivery().await, Delivery::Close(DisconnectReason::TakenOver)));
    assert_eq!(b.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn session_expiry_ends_the_session() {
    let b = Broker::new(BrokerSettings::default());
    let s = b.connect(req("s", false, Some(Duration::from_secs(5)))).await.unwrap();
    s.subscribe("t", qos(QoS::AtLeastOnce)).await.unwrap();
    s.disconnect(DisconnectReason::Normal).await;
    assert_eq!(b.session_count(), 1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(b.session_count(), 0);
    assert_eq!(b.subscription_filter_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn will_delay_fires_later_or_not_at_all() {
    let b = Broker::new(BrokerSettings::default());
    let watcher = connect(&b, "w").await;
    watcher.subscribe("will", qos(QoS::AtMostOnce)).await.unwrap();
    let mut r = req("dev", false, Some(Duration::from_secs(100)));
    r.will = Some(Will { message: msg("will", "gone", QoS::AtMostOnce), delay: Duration::from_secs(10) });
    let dev = b.connect(r.clone()).await.unwrap();
    dev.disconnect(DisconnectReason::Abnormal).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(next(&watcher).is_none());
    let dev = b.connect(r.clone()).await.unwrap(); // back within the delay: no will
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(next(&watcher).is_none());
    dev.disconnect(DisconnectReason::Abnormal).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(next(&watcher).map(|d| d.3), Some("gone".into()));
}

#[tokio::test]
async fn normal_disconnect_suppresses_will() {
    let b = Broker::new(BrokerSettings::default());
    let watcher = connect(&b, "w").await;
    watcher.subscribe("will", qos(QoS::AtMostOnce)).await.unwrap();
    for (reason, fires) in [(DisconnectReason::Normal, false), (DisconnectReason::NormalWithWill, true)] {
        let mut r = req("dev", true, Some(Duration::ZERO));
        r.will = Some(Will { message: msg("will", "w", QoS::AtMostOnce), delay: Duration::ZERO });
        b.connect(r).await.unwrap().disconnect(reason).await;
        assert_eq!(next(&watcher).is_some(), fires, "{reason:?}");
    }
}

#[tokio::test]
async fn retained_and_retain_handling() {
    let b = Broker::new(BrokerSettings::default());
    let p = connect(&b, "p").await;
    let mut m = msg("r/1", "kept", QoS::AtLeastOnce);
    m.retain = true;
    p.publish(m).await.unwrap();
    let s = connect(&b, "s").await;
    s.subscribe("r/#", qos(QoS::AtMostOnce)).await.unwrap();
    assert_eq!(next(&s).map(|d| d.3), Some("kept".into()));
    s.subscribe("r/#", SubOptions { retain_handling: 1, ..Default::default() }).await.unwrap();
    assert!(next(&s).is_none(), "retain handling 1: existing subscription");
    s.subscribe("r/+", SubOptions { retain_handling: 2, ..Default::default() }).await.unwrap();
    assert!(next(&s).is_none(), "retain handling 2: never");
    let mut clear = msg("r/1", "", QoS::AtMostOnce);
    clear.retain = true;
    p.publish(clear).await.unwrap();
    assert_eq!(b.retained_count(), 0);
}

#[tokio::test]
async fn store_restores_sessions_and_retained() {
    let store = Arc::new(MemoryStore::new());
    {
        let b = Broker::builder(BrokerSettings::default()).store(store.clone()).build().unwrap();
        let s = b.connect(req("keep", false, None)).await.unwrap();
        s.subscribe("t", qos(QoS::AtLeastOnce)).await.unwrap();
        s.disconnect(DisconnectReason::Normal).await;
        let mut m = msg("t", "while away", QoS::AtLeastOnce);
        m.retain = true;
        b.publish(m);
        b.shutdown();
    }
    let b = Broker::builder(BrokerSettings::default()).store(store).build().unwrap();
    assert_eq!(b.retained_count(), 1);
    let s = b.connect(req("keep", false, None)).await.unwrap();
    assert!(s.session_present());
    assert_eq!(next(&s).map(|d| d.3), Some("while away".into()));
}

#[tokio::test]
async fn expired_messages_are_not_delivered() {
    let b = Broker::new(BrokerSettings::default());
    let s = b.connect(req("s", false, None)).await.unwrap();
    s.subscribe("t", qos(QoS::AtLeastOnce)).await.unwrap();
    s.disconnect(DisconnectReason::Normal).await;
    let mut m = msg("t", "old", QoS::AtLeastOnce);
    m.expiry = Some(Duration::from_millis(1));
    m.created = std::time::Instant::now() - Duration::from_secs(1);
    b.publish(m);
    let s = b.connect(req("s", false, None)).await.unwrap();
    assert!(next(&s).is_none());
    assert_eq!(b.metrics().snapshot().dropped(DropReason::Expired), 1);
}

#[tokio::test]
async fn connect_as_names_the_protocol_for_hooks_and_acl() {
    struct Names(parking_lot::Mutex<Vec<String>>);
    impl roost_core::hooks::Hook for Names {
        fn on_event(&self, event: &roost_core::hooks::Event<'_>) {
            if let roost_core::hooks::Event::Connected { client, .. } = event {
                self.0.lock().push(client.protocol_name().to_string());
            }
        }
    }
    let names = Arc::new(Names(parking_lot::Mutex::new(Vec::new())));
    let b = Broker::builder(BrokerSettings::default()).hook(names.clone()).build().unwrap();
    let mqtt = connect(&b, "m").await;
    let codec = b
        .connect_as(
            ConnectRequest { protocol: Protocol::Codec, ..req("c", true, Some(Duration::ZERO)) },
            "tlv-sensor".into(),
        )
        .await
        .unwrap();
    assert_eq!(mqtt.info().protocol_name(), "mqtt");
    assert_eq!(codec.info().protocol_name(), "tlv-sensor");
    assert_eq!(codec.info().protocol, Protocol::Codec);
    assert_eq!(*names.0.lock(), ["mqtt", "tlv-sensor"]);
}

#[tokio::test]
async fn per_session_queue_limit_bounds_below_the_global_one() {
    let b = Broker::new(BrokerSettings::default());
    let sub = connect(&b, "sleeper").await;
    sub.subscribe("s/#", qos(QoS::AtLeastOnce)).await.unwrap();
    sub.set_queue_limit(Some(2));
    for i in 0..5 {
        b.publish(msg("s/x", &i.to_string(), QoS::AtLeastOnce));
    }
    assert_eq!(b.queue_len(&ClientId::new("sleeper")), Some(2));
    assert_eq!(b.metrics().snapshot().dropped(DropReason::QueueFull), 3);
    assert_eq!(next(&sub).map(|m| m.3), Some("3".to_string()));
    sub.set_queue_limit(Some(0));
    b.publish(msg("s/x", "5", QoS::AtLeastOnce));
    assert_eq!(b.metrics().snapshot().dropped(DropReason::QueueFull), 4);
}

#[tokio::test]
async fn set_will_replaces_and_removes_the_will() {
    let b = Broker::new(BrokerSettings::default());
    let watcher = connect(&b, "watcher").await;
    watcher.subscribe("w/#", qos(QoS::AtMostOnce)).await.unwrap();
    let c = connect(&b, "dev").await;
    c.set_will(Some(Will { message: msg("w/1", "gone", QoS::AtMostOnce), delay: Duration::ZERO }));
    assert_eq!(c.will().map(|w| w.message.topic.to_string()), Some("w/1".to_string()));
    c.disconnect(DisconnectReason::Abnormal).await;
    assert_eq!(next(&watcher).map(|m| (m.2, m.3)), Some(("w/1".to_string(), "gone".to_string())));
    let c = connect(&b, "dev2").await;
    c.set_will(Some(Will { message: msg("w/2", "x", QoS::AtMostOnce), delay: Duration::ZERO }));
    c.set_will(None);
    c.disconnect(DisconnectReason::Abnormal).await;
    assert!(next(&watcher).is_none());
}

#[tokio::test]
async fn unconnected_publish_is_validated_routed_and_counted() {
    let b = Broker::new(BrokerSettings::default());
    let sub = connect(&b, "sub").await;
    sub.subscribe("p/#", qos(QoS::AtMostOnce)).await.unwrap();
    let info = roost_core::ClientInfo {
        client_id: ClientId::new("udp:1.2.3.4"),
        protocol: Protocol::MqttSn,
        peer: None,
        username: None,
        protocol_detail: None,
        grants: None,
    };
    let done = b.publish_unconnected(&info, msg("p/1", "hi", QoS::AtMostOnce)).unwrap();
    assert_eq!(done.matched, 1);
    assert_eq!(next(&sub).map(|m| m.3), Some("hi".to_string()));
    assert!(b.publish_unconnected(&info, msg("p/+", "bad", QoS::AtMostOnce)).is_err());
    let snap = b.metrics().snapshot();
    assert!(snap.by_protocol.iter().any(|(p, _, inn, _)| *p == "mqtt-sn" && *inn == 1));
    assert_eq!(b.session_count(), 1);
}
