//! The store's record format: a small, versioned binary encoding of sessions and messages.
//! Every read is bounds-checked; a bad record is an error naming what was wrong, never a
//! panic. Instants become wall-clock deadlines on disk (an `Instant` means nothing after a
//! restart).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{SessionMeta, StoredMessage};
use crate::types::Pending;
use crate::types::SubOptions;
use crate::types::{ClientId, Message, MessageProperties, Protocol, QoS};

/// Format version of message and session records.
pub const RECORD_VERSION: u8 = 1;

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
            None => self.u8(0),
        }
    }
}

struct R<'a>(&'a [u8]);

type Res<T> = Result<T, String>;

impl<'a> R<'a> {
    fn take(&mut self, n: usize, what: &str) -> Res<&'a [u8]> {
        if self.0.len() < n {
            return Err(format!("{what}: record truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Res<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Res<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Res<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Res<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self, what: &str) -> Res<&'a [u8]> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn string(&mut self, what: &str) -> Res<String> {
        String::from_utf8(self.bytes(what)?.to_vec()).map_err(|_| format!("{what}: not UTF-8"))
    }
    fn opt<T>(&mut self, what: &str, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<Option<T>> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => f(self).map(Some),
            n => Err(format!("{what}: option tag {n}")),
        }
    }
    fn qos(&mut self, what: &str) -> Res<QoS> {
        let q = self.u8(what)?;
        QoS::from_u8(q).ok_or_else(|| format!("{what}: QoS {q}"))
    }
    fn bool(&mut self, what: &str) -> Res<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(format!("{what}: boolean {n}")),
        }
    }
    fn done(&self, what: &str) -> Res<()> {
        if self.0.is_empty() { Ok(()) } else { Err(format!("{what}: {} trailing bytes", self.0.len())) }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn protocol_byte(p: Protocol) -> u8 {
    Protocol::ALL.iter().position(|x| *x == p).unwrap_or(0) as u8
}

fn put_message(w: &mut W, m: &Message) {
    w.str(&m.topic);
    w.bytes(&m.payload);
    w.u8(m.qos as u8);
    w.u8(u8::from(m.retain));
    let p = &m.properties;
    w.opt(p.payload_format_indicator, |w, v| w.u8(v));
    w.opt(p.content_type.as_deref(), |w, v| w.str(v));
    w.opt(p.response_topic.as_deref(), |w, v| w.str(v));
    w.opt(p.correlation_data.as_deref(), |w, v| w.bytes(v));
    w.u32(p.user_properties.len() as u32);
    for (k, v) in &p.user_properties {
        w.str(k);
        w.str(v);
    }
    w.opt(m.publisher.as_ref(), |w, v| w.str(v.as_str()));
    let now = Instant::now();
    let deadline = m.expiry.map(|e| {
        let left = e.saturating_sub(now.saturating_duration_since(m.created));
        unix_ms(SystemTime::now() + left)
    });
    w.opt(deadline, |w, v| w.u64(v));
}

fn get_message(r: &mut R<'_>) -> Res<Message> {
    let topic: Arc<str> = r.string("message topic")?.into();
    let payload = Bytes::copy_from_slice(r.bytes("message payload")?);
    let qos = r.qos("message qos")?;
    let retain = r.bool("message retain")?;
    let payload_format_indicator = r.opt("payload format", |r| r.u8("payload format"))?;
    let content_type = r.opt("content type", |r| r.string("content type"))?;
    let response_topic = r.opt("response topic", |r| r.string("response topic"))?;
    let correlation_data = r.opt("correlation data", |r| Ok(Bytes::copy_from_slice(r.bytes("correlation data")?)))?;
    let n = r.u32("user properties")? as usize;
    let mut user_properties = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        user_properties.push((r.string("user property")?, r.string("user property")?));
    }
    let publisher = r.opt("publisher", |r| r.string("publisher").map(ClientId::new))?;
    let deadline = r.opt("expiry", |r| r.u64("expiry"))?;
    let expiry = deadline.map(|d| from_unix_ms(d).duration_since(SystemTime::now()).unwrap_or(Duration::ZERO));
    Ok(Message {
        topic,
        payload,
        qos,
        retain,
        properties: MessageProperties {
            payload_format_indicator,
            content_type,
            response_topic,
            correlation_data,
            user_properties,
        },
        publisher,
        created: Instant::now(),
        expiry,
        receipt: None,
    })
}

pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut w = W::default();
    w.u8(RECORD_VERSION);
    put_message(&mut w, m);
    w.0
}

pub fn decode_message(b: &[u8]) -> Res<Message> {
    let mut r = R(b);
    version(&mut r)?;
    let m = get_message(&mut r)?;
    r.done("retained message")?;
    Ok(m)
}

fn version(r: &mut R<'_>) -> Res<()> {
    match r.u8("record version")? {
        RECORD_VERSION => Ok(()),
        v => Err(format!("record version {v} is not {RECORD_VERSION}")),
    }
}

