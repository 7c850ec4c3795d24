//! Session layer: the MQTT protocol state of one connection after CONNECT (MQTT 3.1.1 and
//! 5.0 §3-§4): packet handling, QoS flows, topic aliases in both directions, flow control,
//! maximum packet size, keep alive. It talks to the core through its [`Connection`] (in
//! process) and queues packets to send in an outbox; it never touches a socket, and time is
//! passed in, so tests drive it with a virtual clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use roost_core::metrics::DropReason;
use roost_core::{Connection, Delivery, DisconnectReason, Message, PublishError, SubOptions, SubscribeError};

use crate::codec::{
    self, Ack, AckProperties, Disconnect, DisconnectProperties, Packet, ProtocolVersion, Publish, PublishProperties,
    SubAck, UnsubAck, reason,
};

/// Why the session wants the connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// What the core should do about the will and session.
    pub reason: DisconnectReason,
    /// v5 DISCONNECT reason code to send first, if any.
    pub send: Option<u8>,
    /// For the log (and the v5 reason string).
    pub why: String,
}

impl Close {
    fn protocol(code: u8, why: impl Into<String>) -> Close {
        Close { reason: DisconnectReason::Abnormal, send: Some(code), why: why.into() }
    }
}

/// Limits the session enforces, from `[mqtt]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub topic_alias_maximum: u16,
    pub retain_available: bool,
    /// An ACL-denied PUBLISH closes the connection (`[acl] deny_action = "disconnect"`).
    pub deny_disconnect: bool,
}

pub struct MqttSession {
    pub version: ProtocolVersion,
    /// Seconds (0: none). Every idle connection carries the session, so its fields are as
    /// narrow as the protocol's: a `u16` here rather than a 16-byte `Duration`.
    keep_alive: u16,
    last_heard: Instant,
    /// Client's Maximum Packet Size (v5, at most 2^28 - 1, so a `u32`); we never send a
    /// packet larger than this.
    client_max_packet: u32,
    /// Aliases the client set for its publishes to us.
    /// Allocated on first use, so an idle connection that never uses aliases holds no map.
    #[allow(clippy::box_collection)] // 8 bytes while unused, where a HashMap is 48
    alias_in: Option<Box<HashMap<u16, String>>>,
    /// Aliases we set for our publishes to the client, bounded by its Topic Alias Maximum.
    #[allow(clippy::box_collection)] // likewise
    alias_out: Option<Box<HashMap<std::sync::Arc<str>, u16>>>,
    client_alias_max: u16,
    /// Session expiry at CONNECT was 0: DISCONNECT may not raise it (§3.14.2.2.2).
    expiry_was_zero: bool,
    limits: Limits,
}

impl MqttSession {
    pub fn new(
        version: ProtocolVersion,
        keep_alive_secs: u16,
        connect: &codec::Connect,
        limits: Limits,
        now: Instant,
    ) -> Self {
        MqttSession {
            version,
            keep_alive: keep_alive_secs,
            last_heard: now,
            client_max_packet: connect.properties.maximum_packet_size.unwrap_or(u32::MAX),
            alias_in: None,
            alias_out: None,
            client_alias_max: if version.is_v5() { connect.properties.topic_alias_maximum.unwrap_or(0) } else { 0 },
            expiry_was_zero: connect.properties.session_expiry_interval.unwrap_or(0) == 0,
            limits,
        }
    }

    /// When the connection must be closed if nothing arrives (1.5 x keep alive, §3.1.2.10).
    pub fn keep_alive_deadline(&self) -> Option<Instant> {
        (self.keep_alive != 0).then(|| self.last_heard + Duration::from_secs(u64::from(self.keep_alive)) * 3 / 2)
    }

    /// Called at the deadline: the close to perform if it really passed.
    pub fn handle_timeout(&self, now: Instant) -> Option<Close> {
        let deadline = self.keep_alive_deadline()?;
        (now >= deadline).then(|| Close {
            reason: DisconnectReason::Abnormal,
            send: Some(reason::KEEP_ALIVE_TIMEOUT),
            why: "keep alive timeout".into(),
        })
    }

