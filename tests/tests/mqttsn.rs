//! MQTT-SN over real UDP with a byte-level client (`roost_mqttsn::codec`), for what a
//! well-behaved library will not send: malformed datagrams, forwarder encapsulation, and
//! sleeping clients pushed through every transition.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use roost_core::metrics::DropReason;
use roost_e2e::mqtt311::{Client311, qos};
use roost_e2e::{QUIET, TestBroker, WAIT};
use roost_mqttsn::codec::{
    self, Connect, Flags, Message, MsgId, Publish, ReturnCode, SnQos, TopicId, TopicIdType, TopicRef, WillTopic,
};
use tokio::net::UdpSocket;
use tokio::time::timeout;

struct Sn {
    sock: UdpSocket,
    gw: SocketAddr,
    /// Forwarder encapsulation: the wireless node id to wrap every message with.
    node: Option<Vec<u8>>,
}

impl Sn {
    async fn new(gw: SocketAddr) -> Sn {
        Sn { sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(), gw, node: None }
    }
    async fn raw(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.gw).await.unwrap();
    }
    async fn send(&self, m: &Message) {
        let b = codec::to_bytes(m).unwrap();
        match &self.node {
            Some(n) => self.raw(&codec::encode_encapsulated(0, n, &b).unwrap()).await,
            None => self.raw(&b).await,
        }
    }
    async fn recv_within(&self, wait: Duration) -> Option<Message> {
        let mut buf = vec![0u8; 70_000];
        let (n, _) = timeout(wait, self.sock.recv_from(&mut buf)).await.ok()?.unwrap();
        let b = Bytes::copy_from_slice(&buf[..n]);
        let inner = match codec::decode_encapsulated(&b).unwrap() {
            Some(e) => {
                assert_eq!(Some(e.node_id.to_vec()), self.node, "reply to the right node");
                e.inner
            }
            None => b,
        };
        Some(codec::decode(&inner).unwrap())
    }
    async fn recv(&self) -> Message {
        self.recv_within(WAIT).await.expect("a reply from the gateway")
    }
    async fn quiet(&self) {
        if let Some(m) = self.recv_within(QUIET).await {
            panic!("expected nothing, got {m:?}");
        }
    }
    async fn connect(&self, id: &str, clean: bool, keep_alive: u16) {
        self.send(&Message::Connect(Connect {
            flags: Flags { clean_session: clean, ..Flags::default() },
            duration: keep_alive,
            client_id: id.into(),
        }))
        .await;
        assert_eq!(self.recv().await, Message::ConnAck { rc: ReturnCode::Accepted });
    }
    async fn subscribe(&self, filter: &str, q: SnQos) -> TopicId {
        self.send(&Message::Subscribe {
            flags: Flags { qos: q, ..Flags::default() },
            msg_id: MsgId(1),
            topic: TopicRef::Name(filter.into()),
        })
        .await;
        match self.recv().await {
            Message::SubAck { topic_id, rc: ReturnCode::Accepted, .. } => topic_id,
            other => panic!("{other:?}"),
        }
    }
    /// Receives one PUBLISH (answering a gateway REGISTER first), acknowledging QoS 1.
    async fn take_publish(&self) -> Option<String> {
        loop {
            match self.recv_within(WAIT).await? {
                Message::Register { topic_id, msg_id, .. } => {
                    self.send(&Message::RegAck { topic_id, msg_id, rc: ReturnCode::Accepted }).await
                }
                Message::Publish(p) => {
                    if p.flags.qos == SnQos::AtLeastOnce {
                        self.send(&Message::PubAck {
                            topic_id: p.topic_id,
                            msg_id: p.msg_id,
                            rc: ReturnCode::Accepted,
                        })
                        .await;
                    }
                    return Some(String::from_utf8_lossy(&p.data).into_owned());
                }
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }
    /// Wakes a sleeper: PINGREQ with its id; every PUBLISH until PINGRESP.
    async fn wake(&self, id: &str) -> Vec<String> {
        self.send(&Message::PingReq { client_id: Some(id.into()) }).await;
        let mut got = Vec::new();
        loop {
            match self.recv().await {
                Message::PingResp => return got,
                Message::Register { topic_id, msg_id, .. } => {
                    self.send(&Message::RegAck { topic_id, msg_id, rc: ReturnCode::Accepted }).await
                }
                Message::Publish(p) => {
                    if p.flags.qos == SnQos::AtLeastOnce {
                        self.send(&Message::PubAck {
                            topic_id: p.topic_id,
                            msg_id: p.msg_id,
                            rc: ReturnCode::Accepted,
                        })
                        .await;
                    }
                    got.push(String::from_utf8_lossy(&p.data).into_owned());
                }
                other => panic!("unexpected while awake: {other:?}"),
            }
        }
    }
    async fn sleep(&self, secs: u16) {
        self.send(&Message::Disconnect { duration: Some(secs) }).await;
        assert_eq!(self.recv().await, Message::Disconnect { duration: None });
    }
}

fn publish(qos: SnQos, tt: TopicIdType, topic_id: u16, msg_id: u16, data: &'static [u8]) -> Message {
    Message::Publish(Publish {
        flags: Flags { qos, topic_id_type: tt, ..Flags::default() },
        topic_id: TopicId(topic_id),
        msg_id: MsgId(msg_id),
        data: Bytes::from_static(data),
    })
}

#[tokio::test]
async fn mqttsn_malformed_datagrams_are_dropped_or_refused_and_others_unaffected() {
    let broker = TestBroker::start().await;
    let gw = broker.mqttsn_addr();
    let good = Sn::new(gw).await;
    good.connect("good", true, 60).await;
    good.subscribe("ab", SnQos::AtMostOnce).await;
    let bad = Sn::new(gw).await;
    bad.connect("bad", true, 60).await;
    let garbage: [&[u8]; 8] = [
        &[],                       // empty
        &[0x05, 0x17],             // declared length beyond the datagram
        &[0x02, 0x17, 0x00, 0x00], // datagram beyond the declared length
        &[0x02, 0x03],             // unknown type
        &[0x02, 0xFF],             // unknown type
        &[0x04, 0x0C, 0x00, 0x01], // truncated PUBLISH
        &[0x01, 0xFF, 0xFF, 0x0C], // 3-byte length of 65535 on a 4-byte datagram
        &[0x03, 0x0C, 0x03],       // reserved topic id type
    ];
    for g in garbage {
        bad.raw(g).await;
    }
    bad.quiet().await;
    assert_eq!(broker.mqttsn_counters().malformed.load(Relaxed), 8);
    // Topic id 0 and unknown ids: PUBACK "invalid topic id".
    bad.send(&publish(SnQos::AtLeastOnce, TopicIdType::Normal, 0, 7, b"x")).await;
    assert_eq!(
        bad.recv().await,
        Message::PubAck { topic_id: TopicId(0), msg_id: MsgId(7), rc: ReturnCode::InvalidTopicId }
    );
    bad.send(&publish(SnQos::AtMostOnce, TopicIdType::Predefined, 42, 0, b"x")).await;
    assert_eq!(
        bad.recv().await,
        Message::PubAck { topic_id: TopicId(42), msg_id: MsgId(0), rc: ReturnCode::InvalidTopicId }
    );
    // The bad peer's session still works, and the good one never noticed.
    bad.send(&publish(SnQos::AtLeastOnce, TopicIdType::Short, u16::from_be_bytes(*b"ab"), 8, b"fine")).await;
    assert_eq!(
        bad.recv().await,
        Message::PubAck { topic_id: TopicId(u16::from_be_bytes(*b"ab")), msg_id: MsgId(8), rc: ReturnCode::Accepted }
    );
    assert_eq!(good.take_publish().await.as_deref(), Some("fine"));
    // A stranger's non-CONNECT message is dropped without a reply and creates nothing.
    let stranger = Sn::new(gw).await;
    stranger.send(&Message::Register { topic_id: TopicId(0), msg_id: MsgId(1), topic_name: "a".into() }).await;
    stranger.quiet().await;
    assert_eq!(broker.broker().session_count(), 2);
    broker.stop().await;
}

#[tokio::test]
async fn mqttsn_sleeping_client_receives_exactly_what_was_published_while_asleep() {
    let broker = TestBroker::start_with("[mqttsn]\nmax_sleep_buffer = 5\n").await;
    let gw = broker.mqttsn_addr();
    let sleeper = Sn::new(gw).await;
    sleeper.connect("sleeper", false, 30).await;
    sleeper.subscribe("cmd/sleeper", SnQos::AtLeastOnce).await;
    let mut mqtt = Client311::connect(broker.addr(), "commander").await;
    // Delivered while awake: not repeated later.
    mqtt.publish("cmd/sleeper", qos(1), false, "before").await;
    assert_eq!(sleeper.take_publish().await.as_deref(), Some("before"));
    sleeper.sleep(60).await;
    for i in 0..3 {
        mqtt.publish("cmd/sleeper", qos((i % 2) as u8), false, format!("s{i}")).await;
    }
    sleeper.quiet().await;
    assert_eq!(sleeper.wake("sleeper").await, ["s0", "s1", "s2"]);
    // Each message once: the next wake has nothing.
    assert!(sleeper.wake("sleeper").await.is_empty());
    // Beyond the limit (5): the oldest are dropped and counted.
    let before = broker.queue_drops();
    for i in 0..8 {
        mqtt.publish("cmd/sleeper", qos(1), false, format!("b{i}")).await;
    }
    assert_eq!(broker.queue_drops() - before, 3);
    assert_eq!(sleeper.wake("sleeper").await, ["b3", "b4", "b5", "b6", "b7"]);
    // A PINGREQ without the id while asleep is only a ping.
    mqtt.publish("cmd/sleeper", qos(1), false, "later").await;
    sleeper.send(&Message::PingReq { client_id: None }).await;
    assert_eq!(sleeper.recv().await, Message::PingResp);
    // CONNECT while asleep: active again, and the buffer follows the CONNACK.
    sleeper.connect("sleeper", false, 30).await;
    assert_eq!(sleeper.take_publish().await.as_deref(), Some("later"));
    mqtt.publish("cmd/sleeper", qos(1), false, "live").await;
    assert_eq!(sleeper.take_publish().await.as_deref(), Some("live"));
    broker.stop().await;
}

#[tokio::test]
async fn mqttsn_sleeper_that_overstays_is_lost_and_its_will_fires() {
    let broker = TestBroker::start().await;
    let mut watcher = Client311::connect(broker.addr(), "watcher").await;
    watcher.subscribe("will/#", qos(0)).await;
    let sn = Sn::new(broker.mqttsn_addr()).await;
    sn.send(&Message::Connect(Connect {
        flags: Flags { will: true, ..Flags::default() },
        duration: 30,
        client_id: "nap".into(),
    }))
    .await;
    assert_eq!(sn.recv().await, Message::WillTopicReq);
    sn.send(&Message::WillTopic(Some(WillTopic { flags: Flags::default(), topic: "will/nap".into() }))).await;
    assert_eq!(sn.recv().await, Message::WillMsgReq);
    sn.send(&Message::WillMsg(Bytes::from_static(b"overslept"))).await;
    assert_eq!(sn.recv().await, Message::ConnAck { rc: ReturnCode::Accepted });
    sn.sleep(1).await;
    watcher.assert_no_publish(Duration::from_millis(1000)).await;
    let p = watcher.expect_publish(WAIT).await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("will/nap", &b"overslept"[..]));
    // The lost client is gone: a wake now is not answered.
    sn.send(&Message::PingReq { client_id: Some("nap".into()) }).await;
    sn.quiet().await;
    broker.stop().await;
}

