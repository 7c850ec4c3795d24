//! Crash safety (persistence): the `roost` process is killed with SIGKILL in the middle of a
//! QoS 1 and QoS 2 load, at a random point, and restarted on the same store. The persistent
//! subscriber must then receive every message whose publish was acknowledged (PUBACK for
//! QoS 1, PUBREC for QoS 2), and no QoS 2 message twice.
//!
//! `ROOST_CRASH_ITERATIONS` sets the number of kill/restart rounds (default 5).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roost_e2e::raw::{self, RawClient};
use roost_e2e::roost_bin::{RoostProcess, spawn_roost};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4;
use tokio::time::{Instant, timeout};

/// Messages a publisher keeps unacknowledged at once.
const WINDOW: usize = 16;
/// How long the subscriber waits for one more message before it calls the queue drained.
const DRAINED: Duration = Duration::from_secs(1);

fn connect_packet(id: &str, clean: bool) -> v4::Connect {
    let mut c = raw::connect_v4(id);
    c.clean_session = clean;
    c.keep_alive = 60;
    c
}

fn publish(topic: &str, qos: QoS, pkid: u16, payload: String) -> v4::Packet {
    let mut p = v4::Publish::new(topic, qos, payload.into_bytes());
    p.pkid = pkid;
    v4::Packet::Publish(p)
}

/// Publishes `{round}-{n}` until the connection dies, recording each acknowledged `n`.
async fn publisher(addr: std::net::SocketAddr, round: usize, qos: QoS, acked: Arc<Mutex<Vec<u64>>>) {
    let (mut c, _) =
        RawClient::connect_v4(addr, connect_packet(&format!("crash-pub-{round}-{}", qos as u8), true)).await;
    let topic = format!("crash/q{}", qos as u8);
    let mut inflight: HashMap<u16, u64> = HashMap::new();
    let mut n = 0u64;
    loop {
        while inflight.len() < WINDOW {
            n += 1;
            let pkid = (n % 60_000) as u16 + 1;
            inflight.insert(pkid, n);
            let packet = publish(&topic, qos, pkid, format!("{round}-{n}"));
            if c.send_bytes(&raw::encode_v4(&packet)).await.is_err() {
                return;
            }
        }
        let Ok(p) = c.try_recv_v4(Duration::from_secs(5)).await else { return };
        match p {
            v4::Packet::PubAck(a) => {
                if let Some(n) = inflight.remove(&a.pkid) {
                    acked.lock().expect("lock").push(n);
                }
            }
            v4::Packet::PubRec(r) => {
                if let Some(n) = inflight.get(&r.pkid) {
                    acked.lock().expect("lock").push(*n);
                }
                if c.send_bytes(&raw::encode_v4(&v4::Packet::PubRel(v4::PubRel::new(r.pkid)))).await.is_err() {
                    return;
                }
            }
            v4::Packet::PubComp(cmp) => {
                inflight.remove(&cmp.pkid);
            }
            _ => {}
        }
    }
}

