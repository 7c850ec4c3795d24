//! The cluster's node failure (issue 18, acceptance 5): persistent sessions outlive the node
//! that held them. A real `nats-server -js` and three `roost` processes; 50 rumqttc
//! publishers on B, persistent subscribers on A; A is SIGKILLed under load and the
//! subscribers reconnect to C, where every message B acknowledged arrives. QoS 1
//! duplicates are counted and printed; the QoS 2 subscriber is a raw MQTT 5 receiver that
//! keeps its packet ids across connections as §4.3.3 says, and gets each message once.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use roost_e2e::WAIT;
use roost_e2e::cluster::TestCluster;
use roost_e2e::mqtt5::{Client5, qos};
use roost_e2e::raw::{RawClient, RecvError, connect_v5_persistent, subscribe_v5};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5;
use tokio::sync::mpsc;

const PUBLISHERS: usize = 50;
/// Of the publishers, these publish at QoS 2 (the others at QoS 1).
const QOS2_PUBLISHERS: usize = 10;
const SUBSCRIBERS: usize = 4;
const EXPIRY: u32 = 600;

/// Messages per publisher (`ROOST_FAILOVER_N`, default 30: 1,500 publishes).
fn per_publisher() -> usize {
    std::env::var("ROOST_FAILOVER_N").ok().and_then(|v| v.parse().ok()).unwrap_or(30)
}

/// A QoS 2 receiver as MQTT 5.0 §4.3.3 (method A) has it: a PUBLISH is delivered when its
/// packet id is new; the id is held until PUBREL, and a PUBLISH with a held id is the same
/// message again (acknowledged, not delivered). The held ids outlive the connection, as a
/// session's state does. Runs until the connection ends or `max` has passed; returns them.
async fn exactly_once_receiver(
    mut client: RawClient,
    mut held: HashSet<u16>,
    delivered: mpsc::UnboundedSender<(String, bool)>,
    max: Duration,
) -> HashSet<u16> {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return held;
        }
        let packet = match client.try_recv_v5(left.min(Duration::from_millis(500))).await {
            Ok(p) => p,
            Err(RecvError::Timeout) => continue,
            Err(_) => return held,
        };
        let reply = match packet {
            v5::Packet::Publish(p) if p.qos == QoS::ExactlyOnce => {
                // (payload, whether it was a repeat of a held id: acknowledged, not delivered)
                let repeat = !held.insert(p.pkid);
                let _ = delivered.send((String::from_utf8_lossy(&p.payload).into_owned(), repeat));
                v5::Packet::PubRec(v5::PubRec::new(p.pkid, None))
            }
            v5::Packet::Publish(p) => v5::Packet::PubAck(v5::PubAck::new(p.pkid, None)),
            v5::Packet::PubRel(r) => {
                held.remove(&r.pkid);
                v5::Packet::PubComp(v5::PubComp::new(r.pkid, None))
            }
            _ => continue,
        };
        client.send_v5(&reply).await;
    }
}