#[tokio::test]
async fn mqttsn_searchgw_and_forwarder_encapsulation() {
    let broker = TestBroker::start_with("[mqttsn]\ngateway_id = 42\n").await;
    let gw = broker.mqttsn_addr();
    let probe = Sn::new(gw).await;
    probe.send(&Message::SearchGw { radius: 1 }).await;
    assert_eq!(probe.recv().await, Message::GwInfo { gw_id: 42, gw_addr: Bytes::new() });
    // Two nodes behind one forwarder socket are two clients.
    let mut a = Sn::new(gw).await;
    a.node = Some(b"node-a".to_vec());
    a.connect("node-a", true, 60).await;
    a.subscribe("fw/#", SnQos::AtMostOnce).await;
    let forwarder = a.sock;
    let mut b = Sn { sock: forwarder, gw, node: Some(b"node-b".to_vec()) };
    b.connect("node-b", true, 60).await;
    b.send(&publish(SnQos::AtLeastOnce, TopicIdType::Short, u16::from_be_bytes(*b"zz"), 3, b"x")).await;
    assert!(matches!(b.recv().await, Message::PubAck { rc: ReturnCode::Accepted, .. }));
    let mut mqtt = Client311::connect(broker.addr(), "m").await;
    mqtt.publish("fw/1", qos(0), false, "to-a").await;
    b.node = Some(b"node-a".to_vec());
    assert_eq!(b.take_publish().await.as_deref(), Some("to-a"));
    assert_eq!(broker.broker().metrics().snapshot().dropped(DropReason::QueueFull), 0);
    broker.stop().await;
}