    /// Handles one packet from the client; replies go to `out`.
    pub async fn handle_packet(
        &mut self,
        now: Instant,
        packet: Packet,
        conn: &Connection,
        out: &mut Vec<Packet>,
    ) -> Result<(), Close> {
        self.last_heard = now;
        match packet {
            Packet::Publish(p) => self.handle_publish(p, conn, out).await,
            Packet::PubAck(a) => {
                conn.ack(a.packet_id);
                Ok(())
            }
            Packet::PubRec(a) => {
                if a.reason >= 0x80 {
                    // The client refused the message: the flow ends here (§4.3.3).
                    conn.ack(a.packet_id);
                } else {
                    let known = conn.received_settled(a.packet_id).await;
                    out.push(Packet::PubRel(
                        self.ack(a.packet_id, if known { 0 } else { reason::PACKET_IDENTIFIER_NOT_FOUND }),
                    ));
                }
                Ok(())
            }
            Packet::PubRel(a) => {
                let known = conn.release(a.packet_id);
                // The release must be durable before PUBCOMP lets the client reuse the id.
                if let Err(e) = conn.sync().await {
                    return Err(Close::protocol(reason::UNSPECIFIED_ERROR, e.to_string()));
                }
                out.push(Packet::PubComp(
                    self.ack(a.packet_id, if known { 0 } else { reason::PACKET_IDENTIFIER_NOT_FOUND }),
                ));
                Ok(())
            }
            Packet::PubComp(a) => {
                conn.ack(a.packet_id);
                Ok(())
            }
            Packet::Subscribe(s) => self.handle_subscribe(s, conn, out).await,
            Packet::Unsubscribe(u) => {
                let mut reasons = Vec::with_capacity(u.filters.len());
                for f in &u.filters {
                    reasons.push(match conn.unsubscribe(f).await {
                        Ok(true) => reason::SUCCESS,
                        Ok(false) => reason::NO_SUBSCRIPTION_EXISTED,
                        Err(SubscribeError::InvalidFilter(_)) => reason::TOPIC_FILTER_INVALID,
                        Err(_) => reason::UNSPECIFIED_ERROR,
                    });
                }
                out.push(Packet::UnsubAck(UnsubAck {
                    packet_id: u.packet_id,
                    properties: AckProperties::default(),
                    reasons,
                }));
                Ok(())
            }
            Packet::PingReq => {
                out.push(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => Err(self.handle_disconnect(d, conn)),
            Packet::Connect(_) => Err(Close::protocol(reason::PROTOCOL_ERROR, "second CONNECT")),
            Packet::Auth(_) => Err(Close::protocol(reason::PROTOCOL_ERROR, "AUTH without an authentication method")),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(Close::protocol(reason::PROTOCOL_ERROR, "server-to-client packet sent by the client"))
            }
        }
    }

    fn ack(&self, packet_id: u16, code: u8) -> Ack {
        Ack { packet_id, reason: if self.version.is_v5() { code } else { 0 }, properties: AckProperties::default() }
    }

    fn handle_disconnect(&mut self, d: Disconnect, conn: &Connection) -> Close {
        if let Some(secs) = d.properties.session_expiry_interval {
            if self.expiry_was_zero && secs != 0 {
                return Close::protocol(reason::PROTOCOL_ERROR, "DISCONNECT raised a session expiry of 0");
            }
            conn.set_session_expiry(match secs {
                u32::MAX => None,
                s => Some(Duration::from_secs(u64::from(s))),
            });
        }
        let reason = if d.reason == reason::DISCONNECT_WITH_WILL {
            DisconnectReason::NormalWithWill
        } else if d.reason == reason::SUCCESS {
            DisconnectReason::Normal
        } else {
            DisconnectReason::Abnormal
        };
        Close { reason, send: None, why: format!("client sent DISCONNECT 0x{:02X}", d.reason) }
    }

    async fn handle_publish(&mut self, p: Publish, conn: &Connection, out: &mut Vec<Packet>) -> Result<(), Close> {
        if !p.properties.subscription_identifiers.is_empty() {
            return Err(Close::protocol(
                reason::PROTOCOL_ERROR,
                "PUBLISH from a client carries a Subscription Identifier",
            ));
        }
        let topic = self.resolve_alias_in(&p)?;
        if p.properties.payload_format_indicator == Some(1) && std::str::from_utf8(&p.payload).is_err() {
            // §3.3.2.3.2: the receiver may refuse a payload that is not the UTF-8 it claims.
            return match p.qos {
                codec::QoS::AtMostOnce => {
                    Err(Close::protocol(reason::PAYLOAD_FORMAT_INVALID, "PUBLISH: payload is not UTF-8"))
                }
                codec::QoS::AtLeastOnce => {
                    out.push(Packet::PubAck(self.ack(p.packet_id, reason::PAYLOAD_FORMAT_INVALID)));
                    Ok(())
                }
                codec::QoS::ExactlyOnce => {
                    out.push(Packet::PubRec(self.ack(p.packet_id, reason::PAYLOAD_FORMAT_INVALID)));
                    Ok(())
                }
            };
        }
        if p.retain && !self.limits.retain_available {
            return Err(Close::protocol(reason::RETAIN_NOT_SUPPORTED, "retain is not available"));
        }
        let mut msg = Message::new(topic, p.payload, p.qos, p.retain);
        crate::properties::apply(&mut msg, p.properties);
        match p.qos {
            codec::QoS::AtMostOnce => match conn.publish(msg).await {
                Err(PublishError::NotAuthorized) if self.limits.deny_disconnect => {
                    Err(Close::protocol(reason::NOT_AUTHORIZED, "PUBLISH denied by ACL"))
                }
                Ok(_) | Err(PublishError::NotAuthorized) => Ok(()),
                Err(e) => Err(self.publish_error_close(e)),
            },
            codec::QoS::AtLeastOnce => {
                let code = self.publish_code(conn.publish(msg).await)?;
                out.push(Packet::PubAck(self.ack(p.packet_id, code)));
                Ok(())
            }
            codec::QoS::ExactlyOnce => {
                match conn.begin_exactly_once(p.packet_id) {
                    Ok(true) => {
                        let result = conn.publish(msg).await;
                        if result.is_err() {
                            conn.abort_exactly_once(p.packet_id);
                        }
                        let code = self.publish_code(result)?;
                        out.push(Packet::PubRec(self.ack(p.packet_id, code)));
                    }
                    // A resent PUBLISH whose first copy we already routed: acknowledge only.
                    Ok(false) => out.push(Packet::PubRec(self.ack(p.packet_id, 0))),
                    Err(_) => {
                        return Err(Close::protocol(
                            reason::RECEIVE_MAXIMUM_EXCEEDED,
                            "too many QoS 2 messages awaiting PUBREL",
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    fn publish_code(&self, r: Result<roost_core::Published, PublishError>) -> Result<u8, Close> {
        match r {
            Ok(p) if p.matched == 0 => Ok(reason::NO_MATCHING_SUBSCRIBERS),
            Ok(_) => Ok(reason::SUCCESS),
            Err(PublishError::NotAuthorized) if !self.limits.deny_disconnect => Ok(reason::NOT_AUTHORIZED),
            Err(e) => Err(self.publish_error_close(e)),
        }
    }

    fn publish_error_close(&self, e: PublishError) -> Close {
        let code = match e {
            PublishError::InvalidTopic(_) => reason::TOPIC_NAME_INVALID,
            PublishError::QuotaExceeded(_) => reason::RECEIVE_MAXIMUM_EXCEEDED,
            PublishError::NotAuthorized => reason::NOT_AUTHORIZED,
            // Not durable, so not acknowledged: the client resends after reconnecting.
            PublishError::Store(_) => reason::UNSPECIFIED_ERROR,
        };
        Close::protocol(code, format!("PUBLISH: {e}"))
    }

    fn resolve_alias_in(&mut self, p: &Publish) -> Result<String, Close> {
        let Some(alias) = p.properties.topic_alias else {
            if p.topic.is_empty() {
                return Err(Close::protocol(reason::PROTOCOL_ERROR, "PUBLISH: empty topic without a topic alias"));
            }
            return Ok(p.topic.clone());
        };
        if alias == 0 || alias > self.limits.topic_alias_maximum {
            return Err(Close::protocol(
                reason::TOPIC_ALIAS_INVALID,
                format!("PUBLISH: topic alias {alias} is outside 1..={}", self.limits.topic_alias_maximum),
            ));
        }
        if p.topic.is_empty() {
            self.alias_in.as_ref().and_then(|m| m.get(&alias)).cloned().ok_or_else(|| {
                Close::protocol(reason::PROTOCOL_ERROR, format!("PUBLISH: topic alias {alias} was never set"))
            })
        } else {
            self.alias_in.get_or_insert_default().insert(alias, p.topic.clone());
            Ok(p.topic.clone())
        }
    }

    async fn handle_subscribe(
        &mut self,
        s: codec::Subscribe,
        conn: &Connection,
        out: &mut Vec<Packet>,
    ) -> Result<(), Close> {
        let mut reasons = Vec::with_capacity(s.filters.len());
        for f in &s.filters {
            let o = f.options;
            let options = SubOptions {
                qos: o.qos,
                no_local: o.no_local,
                retain_as_published: o.retain_as_published,
                retain_handling: o.retain_handling.as_u8(),
                subscription_id: s.subscription_identifier,
            };
            reasons.push(match conn.subscribe(&f.filter, options).await {
                Ok(_) => o.qos as u8,
                Err(SubscribeError::InvalidFilter(_)) => reason::TOPIC_FILTER_INVALID,
                Err(SubscribeError::NotAuthorized) => reason::NOT_AUTHORIZED,
                Err(SubscribeError::QuotaExceeded(_)) => reason::QUOTA_EXCEEDED,
                Err(SubscribeError::NoLocalOnShared) => {
                    return Err(Close::protocol(
                        reason::PROTOCOL_ERROR,
                        "SUBSCRIBE: No Local on a shared subscription",
                    ));
                }
            });
        }
        out.push(Packet::SubAck(SubAck { packet_id: s.packet_id, properties: AckProperties::default(), reasons }));
        Ok(())
    }

    /// Turns a core delivery into the packet to send. `Ok(None)`: nothing to send (the
    /// message was dropped, e.g. too large for the client).
    pub fn handle_delivery(&mut self, now: Instant, d: Delivery, conn: &Connection) -> Result<Option<Packet>, Close> {
        match d {
            Delivery::Release { id } => Ok(Some(Packet::PubRel(self.ack(id, 0)))),
            Delivery::Close(r) => {
                let code = match r {
                    DisconnectReason::TakenOver => reason::SESSION_TAKEN_OVER,
                    DisconnectReason::Kicked => reason::ADMINISTRATIVE_ACTION,
                    DisconnectReason::Shutdown => reason::SERVER_SHUTTING_DOWN,
                    _ => reason::UNSPECIFIED_ERROR,
                };
                Err(Close { reason: r, send: Some(code), why: format!("closed by the broker: {r:?}") })
            }
            Delivery::Publish { id, dup, pending } => {
                let m = &pending.message;
                let v5 = self.version.is_v5();
                let properties = match v5 {
                    true => crate::properties::of(m, now, pending.subscription_ids.clone()),
                    false => PublishProperties::default(),
                };
                let publish = Publish {
                    dup,
                    qos: pending.qos,
                    retain: pending.retain,
                    topic: m.topic.to_string(),
                    packet_id: id,
                    properties,
                    payload: m.payload.clone(),
                };
                let mut packet = Packet::Publish(publish);
                if codec::encoded_len(&packet, self.version) > self.client_max_packet as usize {
                    conn.drop_delivery(id, DropReason::TooLarge);
                    return Ok(None);
                }
                if let (true, Packet::Publish(publish)) = (self.client_alias_max > 0, &mut packet) {
                    let aliases = self.alias_out.get_or_insert_default();
                    match aliases.get(&m.topic) {
                        Some(&alias) => {
                            publish.topic = String::new();
                            publish.properties.topic_alias = Some(alias);
                        }
                        None if aliases.len() < usize::from(self.client_alias_max) => {
                            let alias = aliases.len() as u16 + 1;
                            aliases.insert(m.topic.clone(), alias);
                            publish.properties.topic_alias = Some(alias);
                        }
                        None => {}
                    }
                }
                Ok(Some(packet))
            }
        }
    }

    /// The DISCONNECT to send for `close`, if the version has one.
    pub fn disconnect_packet(&self, close: &Close) -> Option<Packet> {
        let code = close.send?;
        self.version.is_v5().then(|| {
            Packet::Disconnect(Disconnect {
                reason: code,
                properties: DisconnectProperties { reason_string: Some(close.why.clone()), ..Default::default() },
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn payload_format_and_subscription_id_checks() {
        let (_b, conn, mut s, t0) = setup(&v5(0)).await;
        let mut out = Vec::new();
        let mut p = Publish {
            qos: codec::QoS::AtLeastOnce,
            topic: "t".into(),
            packet_id: 3,
            payload: vec![0xFF].into(),
            ..Default::default()
        };
        p.properties.payload_format_indicator = Some(1);
        s.handle_packet(t0, Packet::Publish(p.clone()), &conn, &mut out).await.unwrap();
        assert!(matches!(&out[..], [Packet::PubAck(a)] if a.reason == reason::PAYLOAD_FORMAT_INVALID));
        p.properties.payload_format_indicator = None;
        p.properties.subscription_identifiers = vec![1];
        let err = s.handle_packet(t0, Packet::Publish(p), &conn, &mut out).await.unwrap_err();
        assert_eq!(err.send, Some(reason::PROTOCOL_ERROR));
    }
    use roost_core::settings::BrokerSettings;
    use roost_core::{Broker, ClientId, ConnectRequest, Protocol};

    async fn setup(connect: &codec::Connect) -> (Broker, Connection, MqttSession, Instant) {
        let broker = Broker::new(BrokerSettings::default());
        let conn = broker
            .connect(ConnectRequest {
                client_id: ClientId::new("c"),
                protocol: Protocol::Mqtt,
                peer: None,
                username: None,
                password: None,
                clean_start: true,
                keep_alive: connect.keep_alive,
                will: None,
                session_expiry: Some(Duration::ZERO),
                receive_maximum: 10,
            })
            .await
            .unwrap();
        let now = Instant::now();
        let limits = Limits { topic_alias_maximum: 4, retain_available: true, deny_disconnect: false };
        let session = MqttSession::new(connect.protocol, connect.keep_alive, connect, limits, now);
        (broker, conn, session, now)
    }

    fn v5(keep_alive: u16) -> codec::Connect {
        codec::Connect { protocol: ProtocolVersion::V5, keep_alive, client_id: "c".into(), ..Default::default() }
    }

    fn publish(topic: &str, alias: Option<u16>, qos: codec::QoS, id: u16) -> Packet {
        Packet::Publish(Publish {
            qos,
            topic: topic.into(),
            packet_id: id,
            properties: PublishProperties { topic_alias: alias, ..Default::default() },
            payload: "x".into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn keep_alive_is_one_and_a_half_times() {
        let (_b, conn, mut s, t0) = setup(&v5(10)).await;
        assert_eq!(s.keep_alive_deadline(), Some(t0 + Duration::from_secs(15)));
        assert!(s.handle_timeout(t0 + Duration::from_secs(14)).is_none());
        let mut out = Vec::new();
        s.handle_packet(t0 + Duration::from_secs(14), Packet::PingReq, &conn, &mut out).await.unwrap();
        assert_eq!(out, [Packet::PingResp]);
        assert!(s.handle_timeout(t0 + Duration::from_secs(20)).is_none(), "PINGREQ moved the deadline");
        let close = s.handle_timeout(t0 + Duration::from_secs(29)).unwrap();
        assert_eq!(close.send, Some(reason::KEEP_ALIVE_TIMEOUT));
    }

    #[tokio::test]
    async fn incoming_topic_alias() {
        let (_b, conn, mut s, t0) = setup(&v5(0)).await;
        conn.subscribe("a/b", SubOptions::default()).await.unwrap();
        let mut out = Vec::new();
        s.handle_packet(t0, publish("a/b", Some(1), codec::QoS::AtMostOnce, 0), &conn, &mut out).await.unwrap();
        s.handle_packet(t0, publish("", Some(1), codec::QoS::AtMostOnce, 0), &conn, &mut out).await.unwrap();
        let mut topics = Vec::new();
        while let Some(Delivery::Publish { pending, .. }) = conn.try_next_delivery() {
            topics.push(pending.message.topic.to_string());
        }
        assert_eq!(topics, ["a/b", "a/b"]);
        let unknown = s.handle_packet(t0, publish("", Some(2), codec::QoS::AtMostOnce, 0), &conn, &mut out).await;
        assert_eq!(unknown.unwrap_err().send, Some(reason::PROTOCOL_ERROR));
        let too_big = s.handle_packet(t0, publish("a", Some(5), codec::QoS::AtMostOnce, 0), &conn, &mut out).await;
        assert_eq!(too_big.unwrap_err().send, Some(reason::TOPIC_ALIAS_INVALID));
    }

    #[tokio::test]
    async fn qos2_duplicate_is_acknowledged_not_routed_twice() {
        let (_b, conn, mut s, t0) = setup(&v5(0)).await;
        conn.subscribe("t", SubOptions { qos: roost_core::QoS::AtMostOnce, ..Default::default() }).await.unwrap();
        let mut out = Vec::new();
        for _ in 0..2 {
            s.handle_packet(t0, publish("t", None, codec::QoS::ExactlyOnce, 7), &conn, &mut out).await.unwrap();
        }
        assert!(matches!(&out[..], [Packet::PubRec(a), Packet::PubRec(b)] if a.packet_id == 7 && b.packet_id == 7));
        assert!(conn.try_next_delivery().is_some());
        assert!(conn.try_next_delivery().is_none(), "routed once");
        out.clear();
        s.handle_packet(t0, Packet::PubRel(Ack { packet_id: 7, ..Default::default() }), &conn, &mut out).await.unwrap();
        s.handle_packet(t0, Packet::PubRel(Ack { packet_id: 7, ..Default::default() }), &conn, &mut out).await.unwrap();
        let codes: Vec<u8> = out.iter().map(|p| if let Packet::PubComp(a) = p { a.reason } else { 0xFF }).collect();
        assert_eq!(codes, [0, reason::PACKET_IDENTIFIER_NOT_FOUND]);
    }

    #[tokio::test]
    async fn outgoing_alias_and_client_max_packet_size() {
        let mut c = v5(0);
        c.properties.topic_alias_maximum = Some(1);
        c.properties.maximum_packet_size = Some(40);
        let (b, conn, mut s, t0) = setup(&c).await;
        conn.subscribe("#", SubOptions::default()).await.unwrap();
        b.publish(Message::new("long/topic", vec![0u8; 100], roost_core::QoS::AtMostOnce, false));
        for t in ["t/1", "t/1", "t/2"] {
            b.publish(Message::new(t, "x", roost_core::QoS::AtMostOnce, false));
        }
        let mut sent = Vec::new();
        while let Some(d) = conn.try_next_delivery() {
            if let Some(Packet::Publish(p)) = s.handle_delivery(t0, d, &conn).unwrap() {
                sent.push((p.topic, p.properties.topic_alias));
            }
        }
        assert_eq!(
            sent,
            [("t/1".to_string(), Some(1)), (String::new(), Some(1)), ("t/2".to_string(), None)],
            "too large dropped; alias set, reused, and none left for a second topic"
        );
        assert_eq!(b.metrics().snapshot().dropped(DropReason::TooLarge), 1);
    }
}
