//! The embedded store through the adapter API: what a broker acknowledged is there after it
//! is rebuilt on the same file; a bad file is a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use roost_core::settings::BrokerSettings;
use roost_core::store::{DiskStore, Store, SyncMode};
use roost_core::{Broker, Delivery, DisconnectReason, Message, QoS, SubOptions};

mod common;
use common::req;

fn broker(path: &std::path::Path) -> Broker {
    broker_with(path, SyncMode::Always)
}

fn broker_with(path: &std::path::Path, mode: SyncMode) -> Broker {
    let store: Arc<dyn Store> = Arc::new(DiskStore::open(path, mode).unwrap());
    Broker::builder(BrokerSettings::default()).store(store).build().unwrap()
}

fn body(d: &Delivery) -> String {
    match d {
        Delivery::Publish { pending, .. } => String::from_utf8_lossy(&pending.message.payload).into_owned(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn sessions_messages_and_retained_survive_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.redb");
    let (first_id, second_id);
    {
        let b = broker(&path);
        let sub = b.connect(req("sub", false, None)).await.unwrap();
        sub.subscribe("t/#", SubOptions { qos: QoS::ExactlyOnce, subscription_id: Some(7), ..Default::default() })
            .await
            .unwrap();
        let publ = b.connect(req("pub", true, Some(Duration::ZERO))).await.unwrap();
        for i in 0..4 {
            publ.publish(Message::new("t/a", format!("m{i}"), QoS::ExactlyOnce, false)).await.unwrap();
        }
        let mut retained = Message::new("t/r", "kept", QoS::AtLeastOnce, true);
        retained.expiry = Some(Duration::from_secs(3600));
        publ.publish(retained).await.unwrap();
        // Two in flight: one PUBREC'd, one not; the rest (and the retained copy) still queued.
        let d1 = sub.try_next_delivery().unwrap();
        let d2 = sub.try_next_delivery().unwrap();
        (first_id, second_id) = match (&d1, &d2) {
            (Delivery::Publish { id: a, .. }, Delivery::Publish { id: b, .. }) => (*a, *b),
            _ => panic!("{d1:?} {d2:?}"),
        };
        assert!(sub.received(first_id));
        assert!(publ.begin_exactly_once(99).unwrap());
        drop(sub); // connection lost, like a crash would do
        drop(publ);
        b.close_store();
    }
    let b = broker(&path);
    assert_eq!(b.retained_count(), 1);
    let sub = b.connect(req("sub", false, None)).await.unwrap();
    assert!(sub.session_present());
    assert!(matches!(sub.try_next_delivery(), Some(Delivery::Release { id }) if id == first_id));
    match sub.try_next_delivery().unwrap() {
        Delivery::Publish { id, dup, pending } => {
            assert_eq!((id, dup), (second_id, true));
            assert_eq!(&pending.message.payload[..], b"m1");
            assert_eq!(pending.subscription_ids, [7]);
        }
        other => panic!("{other:?}"),
    }
    let rest: Vec<String> = std::iter::from_fn(|| sub.try_next_delivery()).map(|d| body(&d)).collect();
    assert_eq!(rest, ["m2", "m3", "kept"]);
    // The subscription itself survived too.
    let p = b.connect(req("p2", true, Some(Duration::ZERO))).await.unwrap();
    p.publish(Message::new("t/new", "after", QoS::AtLeastOnce, false)).await.unwrap();
    assert_eq!(sub.try_next_delivery().map(|d| body(&d)), Some("after".into()));
}

#[tokio::test]
async fn clean_sessions_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.redb");
    {
        let b = broker(&path);
        let c = b.connect(req("clean", true, Some(Duration::ZERO))).await.unwrap();
        c.subscribe("x", SubOptions::default()).await.unwrap();
        let p = b.connect(req("persist", false, Some(Duration::from_secs(60)))).await.unwrap();
        p.subscribe("x", SubOptions::default()).await.unwrap();
        p.disconnect(DisconnectReason::Normal).await;
        let p = b.connect(req("persist", true, Some(Duration::ZERO))).await.unwrap(); // clean start ends it
        p.disconnect(DisconnectReason::Normal).await;
        c.disconnect(DisconnectReason::Normal).await;
        b.close_store();
    }
    let report = DiskStore::check(&path).unwrap();
    assert_eq!((report.sessions, report.messages, report.retained), (0, 0, 0));
}

#[test]
fn garbage_and_truncated_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x5Au8; 64 * 1024]).unwrap();
    let e = DiskStore::open(&garbage, SyncMode::Always).err().expect("garbage refused");
    assert!(e.to_string().contains("garbage.redb"), "{e}");

    let good = dir.path().join("good.redb");
    drop(DiskStore::open(&good, SyncMode::Always).unwrap());
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.redb");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    match DiskStore::open(&cut, SyncMode::Always) {
        Err(e) => assert!(e.to_string().contains("cut.redb"), "{e}"),
        // redb may rebuild a truncated tail from its last commit; then it must be readable.
        Ok(store) => assert!(store.load().is_ok()),
    }
}

