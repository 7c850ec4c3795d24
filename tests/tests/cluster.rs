//! The cluster over NATS JetStream (issue 18): a real `nats-server -js` and three `roost`
//! processes, driven by real clients: rumqttc, mosquitto_sub / mosquitto_pub, and across
//! protocols the aiocoap and mqtt-sn-12 peers the CoAP and MQTT-SN tests use.
//! Needs the `roost` binary built (`cargo build -p roost`) and `nats-server` installed.

use std::collections::BTreeMap;
use std::time::Duration;

use roost_e2e::WAIT;
use roost_e2e::cli::{self, Version};
use roost_e2e::cluster::TestCluster;
use roost_e2e::mqtt5::{Client5, qos};
use roost_e2e::sn_peer::SnPeer;

/// Payloads of the PUBLISHes received until `n` arrived (bounded by `max`).
async fn receive(c: &mut Client5, n: usize, max: Duration) -> Vec<(String, String, u8)> {
    let deadline = tokio::time::Instant::now() + max;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.recv_publish(left).await {
            Some(p) => out.push((
                String::from_utf8_lossy(&p.topic).into_owned(),
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.qos as u8,
            )),
            None => break,
        }
    }
    out
}

#[tokio::test]
async fn publish_on_a_reaches_b_and_c_once_per_subscription_in_order() {
    let c = TestCluster::start(&["a", "b", "c"]).await;
    let (a, b, cc) = (c.node("a"), c.node("b"), c.node("c"));
    let mut on_b = Client5::connect(b.mqtt, "sub-b").await;
    on_b.subscribe("t/#", qos(2)).await;
    let mut on_c = Client5::connect(cc.mqtt, "sub-c").await;
    on_c.subscribe("t/+/x", qos(2)).await;
    // Overlapping subscriptions of two sessions on one node: one copy each.
    let mut on_c2 = Client5::connect(cc.mqtt, "sub-c2").await;
    on_c2.subscribe("t/a/x", qos(1)).await;
    let mut on_a = Client5::connect(a.mqtt, "sub-a").await;
    on_a.subscribe("t/#", qos(2)).await;
    c.await_remote_routes("a", 3).await;

    let mut publisher = Client5::connect(a.mqtt, "pub-a").await;
    const N: usize = 40;
    for q in 0..=2u8 {
        for i in 0..N {
            publisher.publish("t/a/x", qos(q), false, format!("q{q}-{i}")).await;
        }
    }
    let expected: Vec<String> = (0..=2u8).flat_map(|q| (0..N).map(move |i| format!("q{q}-{i}"))).collect();
    for (name, client, max_qos) in
        [("a", &mut on_a, 2), ("b", &mut on_b, 2), ("c", &mut on_c, 2), ("c2", &mut on_c2, 1)]
    {
        let got = receive(client, expected.len(), WAIT * 3).await;
        let payloads: Vec<&String> = got.iter().map(|(_, p, _)| p).collect();
        assert_eq!(payloads, expected.iter().collect::<Vec<_>>(), "subscriber on {name}: every message once, in order");
        for (_, p, q) in &got {
            let published: u8 = p[1..2].parse().unwrap();
            assert_eq!(*q, published.min(max_qos), "{name}: {p} delivered at the granted QoS");
        }
        client.assert_no_publish(roost_e2e::QUIET).await;
    }
}

#[tokio::test]
async fn nats_special_characters_in_topics_round_trip_across_nodes() {
    let c = TestCluster::start(&["a", "b"]).await;
    let (a, b) = (c.node("a"), c.node("b"));
    let sub = cli::Sub::start(b.mqtt.port(), Version::V5, "s/#", 1, 6).await;
    let mut sub = sub;
    c.await_remote_routes("a", 1).await;
    let topics = ["s/a.b", "s/*", "s/>", "s/with space", "s//empty//levels/", "s/é/✓"];
    for t in topics {
        cli::publish(a.mqtt.port(), Version::V5, t, &format!("p:{t}"), 1).await;
    }
    for t in topics {
        let m = sub.expect_message(WAIT).await;
        assert_eq!(m.line, format!("{t} p:{t}"), "topic {t:?} crossed nodes unchanged");
    }
}

