//! Measures how long a broker takes to come back from its store with many retained messages
//! and persistent sessions: `cargo run --release -p roost-core --example store_restart
//! [RETAINED] [SESSIONS]` (defaults 100000 and 10000). Prints one line per phase.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use roost_core::settings::BrokerSettings;
use roost_core::store::{DiskStore, Store, SyncMode};
use roost_core::{Broker, ClientId, ConnectRequest, DisconnectReason, Message, Protocol, QoS, SubOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let retained: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let sessions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("roost-restart-{}", std::process::id()));
    let path = dir.join("roost.redb");
    let open =
        || -> Arc<dyn Store> { Arc::new(DiskStore::open(&path, SyncMode::Batch(Duration::from_millis(2))).unwrap()) };

    let t = Instant::now();
    {
        let b = Broker::builder(BrokerSettings::default()).store(open()).build().unwrap();
        for i in 0..retained {
            b.publish(Message::new(format!("sensors/{}/{}", i / 100, i % 100), vec![b'x'; 64], QoS::AtLeastOnce, true));
        }
        for i in 0..sessions {
            let c = b
                .connect(ConnectRequest {
                    client_id: ClientId::new(format!("dev-{i}")),
                    protocol: Protocol::Mqtt,
                    peer: None,
                    username: None,
                    password: None,
                    clean_start: false,
                    keep_alive: 60,
                    will: None,
                    session_expiry: None,
                    receive_maximum: 32,
                })
                .await
                .unwrap();
            c.subscribe(&format!("devices/{i}/command"), SubOptions { qos: QoS::AtLeastOnce, ..Default::default() })
                .await
                .unwrap();
            c.disconnect(DisconnectReason::Normal).await;
        }
        b.close_store();
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("filled: {retained} retained, {sessions} sessions in {:?}; file {} MiB", t.elapsed(), size / (1 << 20));

    let t = Instant::now();
    let b = Broker::builder(BrokerSettings::default()).store(open()).build().unwrap();
    println!(
        "restart: ready in {:?} with {} sessions and {} retained",
        t.elapsed(),
        b.session_count(),
        b.retained_count()
    );
    b.close_store();
    let _ = std::fs::remove_dir_all(&dir);
}