async fn session(b: &Broker, id: &str) -> roost_core::Connection {
    b.connect(req(id, false, None)).await.unwrap()
}

#[tokio::test]
async fn steady_traffic_reuses_space_instead_of_growing_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.redb");
    // Durable commits would make this slow without changing what it shows: space reuse.
    let b = broker_with(&path, SyncMode::None);
    let sub = session(&b, "steady").await;
    sub.subscribe("s", SubOptions { qos: QoS::AtLeastOnce, ..Default::default() }).await.unwrap();
    let publ = b.connect(req("p", true, Some(Duration::ZERO))).await.unwrap();
    let mut sizes = Vec::new();
    for round in 0..4 {
        for _ in 0..2_000 {
            publ.publish(Message::new("s", vec![7u8; 1024], QoS::AtLeastOnce, false)).await.unwrap();
            while let Some(Delivery::Publish { id, .. }) = sub.try_next_delivery() {
                sub.ack(id);
            }
        }
        sub.sync().await.unwrap();
        sizes.push(std::fs::metadata(&path).unwrap().len());
        let _ = round;
    }
    // 8 MB went through; what is live at any time is a few messages.
    assert!(sizes[3] <= sizes[1] + (1 << 20), "file keeps growing under steady load: {sizes:?}");
}

#[tokio::test]
async fn past_max_size_new_messages_stay_in_memory_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.redb");
    let store = Arc::new(DiskStore::open_limited(&path, SyncMode::Always, Some(256 * 1024)).unwrap());
    let b = Broker::builder(BrokerSettings { max_queued_messages: 100_000, ..Default::default() })
        .store(store.clone())
        .build()
        .unwrap();
    let sub = session(&b, "offline").await;
    sub.subscribe("big", SubOptions { qos: QoS::AtLeastOnce, ..Default::default() }).await.unwrap();
    sub.disconnect(DisconnectReason::Normal).await;
    let publ = b.connect(req("p", true, Some(Duration::ZERO))).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while !store.is_full() {
        assert!(std::time::Instant::now() < deadline, "store never reported full");
        publ.publish(Message::new("big", vec![1u8; 4096], QoS::AtLeastOnce, false)).await.unwrap();
        sent += 1;
    }
    for _ in 0..10 {
        publ.publish(Message::new("big", vec![1u8; 4096], QoS::AtLeastOnce, false)).await.unwrap();
        sent += 1;
    }
    assert!(b.metrics().snapshot().dropped(roost_core::metrics::DropReason::StoreFull) >= 10);
    // Nothing is lost while the process lives: every message is still delivered.
    let sub = session(&b, "offline").await;
    let mut got = 0;
    while let Some(Delivery::Publish { id, .. }) = sub.try_next_delivery() {
        sub.ack(id);
        got += 1;
    }
    assert_eq!(got, sent);
}

#[tokio::test]
async fn adapter_blobs_survive_a_rebuild_per_space() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.redb");
    {
        let b = broker(&path);
        b.record_blob("lorawan", "a".into(), Some(bytes::Bytes::from_static(b"1")));
        b.record_blob("lorawan", "b".into(), Some(bytes::Bytes::from_static(b"2")));
        b.record_blob("lorawan", "a".into(), Some(bytes::Bytes::from_static(b"3")));
        b.record_blob("other", "a".into(), Some(bytes::Bytes::from_static(b"x")));
        let t = b.record_blob("lorawan", "b".into(), None);
        b.durable(t).await.unwrap();
        b.close_store();
    }
    let b = broker(&path);
    assert_eq!(b.load_blobs("lorawan").unwrap(), vec![("a".to_string(), bytes::Bytes::from_static(b"3"))]);
    assert_eq!(b.load_blobs("other").unwrap().len(), 1);
    assert!(b.load_blobs("lorawa").unwrap().is_empty());
    let mem = Broker::builder(BrokerSettings::default())
        .store(Arc::new(roost_core::store::MemoryStore::new()))
        .build()
        .unwrap();
    mem.record_blob("s", "k".into(), Some(bytes::Bytes::from_static(b"v")));
    assert_eq!(mem.load_blobs("s").unwrap().len(), 1);
}
