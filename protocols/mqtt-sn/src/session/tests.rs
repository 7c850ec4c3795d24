//! Session tests on a virtual clock: `now` is `t0 + offset`, nothing sleeps; the core is a
//! real in-process broker, observed through an MQTT-side subscriber connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use roost_core::metrics::DropReason;
use roost_core::settings::BrokerSettings;
use roost_core::{Broker, ClientId, ConnectRequest, Connection, Delivery, Protocol, QoS, SubOptions};

use super::*;
use crate::codec::{
    Connect, Flags, Message, MsgId, Publish, ReturnCode, SnQos, TopicId, TopicIdType, TopicRef, WillTopic,
};
use crate::settings::MqttSnSettings;

struct Rig {
    ctx: Arc<Context>,
    t0: Instant,
    s: Session,
}

fn settings() -> MqttSnSettings {
    MqttSnSettings { predefined: vec![(7, "pre/seven".to_string())], max_sleep_buffer: 3, ..MqttSnSettings::default() }
}

fn rig_with(s: MqttSnSettings) -> Rig {
    let broker = Broker::new(BrokerSettings::default());
    let ctx = Context::new(broker, s);
    let t0 = Instant::now();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    Rig { s: Session::new(ctx.clone(), peer, t0), ctx, t0 }
}

fn rig() -> Rig {
    rig_with(settings())
}

fn connect_msg(id: &str, clean: bool, will: bool, keep_alive: u16) -> Message {
    Message::Connect(Connect {
        flags: Flags { clean_session: clean, will, ..Flags::default() },
        duration: keep_alive,
        client_id: id.into(),
    })
}

fn publish(qos: SnQos, tt: TopicIdType, topic_id: TopicId, msg_id: u16, data: &str) -> Message {
    Message::Publish(Publish {
        flags: Flags { qos, topic_id_type: tt, ..Flags::default() },
        topic_id,
        msg_id: MsgId(msg_id),
        data: Bytes::copy_from_slice(data.as_bytes()),
    })
}

impl Rig {
    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }
    async fn send(&mut self, secs: u64, m: Message) -> Result<Vec<Message>, End> {
        let mut out = Vec::new();
        let now = self.at(secs);
        self.s.handle_message(now, m, &mut out).await?;
        if let Some(reason) = self.s.pump(now, &mut out) {
            return Err(self.s.close(reason, &mut out).await);
        }
        Ok(out)
    }
    async fn ok(&mut self, secs: u64, m: Message) -> Vec<Message> {
        self.send(secs, m).await.unwrap()
    }
    fn pump(&mut self, secs: u64) -> Vec<Message> {
        let mut out = Vec::new();
        self.s.pump(self.at(secs), &mut out);
        out
    }
    async fn tick(&mut self, secs: u64) -> Result<Vec<Message>, End> {
        let mut out = Vec::new();
        self.s.handle_timeout(self.at(secs), &mut out).await?;
        Ok(out)
    }
    async fn mqtt(&self, id: &str, filter: &str) -> Connection {
        let c = self
            .ctx
            .broker
            .connect(ConnectRequest {
                client_id: ClientId::new(id),
                protocol: Protocol::Mqtt,
                peer: None,
                username: None,
                password: None,
                clean_start: true,
                keep_alive: 0,
                will: None,
                session_expiry: Some(Duration::ZERO),
                receive_maximum: 100,
            })
            .await
            .unwrap();
        c.subscribe(filter, SubOptions { qos: QoS::ExactlyOnce, ..Default::default() }).await.unwrap();
        c
    }
    fn publish_mqtt(&self, topic: &str, body: &str, qos: QoS) {
        self.ctx.broker.publish(roost_core::Message::new(topic, body.as_bytes().to_vec(), qos, false));
    }
}

fn got(c: &Connection) -> Vec<(String, String)> {
    let mut v = Vec::new();
    while let Some(Delivery::Publish { id, pending, .. }) = c.try_next_delivery() {
        if id != 0 {
            c.ack(id);
        }
        v.push((pending.message.topic.to_string(), String::from_utf8_lossy(&pending.message.payload).into_owned()));
    }
    v
}