#[tokio::test]
async fn shared_group_with_members_on_three_nodes_delivers_each_message_once() {
    let c = TestCluster::start(&["a", "b", "c"]).await;
    let mut members = Vec::new();
    for n in ["a", "b", "c"] {
        let mut m = Client5::connect(c.node(n).mqtt, &format!("member-{n}")).await;
        m.subscribe("$share/g/work/#", qos(1)).await;
        members.push(m);
    }
    c.await_remote_routes("a", 2).await;
    let total: usize = std::env::var("ROOST_CLUSTER_SHARED_N").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let mut publisher = Client5::connect(c.node("a").mqtt, "pub-shared").await;
    for i in 0..total {
        publisher.publish("work/item", qos(1), false, i.to_string()).await;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_member = Vec::new();
    for m in &mut members {
        let got = m.collect_publishes(Duration::from_millis(700), WAIT * 5).await;
        per_member.push(got.len());
        for p in got {
            *seen.entry(String::from_utf8_lossy(&p.payload).into_owned()).or_default() += 1;
        }
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "delivered to more than one member: {dup:?}");
    assert_eq!(seen.len(), total, "every message delivered (per member: {per_member:?})");
    assert!(per_member.iter().all(|n| *n > 0), "every node's member served some: {per_member:?}");
}

/// A retained message as a new subscriber on `addr` sees it (None: none within a short wait).
async fn retained_on(addr: std::net::SocketAddr, id: &str, topic: &str) -> Option<String> {
    let mut s = Client5::connect(addr, id).await;
    s.subscribe(topic, qos(1)).await;
    let got = s.recv_publish(Duration::from_millis(300)).await;
    s.disconnect().await;
    got.map(|p| String::from_utf8_lossy(&p.payload).into_owned())
}

/// Polls (bounded) until `retained_on` gives `want`.
async fn await_retained(addr: std::net::SocketAddr, topic: &str, want: Option<&str>, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let mut round = 0;
    loop {
        round += 1;
        let got = retained_on(addr, &format!("reader-{round}"), topic).await;
        if got.as_deref() == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: retained is {got:?}, want {want:?}");
    }
}

#[tokio::test]
async fn retained_set_on_a_is_read_on_c_and_cleared_on_b_everywhere() {
    let c = TestCluster::start(&["a", "b", "c"]).await;
    let (a, b, cc) = (c.node("a"), c.node("b"), c.node("c"));
    let mut p = Client5::connect(a.mqtt, "retainer").await;
    p.publish("r/state", qos(1), true, "on").await;
    await_retained(cc.mqtt, "r/state", Some("on"), "set on A, read on C").await;
    let mut clear = Client5::connect(b.mqtt, "clearer").await;
    clear.publish("r/state", qos(1), true, "").await;
    await_retained(a.mqtt, "r/state", None, "cleared on B, read on A").await;
    await_retained(cc.mqtt, "r/state", None, "cleared on B, read on C").await;
    await_retained(b.mqtt, "r/state", None, "cleared on B, read on B").await;
}

#[tokio::test]
async fn takeover_across_nodes_closes_with_0x8e_and_the_session_moves_with_its_queue() {
    let c = TestCluster::start(&["a", "b", "c"]).await;
    let (a, b, cc) = (c.node("a"), c.node("b"), c.node("c"));
    let mut first = Client5::connect_persistent(a.mqtt, "mover", true, 600).await;
    first.subscribe("m/#", qos(1)).await;
    c.await_remote_routes("c", 1).await;

    let mut second = Client5::connect_persistent(b.mqtt, "mover", false, 600).await;
    let end = first.expect_end(WAIT).await.unwrap_or_default();
    assert!(end.contains("SessionTakenOver"), "A's client got DISCONNECT 0x8E: {end:?}");
    assert!(second.session_present(), "the session came over from A");
    // Its subscription now lives on B: a publish from C reaches it there.
    let routes = c.node("c");
    c.await_view(routes, |v| v["routes"]["remote"].as_u64() == Some(1), "one route (B's)").await;
    let mut publisher = Client5::connect(cc.mqtt, "pub-mover").await;
    publisher.publish("m/x", qos(1), false, "after-move").await;
    assert_eq!(second.expect_publish(WAIT).await.payload.as_ref(), b"after-move");

    // Offline on B: 100 QoS 1 messages queue there; the client comes back on A.
    second.disconnect().await;
    for i in 0..100 {
        publisher.publish("m/x", qos(1), false, format!("q{i}")).await;
    }
    let mut third = Client5::connect_persistent(a.mqtt, "mover", false, 600).await;
    assert!(third.session_present(), "the session came over from B");
    let got = receive(&mut third, 100, WAIT * 3).await;
    let payloads: Vec<String> = got.into_iter().map(|(_, p, _)| p).collect();
    let want: Vec<String> = (0..100).map(|i| format!("q{i}")).collect();
    assert_eq!(payloads, want, "every queued message delivered on the new node, in order");
}

#[tokio::test]
async fn nats_outage_keeps_local_delivery_and_sends_the_buffered_messages_after() {
    let mut c = TestCluster::start(&["a", "b"]).await;
    let (a_mqtt, a_http, b_mqtt) = (c.node("a").mqtt, c.node("a").http, c.node("b").mqtt);
    let mut far = Client5::connect_persistent(b_mqtt, "far", true, 600).await;
    far.subscribe("o/#", qos(1)).await;
    let mut near = Client5::connect(a_mqtt, "near").await;
    near.subscribe("o/#", qos(1)).await;
    c.await_remote_routes("a", 1).await;
    let mut before = Client5::connect(a_mqtt, "pub-before").await;
    before.publish("o/x", qos(1), false, "before").await;
    assert_eq!(far.expect_publish(WAIT).await.payload.as_ref(), b"before");
    assert_eq!(near.expect_publish(WAIT).await.payload.as_ref(), b"before");

    c.nats.stop().await;
    let started = tokio::time::Instant::now();
    c.await_view(c.node("a"), |v| v["degraded"] == true && v["state"] == "degraded", "degraded").await;
    let (status, metrics) = roost_e2e::api::Api::anonymous(a_http).call_raw("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(metrics.contains("roost_cluster_degraded 1"), "degraded in /metrics:\n{metrics}");

    // Local delivery goes on: a new client connects and publishes, its neighbour gets it all.
    let mut publisher = Client5::connect(a_mqtt, "pub-outage").await;
    for i in 0..20 {
        publisher.publish("o/x", qos(1), false, format!("o{i}")).await;
    }
    let want: Vec<String> = (0..20).map(|i| format!("o{i}")).collect();
    let got: Vec<String> = receive(&mut near, 20, WAIT).await.into_iter().map(|(_, p, _)| p).collect();
    assert_eq!(got, want, "local delivery during the outage");

    // The messages for the persistent session on B wait in A's bounded buffer.
    let v = c.node("a").cluster().await;
    assert!(v["buffer"]["depth"].as_u64() >= Some(20), "the outage's messages for B are buffered: {v}");

    // The 10 s outage (counted from the stop), then NATS comes back on the same
    // port and store. The sleep is the scenario's length, not a synchronisation: every
    // check after it awaits its event.
    let outage = Duration::from_secs(10);
    tokio::time::sleep(outage.saturating_sub(started.elapsed())).await;
    let (status, metrics) = roost_e2e::api::Api::anonymous(a_http).call_raw("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&metrics).contains("roost_cluster_degraded 1"), "still degraded at 10 s");
    c.nats.restart().await;
    c.await_view(c.node("a"), |v| v["degraded"] == false, "up again").await;
    let got: Vec<String> = receive(&mut far, 20, WAIT * 3).await.into_iter().map(|(_, p, _)| p).collect();
    assert_eq!(got, want, "the messages for B sent during the outage arrive after it, in order");
}

#[tokio::test]
async fn mqtt_publish_on_a_reaches_a_coap_observer_on_b_and_an_mqttsn_device_on_c() {
    let c = TestCluster::start(&["a", "b", "c"]).await;
    let coap_port = c.node("b").coap.expect("node b has a CoAP listener").port().to_string();
    let mut observer = crate::coap::Peer::start(&["observe", &coap_port, "ps/cmd/+"]);
    assert_eq!(observer.line().await, "registered 2.05 True");
    let sn_port = c.node("c").mqttsn.expect("node c has an MQTT-SN listener").port();
    let mut sn = SnPeer::start("basic", sn_port, &[]);
    sn.expect("connack 0").await;
    assert!(sn.line().await.starts_with("registered "));
    for q in 0..3 {
        sn.expect(&format!("published {q}")).await;
    }
    sn.expect("published short").await;
    sn.expect("ready").await;
    // The observer's filter (cmd/+) on B and the device's (sn/cmd/#) on C.
    c.await_remote_routes("a", 2).await;

    let mut commander = Client5::connect(c.node("a").mqtt, "commander").await;
    commander.publish("cmd/lamp", qos(1), false, "on").await;
    assert_eq!(observer.line().await, "notify on", "CoAP observer on B got the MQTT publish from A");
    // A topic the MQTT-SN device never registered: its gateway (C) REGISTERs it, then delivers.
    commander.publish("sn/cmd/x", qos(1), false, "hello").await;
    sn.expect("received sn/cmd/x 0 hello").await;
    sn.expect("topic_map True").await;
    sn.expect("disconnected").await;
}

#[tokio::test]
async fn without_a_cluster_section_there_is_no_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let node = roost_e2e::cluster::start_node("alone", "", dir.path(), "").await;
    let v = node.cluster().await;
    assert_eq!(v, serde_json::json!({ "enabled": false }));
    let (status, metrics) = roost_e2e::api::Api::anonymous(node.http).call_raw("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(!String::from_utf8_lossy(&metrics).contains("roost_cluster_"), "no cluster metrics without a cluster");
    let mut sub = Client5::connect(node.mqtt, "s").await;
    sub.subscribe("x", qos(1)).await;
    let mut p = Client5::connect(node.mqtt, "p").await;
    p.publish("x", qos(1), false, "local").await;
    assert_eq!(sub.expect_publish(WAIT).await.payload.as_ref(), b"local");
    node.kill().await;
}
