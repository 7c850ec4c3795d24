//! Acceptance 3: loss and duplicate detection is itself tested. A relay between the load
//! generator and Roost drops and duplicates chosen PUBLISH packets on their way to the
//! subscriber; the report must count exactly those, so a "0 lost" elsewhere means something.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{start_roost, within};
use roost_sim::bench::{FlowConfig, FlowReport, Shape, flow};
use roost_sim::client::{parse_qos, parse_version};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Which PUBLISH packets (1-based, counted per connection, broker -> client) to drop or send twice.
#[derive(Clone, Default)]
struct Faults {
    drop: BTreeSet<u64>,
    duplicate: BTreeSet<u64>,
}

/// A TCP relay to `upstream` that applies `faults` to PUBLISH packets going to clients.
async fn start_relay(upstream: SocketAddr, faults: Faults) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let faults = faults.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    let _ = sw.shutdown().await;
                });
                let _ = relay_down(&mut sr, &mut cw, &faults).await;
            });
        }
    });
    addr
}

/// Broker -> client, one whole MQTT packet at a time.
async fn relay_down(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    faults: &Faults,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut publishes = 0u64;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut chunk).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        while let Some(len) = packet_len(&buf) {
            let packet: Vec<u8> = buf.drain(..len).collect();
            if packet[0] >> 4 == 3 {
                publishes += 1;
                if faults.drop.contains(&publishes) {
                    continue;
                }
                if faults.duplicate.contains(&publishes) {
                    out.extend_from_slice(&packet);
                }
            }
            out.extend_from_slice(&packet);
        }
        to.write_all(&out).await?;
    }
}

/// Length of the first whole packet in `buf`, if it is all there.
fn packet_len(buf: &[u8]) -> Option<usize> {
    let mut remaining = 0usize;
    for i in 1..5 {
        let b = *buf.get(i)?;
        remaining |= usize::from(b & 0x7f) << (7 * (i - 1));
        if b & 0x80 == 0 {
            let total = i + 1 + remaining;
            return (buf.len() >= total).then_some(total);
        }
    }
    None
}

fn fan_in(target: SocketAddr, qos: u8) -> FlowConfig {
    FlowConfig {
        target: target.to_string(),
        shape: Shape::FanIn,
        publishers: 2,
        subscribers: 1,
        qos: parse_qos(qos).unwrap(),
        version: parse_version("3.1.1").unwrap(),
        payload: 64,
        // 100 messages each, at 500/s each: the order across publishers is up to the
        // broker, but each publisher's own order is kept, which is what the tracker relies on.
        rate: Some(500.0),
        duration: Duration::from_secs(20),
        count: Some(100),
        window: 16,
        drain: Duration::from_secs(2),
        run_id: format!("lossy{qos}"),
        persistent_subscribers: false,
    }
}

async fn run(cfg: FlowConfig) -> FlowReport {
    within(60, "bench run", tokio::task::spawn_blocking(move || flow::run(&cfg))).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_relay_reports_no_loss_and_no_duplicates() {
    let gw = start_roost("[log]\nlevel = \"warn\"\n").await;
    let relay = start_relay(gw.mqtt_addrs()[0], Faults::default()).await;
    let r = run(fan_in(relay, 0)).await;
    assert_eq!((r.sent, r.delivered, r.lost, r.duplicates, r.errors), (200, 200, 0, 0, 0), "{}", r.summary());
    gw.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_duplicated_publishes_are_counted_exactly_qos0() {
    let gw = start_roost("[log]\nlevel = \"warn\"\n").await;
    // Drop four (the last one too, which only the final accounting can notice), send three twice.
    let faults = Faults { drop: [1, 10, 77, 200].into(), duplicate: [5, 120, 199].into() };
    let relay = start_relay(gw.mqtt_addrs()[0], faults).await;
    let r = run(fan_in(relay, 0)).await;
    assert_eq!(r.sent, 200, "{}", r.summary());
    assert_eq!(r.lost, 4, "{}", r.summary());
    assert_eq!(r.duplicates, 3, "{}", r.summary());
    assert_eq!(r.delivered, 196, "{}", r.summary());
    gw.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_qos1_publishes_are_counted() {
    let gw = start_roost("[log]\nlevel = \"warn\"\n").await;
    let faults = Faults { duplicate: [3, 150].into(), ..Faults::default() };
    let relay = start_relay(gw.mqtt_addrs()[0], faults).await;
    let r = run(fan_in(relay, 1)).await;
    assert_eq!((r.sent, r.delivered, r.lost, r.duplicates), (200, 200, 0, 2), "{}", r.summary());
    gw.shutdown(Duration::from_secs(5)).await;
}