pub fn encode_stored(s: &StoredMessage) -> Vec<u8> {
    let mut w = W::default();
    w.u8(RECORD_VERSION);
    put_message(&mut w, &s.pending.message);
    w.u8(s.pending.qos as u8);
    w.u8(u8::from(s.pending.retain));
    w.u32(s.pending.subscription_ids.len() as u32);
    for id in &s.pending.subscription_ids {
        w.u32(*id);
    }
    w.opt(s.packet_id, |w, v| w.u16(v));
    w.u8(u8::from(s.released));
    w.0
}

pub fn decode_stored(b: &[u8]) -> Res<StoredMessage> {
    let mut r = R(b);
    version(&mut r)?;
    let message = Arc::new(get_message(&mut r)?);
    let qos = r.qos("delivery qos")?;
    let retain = r.bool("delivery retain")?;
    let n = r.u32("subscription ids")? as usize;
    let mut subscription_ids = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        subscription_ids.push(r.u32("subscription id")?);
    }
    let packet_id = r.opt("packet id", |r| r.u16("packet id"))?;
    let released = r.bool("released")?;
    r.done("queued message")?;
    Ok(StoredMessage { pending: Pending { message, qos, retain, subscription_ids }, packet_id, released })
}

pub fn encode_session(m: &SessionMeta) -> Vec<u8> {
    let mut w = W::default();
    w.u8(RECORD_VERSION);
    w.str(m.client_id.as_str());
    w.u8(protocol_byte(m.protocol));
    w.opt(m.expiry, |w, d| w.u64(d.as_millis() as u64));
    w.opt(m.expires_at, |w, t| w.u64(unix_ms(t)));
    w.u32(m.subscriptions.len() as u32);
    for (f, o) in &m.subscriptions {
        w.str(f);
        w.u8(o.qos as u8);
        w.u8(u8::from(o.no_local));
        w.u8(u8::from(o.retain_as_published));
        w.u8(o.retain_handling);
        w.opt(o.subscription_id, |w, v| w.u32(v));
    }
    w.0
}

pub fn decode_session(b: &[u8]) -> Res<SessionMeta> {
    let mut r = R(b);
    version(&mut r)?;
    let client_id = ClientId::new(r.string("client id")?);
    let p = r.u8("protocol")?;
    let protocol = *Protocol::ALL.get(usize::from(p)).ok_or_else(|| format!("protocol {p}"))?;
    let expiry = r.opt("session expiry", |r| r.u64("session expiry").map(Duration::from_millis))?;
    let expires_at = r.opt("expires at", |r| r.u64("expires at").map(from_unix_ms))?;
    let n = r.u32("subscriptions")? as usize;
    let mut subscriptions = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let f = r.string("filter")?;
        let o = SubOptions {
            qos: r.qos("subscription qos")?,
            no_local: r.bool("no local")?,
            retain_as_published: r.bool("retain as published")?,
            retain_handling: r.u8("retain handling")?,
            subscription_id: r.opt("subscription id", |r| r.u32("subscription id"))?,
        };
        subscriptions.push((f, o));
    }
    r.done("session")?;
    Ok(SessionMeta { client_id, protocol, expiry, expires_at, subscriptions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        let mut m = Message::new("a/b", &b"payload"[..], QoS::ExactlyOnce, true);
        m.properties.content_type = Some("text/plain".into());
        m.properties.user_properties = vec![("k".into(), "v".into()), ("k".into(), "w".into())];
        m.properties.correlation_data = Some(Bytes::from_static(b"c"));
        m.publisher = Some(ClientId::new("pub"));
        m.expiry = Some(Duration::from_secs(60));
        m
    }

    #[test]
    fn stored_message_round_trip() {
        let s = StoredMessage {
            pending: Pending {
                message: Arc::new(message()),
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: vec![3, 9],
            },
            packet_id: Some(42),
            released: true,
        };
        let d = decode_stored(&encode_stored(&s)).unwrap();
        assert_eq!(d.packet_id, Some(42));
        assert!(d.released);
        assert_eq!(d.pending.subscription_ids, [3, 9]);
        let (a, b) = (&d.pending.message, &s.pending.message);
        assert_eq!(
            (&a.topic, &a.payload, a.qos, a.retain, &a.properties, &a.publisher),
            (&b.topic, &b.payload, b.qos, b.retain, &b.properties, &b.publisher)
        );
        let left = a.expiry.unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(58));
    }

    #[test]
    fn session_round_trip() {
        let m = SessionMeta {
            client_id: ClientId::new("c"),
            protocol: Protocol::MqttSn,
            expiry: Some(Duration::from_secs(30)),
            expires_at: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            subscriptions: vec![(
                "$share/g/a/#".into(),
                SubOptions { qos: QoS::AtLeastOnce, subscription_id: Some(5), ..Default::default() },
            )],
        };
        assert_eq!(decode_session(&encode_session(&m)).unwrap(), m);
    }

    #[test]
    fn bad_records_are_errors() {
        let good = encode_stored(&StoredMessage {
            pending: Pending {
                message: Arc::new(message()),
                qos: QoS::AtMostOnce,
                retain: false,
                subscription_ids: vec![],
            },
            packet_id: None,
            released: false,
        });
        for cut in 0..good.len() {
            assert!(decode_stored(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut v = good.clone();
        v[0] = 9;
        assert!(decode_stored(&v).unwrap_err().contains("record version"));
        let mut extra = good;
        extra.push(0);
        assert!(decode_stored(&extra).is_err());
    }
}