/// Connects the persistent subscriber and takes everything queued for it, acknowledging as
/// a correct client does (QoS 2: deliver on first PUBLISH of an id, forget the id at PUBREL).
/// Returns (topic, payload) in arrival order.
async fn drain(addr: std::net::SocketAddr) -> Vec<(String, String)> {
    let (mut c, ack) = RawClient::connect_v4(addr, connect_packet("crash-sub", false)).await;
    assert!(ack.session_present, "the persistent session survived the crash");
    let mut got = Vec::new();
    let mut awaiting_rel: HashSet<u16> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Ok(p) = c.try_recv_v4(DRAINED).await else { break };
        match p {
            v4::Packet::Publish(p) => {
                let body = String::from_utf8_lossy(&p.payload).into_owned();
                match p.qos {
                    QoS::AtMostOnce => got.push((p.topic, body)),
                    QoS::AtLeastOnce => {
                        got.push((p.topic, body));
                        c.send_v4(&v4::Packet::PubAck(v4::PubAck::new(p.pkid))).await;
                    }
                    QoS::ExactlyOnce => {
                        if awaiting_rel.insert(p.pkid) {
                            got.push((p.topic, body));
                        }
                        c.send_v4(&v4::Packet::PubRec(v4::PubRec::new(p.pkid))).await;
                    }
                }
            }
            v4::Packet::PubRel(r) => {
                awaiting_rel.remove(&r.pkid);
                c.send_v4(&v4::Packet::PubComp(v4::PubComp::new(r.pkid))).await;
            }
            _ => {}
        }
    }
    c.send_v4(&v4::Packet::Disconnect).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_qos1_and_qos2_load_loses_nothing_acknowledged() {
    let rounds: usize = std::env::var("ROOST_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("roost.toml");
    let text = format!(
        "[mqtt]\nbind = [\"127.0.0.1:0\"]\n[limits]\nmax_queued_messages = 1000000\n[mqttsn]\nbind = [\"127.0.0.1:0\"]\n[coap]\nbind = [\"127.0.0.1:0\"]\n[lorawan]\nbind = [\"127.0.0.1:0\"]\n[lwm2m]\nbind = [\"127.0.0.1:0\"]\n[http]\nbind = []\n[storage]\ndata_dir = {:?}\nsync = \"batch\"\n",
        dir.path().join("data").display().to_string()
    );
    std::fs::write(&config, text).expect("write config");

    // The persistent subscriber's session, created once.
    let RoostProcess { child: mut roost, mut mqtt } = spawn_roost(&config).await;
    let (mut sub, _) = RawClient::connect_v4(mqtt, connect_packet("crash-sub", false)).await;
    sub.send_v4(&raw::subscribe_v4(1, "crash/#", QoS::ExactlyOnce)).await;
    assert!(matches!(sub.recv_v4(Duration::from_secs(5)).await, v4::Packet::SubAck(_)));
    sub.send_v4(&v4::Packet::Disconnect).await;
    drop(sub);
    // A retained message, acknowledged before the first crash.
    let (mut keeper, _) = RawClient::connect_v4(mqtt, connect_packet("crash-retain", true)).await;
    let mut kept = v4::Publish::new("crash-retained/state", QoS::AtLeastOnce, "kept".as_bytes().to_vec());
    kept.pkid = 1;
    kept.retain = true;
    keeper.send_v4(&v4::Packet::Publish(kept)).await;
    assert!(matches!(keeper.recv_v4(Duration::from_secs(5)).await, v4::Packet::PubAck(_)));
    drop(keeper);

    for round in 0..rounds {
        let q1 = Arc::new(Mutex::new(Vec::new()));
        let q2 = Arc::new(Mutex::new(Vec::new()));
        let p1 = tokio::spawn(publisher(mqtt, round, QoS::AtLeastOnce, q1.clone()));
        let p2 = tokio::spawn(publisher(mqtt, round, QoS::ExactlyOnce, q2.clone()));
        // Wait until the load is really flowing, then kill at a random point.
        let start = Instant::now();
        while q1.lock().expect("lock").len() < 50 || q2.lock().expect("lock").len() < 50 {
            assert!(start.elapsed() < Duration::from_secs(20), "the load never got going");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..400))).await;
        roost.start_kill().expect("SIGKILL roost");
        let _ = roost.wait().await;
        let _ = timeout(Duration::from_secs(10), async {
            let _ = p1.await;
            let _ = p2.await;
        })
        .await;
        let acked1: BTreeSet<u64> = q1.lock().expect("lock").iter().copied().collect();
        let acked2: BTreeSet<u64> = q2.lock().expect("lock").iter().copied().collect();

        // Restart on the same store; the next round loads this process.
        RoostProcess { child: roost, mqtt } = spawn_roost(&config).await;
        let got = drain(mqtt).await;
        let prefix = format!("{round}-");
        let mut seen1 = HashSet::new();
        let mut seen2: HashMap<u64, usize> = HashMap::new();
        for (topic, body) in &got {
            let Some(n) = body.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok()) else { continue };
            match topic.as_str() {
                "crash/q1" => {
                    seen1.insert(n);
                }
                "crash/q2" => *seen2.entry(n).or_default() += 1,
                other => panic!("unexpected topic {other}"),
            }
        }
        let lost1: Vec<_> = acked1.iter().filter(|n| !seen1.contains(n)).collect();
        let lost2: Vec<_> = acked2.iter().filter(|n| !seen2.contains_key(n)).collect();
        let twice2: Vec<_> = seen2.iter().filter(|(_, c)| **c > 1).map(|(n, _)| n).collect();
        println!(
            "round {round}: QoS 1 acked {} delivered {}; QoS 2 acked {} delivered {}; lost {}+{}, QoS 2 duplicates {}",
            acked1.len(),
            seen1.len(),
            acked2.len(),
            seen2.len(),
            lost1.len(),
            lost2.len(),
            twice2.len()
        );
        assert!(lost1.is_empty(), "round {round}: acknowledged QoS 1 messages lost: {lost1:?}");
        assert!(lost2.is_empty(), "round {round}: acknowledged QoS 2 messages lost: {lost2:?}");
        assert!(twice2.is_empty(), "round {round}: QoS 2 messages delivered twice: {twice2:?}");
        let (mut fresh, _) = RawClient::connect_v4(mqtt, connect_packet("crash-fresh", true)).await;
        fresh.send_v4(&raw::subscribe_v4(1, "crash-retained/#", QoS::AtMostOnce)).await;
        assert!(matches!(fresh.recv_v4(Duration::from_secs(5)).await, v4::Packet::SubAck(_)));
        let retained = fresh.expect_publish_v4(Duration::from_secs(5)).await;
        assert!(retained.retain && &retained.payload[..] == b"kept", "round {round}: retained message survived");
    }
    roost.start_kill().expect("stop roost");
    let _ = roost.wait().await;
}
