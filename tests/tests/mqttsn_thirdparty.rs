//! MQTT-SN with a third-party client: `mqtt-sn-12` from PyPI (module `mqttsn12`, installed by
//! scripts/test), driven by `peers/mqttsn_peer.py`, against the gateway's UDP socket, with a
//! real MQTT client (rumqttc) on the other side.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use roost_e2e::mqtt311::{Client311, qos};
use roost_e2e::{TestBroker, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

const CONFIG: &str = "[mqttsn]\n[[mqttsn.predefined]]\nid = 1\ntopic = \"sn/predef\"\n";

struct Peer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn start(scenario: &str, port: u16) -> Peer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mqttsn_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(scenario)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs mqtt-sn-12)");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Peer { child, lines }
    }

    /// The next line the peer prints, within 10 s.
    async fn line(&mut self) -> String {
        match timeout(Duration::from_secs(10), self.lines.next_line()).await {
            Ok(Ok(Some(l))) => l,
            other => panic!("peer said nothing more: {other:?}; exit: {:?}", self.child.try_wait()),
        }
    }

    async fn expect(&mut self, want: &str) {
        let got = self.line().await;
        assert_eq!(got, want);
    }

    async fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn finish(mut self) {
        let status = timeout(Duration::from_secs(10), self.child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "peer exited with {status}");
    }
}

#[tokio::test]
async fn mqttsn_thirdparty_connect_register_publish_subscribe() {
    let broker = TestBroker::start_with(CONFIG).await;
    let mut watcher = Client311::connect(broker.addr(), "watcher").await;
    watcher.subscribe("sn/#", qos(2)).await;
    watcher.subscribe("sh", qos(2)).await;
    let mut peer = Peer::start("basic", broker.mqttsn_addr().port());
    peer.expect("connack 0").await;
    assert!(peer.line().await.starts_with("registered "));
    for q in 0..3 {
        peer.expect(&format!("published {q}")).await;
    }
    peer.expect("published short").await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let p = watcher.expect_publish(WAIT).await;
        seen.push((p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned()));
    }
    seen.sort();
    assert_eq!(
        seen,
        [("sh", "short"), ("sn/py/data", "qos0"), ("sn/py/data", "qos1"), ("sn/py/data", "qos2")]
            .map(|(t, p)| (t.to_string(), p.to_string()))
    );
    peer.expect("ready").await;
    // An MQTT publisher on a topic the MQTT-SN client never registered: the gateway
    // REGISTERs sn/cmd/x with it, then delivers.
    let mut mqtt_pub = Client311::connect(broker.addr(), "mqtt-pub").await;
    mqtt_pub.publish("sn/cmd/x", qos(1), false, "hello").await;
    peer.expect("received sn/cmd/x 0 hello").await;
    peer.expect("topic_map True").await;
    peer.expect("disconnected").await;
    peer.finish().await;
    broker.stop().await;
}

#[tokio::test]
async fn mqttsn_thirdparty_qos_minus_one_to_predefined_topic() {
    let broker = TestBroker::start_with(CONFIG).await;
    let mut watcher = Client311::connect(broker.addr(), "watcher").await;
    watcher.subscribe("sn/predef", qos(0)).await;
    let mut peer = Peer::start("qosm1", broker.mqttsn_addr().port());
    peer.expect("sent").await;
    peer.finish().await;
    let p = watcher.expect_publish(WAIT).await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("sn/predef", &b"no connect"[..]));
    assert_eq!(broker.broker().session_count(), 1, "no session for the QoS -1 sender");
    broker.stop().await;
}

#[tokio::test]
async fn mqttsn_thirdparty_sleeping_client_wakes_to_its_messages() {
    let broker = TestBroker::start_with(CONFIG).await;
    let mut peer = Peer::start("sleep", broker.mqttsn_addr().port());
    peer.expect("asleep").await;
    let mut mqtt_pub = Client311::connect(broker.addr(), "mqtt-pub").await;
    for i in 0..3 {
        mqtt_pub.publish("sn/sleep", qos(1), false, format!("m{i}")).await;
    }
    peer.say("wake").await;
    for i in 0..3 {
        peer.expect(&format!("woke_with m{i}")).await;
    }
    peer.expect("pingresp 3").await;
    // Each message once: the second wake brings nothing.
    peer.expect("pingresp 0").await;
    peer.expect("done").await;
    peer.finish().await;
    broker.stop().await;
}