/// The QoS 2 subscriber's connection to `addr`; subscribes if `subscribe`.
async fn q2_connect(addr: SocketAddr, clean_start: bool, subscribe: bool) -> (RawClient, bool) {
    let (mut client, ack) =
        RawClient::connect_v5(addr, connect_v5_persistent("keep-q2", clean_start, EXPIRY), None).await;
    if subscribe {
        client.send_v5(&subscribe_v5(1, v5::Filter::new("load/q2/#", QoS::ExactlyOnce), None)).await;
        match client.recv_v5(WAIT).await {
            v5::Packet::SubAck(a) => assert_eq!(a.return_codes.len(), 1),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
    (client, ack.session_present)
}

/// One publisher on B: `n` messages on its own topic, each awaited until acknowledged
/// (PUBACK / PUBCOMP); returns the payloads acknowledged.
async fn publisher(mut c: Client5, p: usize, n: usize) -> Vec<String> {
    let (topic, q) = if p < QOS2_PUBLISHERS { (format!("load/q2/{p}"), 2) } else { (format!("load/q1/{p}"), 1) };
    let mut acked = Vec::with_capacity(n);
    for i in 0..n {
        let payload = format!("{p}-{i}");
        c.publish(&topic, qos(q), false, payload.clone()).await;
        acked.push(payload);
    }
    c.disconnect().await;
    acked
}

/// Payload -> times received.
fn tally(into: &mut BTreeMap<String, usize>, payloads: impl IntoIterator<Item = String>) {
    for p in payloads {
        *into.entry(p).or_default() += 1;
    }
}

/// The payloads of the next `n` PUBLISHes on `c` (fewer if `max` passes first).
async fn receive_n(c: &mut Client5, n: usize, max: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + max;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.recv_publish(left).await {
            Some(p) => out.push(String::from_utf8_lossy(&p.payload).into_owned()),
            None => break,
        }
    }
    out
}

/// Receives on `c` until every payload of `want` was seen in `seen` (or `max` passed).
async fn receive_all(c: &mut Client5, seen: &mut BTreeMap<String, usize>, want: &[String], max: Duration) {
    let deadline = tokio::time::Instant::now() + max;
    while want.iter().any(|w| !seen.contains_key(w)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.recv_publish(left).await {
            Some(p) => tally(seen, [String::from_utf8_lossy(&p.payload).into_owned()]),
            None => return,
        }
    }
}

#[tokio::test]
async fn sigkill_of_a_node_under_load_loses_no_acknowledged_message_of_its_persistent_sessions() {
    let mut cluster = TestCluster::start(&["a", "b", "c"]).await;
    let (a, b, c) = (cluster.node("a").mqtt, cluster.node("b").mqtt, cluster.node("c").mqtt);
    let mut subs = Vec::new();
    for s in 0..SUBSCRIBERS {
        let mut sub = Client5::connect_persistent(a, &format!("keep-{s}"), true, EXPIRY).await;
        sub.subscribe("load/#", qos(1)).await;
        subs.push(sub);
    }
    let (q2, _) = q2_connect(a, true, true).await;
    let (q2_tx, mut q2_rx) = mpsc::unbounded_channel();
    let q2_first = tokio::spawn(exactly_once_receiver(q2, HashSet::new(), q2_tx.clone(), WAIT * 20));
    // B routes by the persistent sessions it knows of.
    let want_sessions = (SUBSCRIBERS + 1) as u64;
    cluster
        .await_view(
            cluster.node("b"),
            |v| v["persistent_sessions"]["known"].as_u64() >= Some(want_sessions),
            "knowing A's persistent sessions",
        )
        .await;

    // The publishers connect one after the other (each CONNECT claims its client id
    // cluster-wide, a KV round trip), then all publish at once.
    let mut clients = Vec::new();
    for p in 0..PUBLISHERS {
        clients.push(Client5::connect(b, &format!("pub-{p}")).await);
    }
    let n = per_publisher();
    let started = tokio::time::Instant::now();
    let publishers: Vec<_> = clients.into_iter().enumerate().map(|(p, c)| tokio::spawn(publisher(c, p, n))).collect();

    // Under load: once a fifth of the messages reached A's first subscriber, A dies.
    let total = PUBLISHERS * n;
    let mut seen: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); SUBSCRIBERS];
    let kill_at = total / 5;
    let before = receive_n(&mut subs[0], kill_at, WAIT * 5).await;
    assert!(before.len() >= kill_at, "A's subscriber got {} of {kill_at} messages before the kill", before.len());
    tally(&mut seen[0], before);
    let a_node = cluster.nodes.remove(0);
    assert_eq!(a_node.name, "a");
    a_node.kill().await;
    let killed_at = started.elapsed();

    // What A's connections delivered before they ended counts as received.
    for (s, sub) in subs.into_iter().enumerate() {
        let mut sub = sub;
        let mut got = Vec::new();
        while let Some(p) = sub.recv_publish(Duration::from_millis(200)).await {
            got.push(String::from_utf8_lossy(&p.payload).into_owned());
        }
        tally(&mut seen[s], got);
    }
    let q2_held = tokio::time::timeout(WAIT * 2, q2_first).await.expect("A's QoS 2 connection ended").unwrap();

    // Every client reconnects to C and resumes its session there.
    let mut resumed = Vec::new();
    for s in 0..SUBSCRIBERS {
        let sub = Client5::connect_persistent(c, &format!("keep-{s}"), false, EXPIRY).await;
        assert!(sub.session_present(), "keep-{s}: the session of dead node A resumed on C");
        resumed.push(sub);
    }
    let (q2, present) = q2_connect(c, false, false).await;
    assert!(present, "keep-q2: the session of dead node A resumed on C");
    let q2_second = tokio::spawn(exactly_once_receiver(q2, q2_held, q2_tx, WAIT * 20));

    let mut acked: Vec<String> = Vec::new();
    for p in publishers {
        acked.extend(tokio::time::timeout(WAIT * 15, p).await.expect("publishers finished").unwrap());
    }
    let published_in = started.elapsed();
    assert_eq!(acked.len(), total, "every publish acknowledged by B");

    let mut duplicates = 0;
    for (s, sub) in resumed.iter_mut().enumerate() {
        receive_all(sub, &mut seen[s], &acked, WAIT * 10).await;
        let missing: Vec<&String> = acked.iter().filter(|m| !seen[s].contains_key(*m)).collect();
        assert!(
            missing.is_empty(),
            "keep-{s}: {} acknowledged messages lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        duplicates += seen[s].values().map(|n| n - 1).sum::<usize>();
    }
    let q2_want: Vec<&String> = acked
        .iter()
        .filter(|m| m.split('-').next().and_then(|p| p.parse::<usize>().ok()) < Some(QOS2_PUBLISHERS))
        .collect();
    let mut q2_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut q2_repeats = 0;
    let deadline = tokio::time::Instant::now() + WAIT * 10;
    while q2_want.iter().any(|m| !q2_seen.contains_key(*m)) {
        match tokio::time::timeout_at(deadline, q2_rx.recv()).await {
            Ok(Some((_, true))) => q2_repeats += 1,
            Ok(Some((p, false))) => tally(&mut q2_seen, [p]),
            _ => break,
        }
    }
    q2_second.abort();
    let q2_missing = q2_want.iter().filter(|m| !q2_seen.contains_key(**m)).count();
    let q2_dup: Vec<_> = q2_seen.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "failover: {total} publishes acknowledged by B in {published_in:?} (A killed at {killed_at:?}); \
         {SUBSCRIBERS} QoS 1 subscribers: 0 lost, {duplicates} duplicates; QoS 2 subscriber: {} messages, \
         {q2_missing} lost, {} duplicates ({q2_repeats} redeliveries recognised by their held packet id)",
        q2_want.len(),
        q2_dup.len()
    );
    assert_eq!(q2_missing, 0, "QoS 2: acknowledged messages lost");
    assert!(q2_dup.is_empty(), "QoS 2 delivered more than once: {q2_dup:?}");
    let status = cluster.node("c").cluster().await;
    assert!(status["persistent_sessions"]["resumed"].as_u64() >= Some(want_sessions), "{status}");
}