fn payloads(out: &[Message]) -> Vec<String> {
    out.iter()
        .filter_map(|m| match m {
            Message::Publish(p) => Some(String::from_utf8_lossy(&p.data).into_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn connect_register_and_publish_every_qos() {
    let mut r = rig();
    let watcher = r.mqtt("w", "#").await;
    assert_eq!(r.ok(0, connect_msg("dev", true, false, 60)).await, vec![Message::ConnAck { rc: ReturnCode::Accepted }]);
    let out = r.ok(1, Message::Register { topic_id: TopicId(0), msg_id: MsgId(1), topic_name: "a/b".into() }).await;
    let Message::RegAck { topic_id, msg_id: MsgId(1), rc: ReturnCode::Accepted } = out[0] else { panic!("{out:?}") };
    assert!(r.ok(2, publish(SnQos::AtMostOnce, TopicIdType::Normal, topic_id, 0, "q0")).await.is_empty());
    assert_eq!(
        r.ok(2, publish(SnQos::AtLeastOnce, TopicIdType::Normal, topic_id, 2, "q1")).await,
        vec![Message::PubAck { topic_id, msg_id: MsgId(2), rc: ReturnCode::Accepted }]
    );
    assert_eq!(
        r.ok(2, publish(SnQos::ExactlyOnce, TopicIdType::Normal, topic_id, 3, "q2")).await,
        vec![Message::PubRec { msg_id: MsgId(3) }]
    );
    // A duplicate QoS 2 publish is acknowledged, not routed again.
    assert_eq!(
        r.ok(2, publish(SnQos::ExactlyOnce, TopicIdType::Normal, topic_id, 3, "q2")).await,
        vec![Message::PubRec { msg_id: MsgId(3) }]
    );
    assert_eq!(r.ok(2, Message::PubRel { msg_id: MsgId(3) }).await, vec![Message::PubComp { msg_id: MsgId(3) }]);
    assert!(r.ok(3, publish(SnQos::MinusOne, TopicIdType::Predefined, TopicId(7), 0, "qm1")).await.is_empty());
    assert!(
        r.ok(3, publish(SnQos::AtMostOnce, TopicIdType::Short, TopicId(u16::from_be_bytes(*b"xy")), 0, "short"))
            .await
            .is_empty()
    );
    let seen: Vec<_> = got(&watcher);
    assert_eq!(
        seen,
        [("a/b", "q0"), ("a/b", "q1"), ("a/b", "q2"), ("pre/seven", "qm1"), ("xy", "short")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[tokio::test]
async fn bad_topic_ids_are_refused_with_invalid_topic_id() {
    let mut r = rig();
    r.ok(0, connect_msg("dev", true, false, 60)).await;
    for (tt, id) in
        [(TopicIdType::Normal, TopicId(0)), (TopicIdType::Normal, TopicId(99)), (TopicIdType::Predefined, TopicId(8))]
    {
        assert_eq!(
            r.ok(1, publish(SnQos::AtLeastOnce, tt, id, 5, "x")).await,
            vec![Message::PubAck { topic_id: id, msg_id: MsgId(5), rc: ReturnCode::InvalidTopicId }]
        );
        // QoS 0 too is answered (§6.6: the gateway tells the client the id is unknown).
        assert_eq!(r.ok(1, publish(SnQos::AtMostOnce, tt, id, 0, "x")).await.len(), 1);
    }
    let out = r.ok(1, Message::Register { topic_id: TopicId(0), msg_id: MsgId(9), topic_name: "a/+".into() }).await;
    assert_eq!(out, vec![Message::RegAck { topic_id: TopicId(0), msg_id: MsgId(9), rc: ReturnCode::NotSupported }]);
}

#[tokio::test]
async fn messages_before_connect_are_dropped() {
    let mut r = rig();
    assert!(r.ok(0, publish(SnQos::AtLeastOnce, TopicIdType::Normal, TopicId(1), 1, "x")).await.is_empty());
    assert_eq!(r.ctx.counters.unexpected.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(r.ctx.broker.session_count(), 0);
}

#[tokio::test]
async fn wildcard_subscription_gets_a_gateway_register_before_delivery() {
    let mut r = rig();
    r.ok(0, connect_msg("dev", true, false, 60)).await;
    let sub = Message::Subscribe {
        flags: Flags { qos: SnQos::AtLeastOnce, ..Flags::default() },
        msg_id: MsgId(1),
        topic: TopicRef::Name("s/#".into()),
    };
    let out = r.ok(0, sub).await;
    assert!(
        matches!(out[0], Message::SubAck { topic_id: TopicId(0), msg_id: MsgId(1), rc: ReturnCode::Accepted, .. }),
        "{out:?}"
    );
    r.publish_mqtt("s/1", "one", QoS::AtLeastOnce);
    r.publish_mqtt("s/1", "two", QoS::AtLeastOnce);
    let out = r.pump(1);
    let [Message::Register { topic_id, msg_id, topic_name }] = &out[..] else { panic!("{out:?}") };
    assert_eq!(topic_name, "s/1");
    let (topic_id, msg_id) = (*topic_id, *msg_id);
    let out = r.ok(1, Message::RegAck { topic_id, msg_id, rc: ReturnCode::Accepted }).await;
    let [Message::Publish(p)] = &out[..] else { panic!("{out:?}") };
    assert_eq!(
        (p.topic_id, p.flags.topic_id_type, p.flags.qos, &p.data[..]),
        (topic_id, TopicIdType::Normal, SnQos::AtLeastOnce, &b"one"[..])
    );
    // One in flight at a time (max_inflight 1): "two" follows the PUBACK, with no REGISTER.
    let out = r.ok(2, Message::PubAck { topic_id, msg_id: p.msg_id, rc: ReturnCode::Accepted }).await;
    assert_eq!(payloads(&out), ["two"]);
}

#[tokio::test]
async fn predefined_and_short_subscriptions_and_retained() {
    let mut r = rig();
    r.ctx.broker.publish(roost_core::Message::new("pre/seven", &b"kept"[..], QoS::AtMostOnce, true));
    r.ok(0, connect_msg("dev", true, false, 60)).await;
    let out = r
        .ok(
            0,
            Message::Subscribe {
                flags: Flags { topic_id_type: TopicIdType::Predefined, ..Flags::default() },
                msg_id: MsgId(1),
                topic: TopicRef::Predefined(TopicId(7)),
            },
        )
        .await;
    assert!(matches!(out[0], Message::SubAck { topic_id: TopicId(7), rc: ReturnCode::Accepted, .. }));
    let Message::Publish(p) = &out[1] else { panic!("{out:?}") };
    assert_eq!((p.topic_id, p.flags.topic_id_type, p.flags.retain), (TopicId(7), TopicIdType::Predefined, true));
    let out = r
        .ok(
            0,
            Message::Subscribe {
                flags: Flags { topic_id_type: TopicIdType::Predefined, ..Flags::default() },
                msg_id: MsgId(2),
                topic: TopicRef::Predefined(TopicId(8)),
            },
        )
        .await;
    assert!(matches!(out[0], Message::SubAck { rc: ReturnCode::InvalidTopicId, .. }));
    r.ok(
        0,
        Message::Subscribe {
            flags: Flags { topic_id_type: TopicIdType::Short, ..Flags::default() },
            msg_id: MsgId(3),
            topic: TopicRef::Short(*b"zz"),
        },
    )
    .await;
    r.publish_mqtt("zz", "s", QoS::AtMostOnce);
    let out = r.pump(1);
    let [Message::Publish(p)] = &out[..] else { panic!("{out:?}") };
    assert_eq!((p.topic_id.0.to_be_bytes(), p.flags.topic_id_type), (*b"zz", TopicIdType::Short));
}

#[tokio::test]
async fn will_handshake_and_updates_and_keep_alive_loss() {
    let mut r = rig();
    let watcher = r.mqtt("w", "will/#").await;
    assert_eq!(r.ok(0, connect_msg("dev", true, true, 10)).await, vec![Message::WillTopicReq]);
    let wt = WillTopic { flags: Flags { qos: SnQos::AtLeastOnce, ..Flags::default() }, topic: "will/dev".into() };
    assert_eq!(r.ok(0, Message::WillTopic(Some(wt))).await, vec![Message::WillMsgReq]);
    assert_eq!(
        r.ok(0, Message::WillMsg(Bytes::from_static(b"bye"))).await,
        vec![Message::ConnAck { rc: ReturnCode::Accepted }]
    );
    let upd = WillTopic { flags: Flags::default(), topic: "will/new".into() };
    assert_eq!(
        r.ok(1, Message::WillTopicUpd(Some(upd))).await,
        vec![Message::WillTopicResp { rc: ReturnCode::Accepted }]
    );
    assert_eq!(
        r.ok(1, Message::WillMsgUpd(Bytes::from_static(b"gone"))).await,
        vec![Message::WillMsgResp { rc: ReturnCode::Accepted }]
    );
    // Keep alive 10 s: lost at 1.5x after the last message (t=1), not before.
    assert!(r.tick(15).await.is_ok());
    assert!(r.tick(16).await.is_err());
    assert_eq!(got(&watcher), vec![("will/new".to_string(), "gone".to_string())]);
}

#[tokio::test]
async fn normal_disconnect_does_not_fire_the_will() {
    let mut r = rig();
    let watcher = r.mqtt("w", "will/#").await;
    r.ok(0, connect_msg("dev", true, true, 10)).await;
    r.ok(0, Message::WillTopic(Some(WillTopic { flags: Flags::default(), topic: "will/dev".into() }))).await;
    r.ok(0, Message::WillMsg(Bytes::from_static(b"bye"))).await;
    assert!(r.send(1, Message::Disconnect { duration: None }).await.is_err());
    assert!(got(&watcher).is_empty());
}

async fn asleep(r: &mut Rig) {
    r.ok(0, connect_msg("dev", false, false, 30)).await;
    let sub = Message::Subscribe {
        flags: Flags { qos: SnQos::AtLeastOnce, ..Flags::default() },
        msg_id: MsgId(1),
        topic: TopicRef::Name("cmd/dev".into()),
    };
    let out = r.ok(0, sub).await;
    assert!(matches!(out[0], Message::SubAck { topic_id: TopicId(1), .. }), "{out:?}");
    assert_eq!(
        r.ok(1, Message::Disconnect { duration: Some(100) }).await,
        vec![Message::Disconnect { duration: None }]
    );
    assert_eq!(r.s.state(), State::Asleep);
}

fn wake() -> Message {
    Message::PingReq { client_id: Some("dev".into()) }
}

#[tokio::test]
async fn sleeper_gets_buffered_messages_in_order_once_then_pingresp() {
    let mut r = rig_with(MqttSnSettings { max_inflight: 1, ..settings() });
    asleep(&mut r).await;
    r.publish_mqtt("cmd/dev", "a", QoS::AtMostOnce);
    r.publish_mqtt("cmd/dev", "b", QoS::AtLeastOnce);
    assert!(r.pump(2).is_empty(), "nothing goes to a sleeper");
    // Keep-alive time passes while asleep: only the sleep duration counts.
    assert!(r.tick(120).await.unwrap().is_empty());
    let out = r.ok(130, wake()).await;
    assert_eq!(payloads(&out), ["a", "b"]);
    assert!(!out.contains(&Message::PingResp), "PINGRESP waits for the QoS 1 ack");
    let Message::Publish(p) = &out[1] else { panic!() };
    let out = r.ok(131, Message::PubAck { topic_id: p.topic_id, msg_id: p.msg_id, rc: ReturnCode::Accepted }).await;
    assert_eq!(out, vec![Message::PingResp]);
    assert_eq!(r.s.state(), State::Asleep);
    // Not again on the next wake.
    assert_eq!(r.ok(200, wake()).await, vec![Message::PingResp]);
    // Published while awake-then-asleep goes out on the following wake.
    r.publish_mqtt("cmd/dev", "c", QoS::AtMostOnce);
    let out = r.ok(250, wake()).await;
    assert_eq!(payloads(&out), ["c"]);
    assert_eq!(out.last(), Some(&Message::PingResp));
}

#[tokio::test]
async fn sleeper_buffer_is_bounded_and_drops_are_counted() {
    let mut r = rig();
    asleep(&mut r).await;
    for i in 0..5 {
        r.publish_mqtt("cmd/dev", &i.to_string(), QoS::AtMostOnce);
    }
    let snap = r.ctx.broker.metrics().snapshot();
    assert_eq!(snap.dropped(DropReason::QueueFull), 2);
    let out = r.ok(10, wake()).await;
    assert_eq!(payloads(&out), ["2", "3", "4"]);
    assert_eq!(out.last(), Some(&Message::PingResp));
}

#[tokio::test]
async fn sleeper_overstaying_is_lost_and_its_will_fires() {
    let mut r = rig();
    let watcher = r.mqtt("w", "will/#").await;
    r.ok(0, connect_msg("dev", false, true, 30)).await;
    r.ok(0, Message::WillTopic(Some(WillTopic { flags: Flags::default(), topic: "will/dev".into() }))).await;
    r.ok(0, Message::WillMsg(Bytes::from_static(b"lost"))).await;
    r.ok(1, Message::Disconnect { duration: Some(100) }).await;
    assert!(got(&watcher).is_empty(), "going to sleep is not a disconnect");
    // A plain PINGREQ while asleep also counts as the client being alive.
    assert_eq!(r.ok(140, Message::PingReq { client_id: None }).await, vec![Message::PingResp]);
    assert!(r.tick(289).await.is_ok());
    assert!(r.tick(290).await.is_err());
    assert_eq!(got(&watcher), vec![("will/dev".to_string(), "lost".to_string())]);
}

#[tokio::test]
async fn connect_while_asleep_is_active_again_and_gets_the_buffer() {
    let mut r = rig();
    asleep(&mut r).await;
    r.publish_mqtt("cmd/dev", "x", QoS::AtMostOnce);
    let out = r.ok(50, connect_msg("dev", false, false, 30)).await;
    assert_eq!(out[0], Message::ConnAck { rc: ReturnCode::Accepted });
    assert_eq!(payloads(&out[1..]), ["x"]);
    assert_eq!(r.s.state(), State::Active);
    // The registration of cmd/dev survived: no REGISTER before the PUBLISH.
    assert!(!out.iter().any(|m| matches!(m, Message::Register { .. })));
}

#[tokio::test]
async fn unanswered_publish_is_retransmitted_then_the_client_is_lost() {
    let mut r = rig_with(MqttSnSettings { retry_interval: Duration::from_secs(10), max_retries: 2, ..settings() });
    r.ok(0, connect_msg("dev", true, false, 0)).await;
    r.ok(
        0,
        Message::Subscribe {
            flags: Flags { qos: SnQos::AtLeastOnce, ..Flags::default() },
            msg_id: MsgId(1),
            topic: TopicRef::Name("ab".into()),
        },
    )
    .await;
    r.publish_mqtt("ab", "x", QoS::AtLeastOnce);
    let out = r.pump(0);
    let [Message::Publish(p)] = &out[..] else { panic!("{out:?}") };
    assert!(!p.flags.dup);
    assert_eq!(r.s.poll_timeout(), Some(r.at(10)));
    assert!(r.tick(9).await.unwrap().is_empty());
    let out = r.tick(10).await.unwrap();
    let [Message::Publish(p)] = &out[..] else { panic!("{out:?}") };
    assert!(p.flags.dup);
    assert_eq!(r.tick(20).await.unwrap().len(), 1);
    assert!(r.tick(30).await.is_err());
}

#[tokio::test]
async fn duplicate_qos1_publish_is_acked_not_routed_twice() {
    let mut r = rig();
    let watcher = r.mqtt("w", "#").await;
    r.ok(0, connect_msg("dev", true, false, 60)).await;
    let mut m = publish(SnQos::AtLeastOnce, TopicIdType::Short, TopicId(u16::from_be_bytes(*b"ab")), 4, "x");
    r.ok(0, m.clone()).await;
    if let Message::Publish(p) = &mut m {
        p.flags.dup = true;
    }
    assert_eq!(r.ok(0, m).await.len(), 1);
    assert_eq!(got(&watcher).len(), 1);
}

#[tokio::test]
async fn subs_resume_reregisters_subscription_names() {
    let mut r = rig_with(MqttSnSettings { subs_resume: true, ..settings() });
    asleep(&mut r).await;
    // The device lost its table and reconnects with the will flag (a full CONNECT).
    r.ok(10, connect_msg("dev", false, true, 30)).await;
    let out = r.ok(10, Message::WillTopic(None)).await;
    assert_eq!(out[0], Message::ConnAck { rc: ReturnCode::Accepted });
    assert!(matches!(&out[1], Message::Register { topic_name, .. } if topic_name == "cmd/dev"), "{out:?}");
}

#[tokio::test]
async fn outbound_qos2_flow_with_pubrel_retransmission() {
    let mut r = rig_with(MqttSnSettings { retry_interval: Duration::from_secs(5), ..settings() });
    r.ok(0, connect_msg("dev", true, false, 0)).await;
    r.ok(
        0,
        Message::Subscribe {
            flags: Flags { qos: SnQos::ExactlyOnce, ..Flags::default() },
            msg_id: MsgId(1),
            topic: TopicRef::Name("q2".into()),
        },
    )
    .await;
    r.publish_mqtt("q2", "x", QoS::ExactlyOnce);
    r.publish_mqtt("q2", "y", QoS::ExactlyOnce);
    let out = r.pump(0);
    let [Message::Publish(p)] = &out[..] else { panic!("{out:?}") };
    assert_eq!((p.flags.qos, p.flags.topic_id_type), (SnQos::ExactlyOnce, TopicIdType::Short));
    let id = p.msg_id;
    assert_eq!(r.ok(1, Message::PubRec { msg_id: id }).await, vec![Message::PubRel { msg_id: id }]);
    // PUBREL unanswered: resent after Tretry.
    assert_eq!(r.tick(6).await.unwrap(), vec![Message::PubRel { msg_id: id }]);
    let out = r.ok(7, Message::PubComp { msg_id: id }).await;
    assert_eq!(payloads(&out), ["y"], "the next message follows PUBCOMP");
}

#[tokio::test]
async fn waking_sleeper_is_registered_a_new_wildcard_topic_before_its_message() {
    let mut r = rig();
    r.ok(0, connect_msg("dev", false, false, 30)).await;
    r.ok(
        0,
        Message::Subscribe {
            flags: Flags { qos: SnQos::AtLeastOnce, ..Flags::default() },
            msg_id: MsgId(1),
            topic: TopicRef::Name("cmd/#".into()),
        },
    )
    .await;
    r.ok(1, Message::Disconnect { duration: Some(100) }).await;
    r.publish_mqtt("cmd/new/topic", "n", QoS::AtLeastOnce);
    let out = r.ok(50, wake()).await;
    let [Message::Register { topic_id, msg_id, topic_name }] = &out[..] else { panic!("{out:?}") };
    assert_eq!(topic_name, "cmd/new/topic");
    let out = r.ok(50, Message::RegAck { topic_id: *topic_id, msg_id: *msg_id, rc: ReturnCode::Accepted }).await;
    let [Message::Publish(p)] = &out[..] else { panic!("{out:?}") };
    let out = r.ok(51, Message::PubAck { topic_id: p.topic_id, msg_id: p.msg_id, rc: ReturnCode::Accepted }).await;
    assert_eq!(out, vec![Message::PingResp]);
}

#[tokio::test]
async fn unacked_message_goes_out_again_first_on_wake() {
    let mut r = rig();
    r.ok(0, connect_msg("dev", false, false, 30)).await;
    r.ok(
        0,
        Message::Subscribe {
            flags: Flags { qos: SnQos::AtLeastOnce, ..Flags::default() },
            msg_id: MsgId(1),
            topic: TopicRef::Name("cm".into()),
        },
    )
    .await;
    r.publish_mqtt("cm", "first", QoS::AtLeastOnce);
    let out = r.pump(0);
    assert_eq!(payloads(&out), ["first"]);
    // Asleep before acknowledging; no retransmission to a sleeper.
    r.ok(1, Message::Disconnect { duration: Some(100) }).await;
    r.publish_mqtt("cm", "second", QoS::AtLeastOnce);
    assert!(r.tick(60).await.unwrap().is_empty());
    let out = r.ok(70, wake()).await;
    let [Message::Publish(p)] = &out[..] else { panic!("{out:?}") };
    assert!(p.flags.dup && &p.data[..] == b"first");
    let out = r.ok(70, Message::PubAck { topic_id: p.topic_id, msg_id: p.msg_id, rc: ReturnCode::Accepted }).await;
    let [Message::Publish(p2)] = &out[..] else { panic!("{out:?}") };
    assert_eq!(&p2.data[..], b"second");
    let out = r.ok(71, Message::PubAck { topic_id: p2.topic_id, msg_id: p2.msg_id, rc: ReturnCode::Accepted }).await;
    assert_eq!(out, vec![Message::PingResp]);
}

#[tokio::test]
async fn awake_client_that_stops_answering_is_lost_after_nretry() {
    let mut r = rig_with(MqttSnSettings { retry_interval: Duration::from_secs(10), max_retries: 1, ..settings() });
    let watcher = r.mqtt("w", "will/#").await;
    r.ok(0, connect_msg("dev", false, true, 30)).await;
    r.ok(0, Message::WillTopic(Some(WillTopic { flags: Flags::default(), topic: "will/dev".into() }))).await;
    r.ok(0, Message::WillMsg(Bytes::from_static(b"gone"))).await;
    r.ok(
        0,
        Message::Subscribe {
            flags: Flags { qos: SnQos::AtLeastOnce, ..Flags::default() },
            msg_id: MsgId(1),
            topic: TopicRef::Name("cm".into()),
        },
    )
    .await;
    r.ok(1, Message::Disconnect { duration: Some(100) }).await;
    r.publish_mqtt("cm", "x", QoS::AtLeastOnce);
    assert_eq!(payloads(&r.ok(5, wake()).await), ["x"]);
    assert_eq!(r.s.state(), State::Awake);
    assert_eq!(r.tick(15).await.unwrap().len(), 1, "one retransmission");
    assert!(r.tick(25).await.is_err(), "then lost");
    assert_eq!(got(&watcher), vec![("will/dev".to_string(), "gone".to_string())]);
}

#[tokio::test]
async fn clean_connect_while_asleep_discards_the_buffer() {
    let mut r = rig();
    asleep(&mut r).await;
    r.publish_mqtt("cmd/dev", "old", QoS::AtLeastOnce);
    let out = r.ok(10, connect_msg("dev", true, false, 30)).await;
    assert_eq!(out, vec![Message::ConnAck { rc: ReturnCode::Accepted }]);
    r.publish_mqtt("cmd/dev", "new", QoS::AtLeastOnce);
    assert!(r.pump(11).is_empty(), "the clean session has no subscription");
}

#[tokio::test]
async fn will_topics_must_be_topic_names() {
    let mut r = rig();
    r.ok(0, connect_msg("dev", true, true, 30)).await;
    let bad = WillTopic { flags: Flags::default(), topic: "will/+".into() };
    let mut out = Vec::new();
    assert!(r.s.handle_message(r.at(0), Message::WillTopic(Some(bad.clone())), &mut out).await.is_err());
    assert_eq!(out, vec![Message::ConnAck { rc: ReturnCode::NotSupported }]);
    let mut r = rig();
    r.ok(0, connect_msg("dev", true, false, 30)).await;
    assert_eq!(
        r.ok(1, Message::WillTopicUpd(Some(bad))).await,
        vec![Message::WillTopicResp { rc: ReturnCode::NotSupported }]
    );
}
