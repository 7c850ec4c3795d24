//! What nodes send each other over NATS, in bytes: a forwarded publish (the shared groups
//! the receiver serves, then the message in the store's record format) and a handed-off
//! session. Every read is bounds-checked and every count is checked against the bytes that
//! are left before anything is reserved; a bad frame is an error naming what was wrong.

use roost_core::ClientId;
use roost_core::cluster::{GroupKey, SessionHandoff};
use roost_core::store::wire;
use roost_core::store::{SessionMeta, StoredMessage, StoredSession};
use roost_core::types::Message;

/// Version of the frames below; a node refuses frames of another version. 3: forwarded
/// publishes travel in batches ([`encode_batch`]).
pub const WIRE_VERSION: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster frame: {0}")]
pub struct WireError(pub String);

#[derive(Default)]
struct W(Vec<u8>);

impl W {
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
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(b);
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError(format!("{what}: truncated ({n} bytes wanted, {} left)", self.0.len())));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], WireError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn str(&mut self, what: &str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| WireError(format!("{what}: not UTF-8")))
    }
    /// A count of items of at least `min` bytes each: more than the bytes left could hold
    /// is refused before anything is allocated for them.
    fn count(&mut self, min: usize, what: &str) -> Result<usize, WireError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min) > self.0.len() {
            return Err(WireError(format!("{what}: {n} items cannot fit in {} bytes", self.0.len())));
        }
        Ok(n)
    }
    fn version(&mut self) -> Result<(), WireError> {
        match self.u8("version")? {
            WIRE_VERSION => Ok(()),
            v => Err(WireError(format!("version {v} is not {WIRE_VERSION}"))),
        }
    }
    fn done(&self, what: &str) -> Result<(), WireError> {
        if self.0.is_empty() { Ok(()) } else { Err(WireError(format!("{what}: {} bytes too many", self.0.len()))) }
    }
}

fn core(what: &str) -> impl Fn(String) -> WireError + '_ {
    move |e| WireError(format!("{what}: {e}"))
}

/// A publish forwarded to one node, with the shared groups that node serves and the
/// persistent sessions it must skip (they get the message from JetStream).
pub fn encode_publish(msg: &Message, groups: &[GroupKey], stored_for: &[ClientId]) -> Vec<u8> {
    let mut w = W(vec![WIRE_VERSION]);
    w.u32(groups.len() as u32);
    for (g, f) in groups {
        w.bytes(g.as_bytes());
        w.bytes(f.as_bytes());
    }
    w.u32(stored_for.len() as u32);
    for c in stored_for {
        w.bytes(c.as_str().as_bytes());
    }
    w.bytes(&wire::encode_message(msg));
    w.0
}

/// Forwarded publishes to one node in one NATS message, in order: one NATS message per
/// publish costs the sending node, the NATS server and the receiving node a round of work
/// each, which capped cross-node fan-in at a few thousand messages per second.
pub fn encode_batch(frames: &[bytes::Bytes]) -> Vec<u8> {
    let len: usize = frames.iter().map(|f| f.len() + 4).sum();
    let mut w = W(Vec::with_capacity(len + 5));
    w.0.push(WIRE_VERSION);
    w.u32(frames.len() as u32);
    for f in frames {
        w.bytes(f);
    }
    w.0
}

/// The publish frames of a batch, each to be read by [`decode_publish`].
pub fn decode_batch(b: &[u8]) -> Result<Vec<&[u8]>, WireError> {
    let mut r = R(b);
    r.version()?;
    let n = r.count(4, "batch")?;
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        frames.push(r.bytes("batched publish")?);
    }
    r.done("batch")?;
    Ok(frames)
}

/// A forwarded publish: the message, the groups served, the sessions to skip.
pub type Forward = (Message, Vec<GroupKey>, Vec<ClientId>);

pub fn decode_publish(b: &[u8]) -> Result<Forward, WireError> {
    let mut r = R(b);
    r.version()?;
    let n = r.count(8, "shared groups")?;
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        let g = r.str("group")?;
        let f = r.str("group filter")?;
        groups.push((g.into(), f.into()));
    }
    let n = r.count(4, "stored-for sessions")?;
    let mut stored_for = Vec::with_capacity(n);
    for _ in 0..n {
        stored_for.push(ClientId::new(r.str("client id")?));
    }
    let msg = wire::decode_message(r.bytes("message")?).map_err(core("message"))?;
    r.done("publish")?;
    Ok((msg, groups, stored_for))
}

/// A persistent session's record in `roost_sessions`: its node and shape.
pub fn encode_session_record(owner: &str, meta: &SessionMeta) -> Vec<u8> {
    let mut w = W(vec![WIRE_VERSION]);
    w.bytes(owner.as_bytes());
    w.bytes(&wire::encode_session(meta));
    w.0
}

pub fn decode_session_record(b: &[u8]) -> Result<(String, SessionMeta), WireError> {
    let mut r = R(b);
    r.version()?;
    let owner = r.str("owner")?.to_string();
    let meta = wire::decode_session(r.bytes("session")?).map_err(core("session"))?;
    r.done("session record")?;
    Ok((owner, meta))
}

/// A session handed from one node to another.
pub fn encode_handoff(s: &SessionHandoff) -> Vec<u8> {
    let mut w = W(vec![WIRE_VERSION]);
    w.bytes(&wire::encode_session(&s.meta));
    w.u32(s.messages.len() as u32);
    for (seq, m) in &s.messages {
        w.u64(*seq);
        w.bytes(&wire::encode_stored(m));
    }
    w.u32(s.awaiting_rel.len() as u32);
    for id in &s.awaiting_rel {
        w.u16(*id);
    }
    w.0
}

pub fn decode_handoff(b: &[u8]) -> Result<SessionHandoff, WireError> {
    let mut r = R(b);
    r.version()?;
    let meta = wire::decode_session(r.bytes("session")?).map_err(core("session"))?;
    let n = r.count(12, "messages")?;
    let mut messages: Vec<(u64, StoredMessage)> = Vec::with_capacity(n);
    for _ in 0..n {
        let seq = r.u64("message seq")?;
        messages.push((seq, wire::decode_stored(r.bytes("message")?).map_err(core("message"))?));
    }
    let n = r.count(2, "awaiting release")?;
    let mut awaiting_rel = Vec::with_capacity(n);
    for _ in 0..n {
        awaiting_rel.push(r.u16("packet id")?);
    }
    r.done("session")?;
    Ok(StoredSession { meta, messages, awaiting_rel })
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_core::{Pending, Protocol, QoS, SubOptions};
    use std::sync::Arc;

    #[test]
    fn publish_round_trips() {
        let mut m = Message::new("a.b/*/>/ /é", &b"payload"[..], QoS::ExactlyOnce, true);
        m.publisher = Some(ClientId::new("pub"));
        let groups: Vec<GroupKey> = vec![("g".into(), "a/+".into())];
        let skip = vec![ClientId::new("p.1")];
        let (back, g, s) = decode_publish(&encode_publish(&m, &groups, &skip)).unwrap();
        assert_eq!(s, skip);
        assert_eq!((&*back.topic, &back.payload[..], back.qos, back.retain), (&*m.topic, &b"payload"[..], m.qos, true));
        assert_eq!(back.publisher, m.publisher);
        assert_eq!(g, groups);
    }

    #[test]
    fn batches_keep_their_frames_in_order_and_refuse_bad_counts() {
        let frames: Vec<bytes::Bytes> = (0..3u8)
            .map(|i| encode_publish(&Message::new("t", vec![i], QoS::AtMostOnce, false), &[], &[]).into())
            .collect();
        let batch = encode_batch(&frames);
        let back = decode_batch(&batch).unwrap();
        let payloads: Vec<u8> = back.iter().map(|f| decode_publish(f).unwrap().0.payload[0]).collect();
        assert_eq!(payloads, vec![0, 1, 2]);
        assert!(decode_batch(&batch[..batch.len() - 1]).is_err(), "truncated");
        let mut huge = vec![WIRE_VERSION];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_batch(&huge).is_err(), "a count beyond the bytes left");
    }

    #[test]
    fn handoff_round_trips() {
        let msg = Arc::new(Message::new("t", &b"x"[..], QoS::AtLeastOnce, false));
        let pending = Pending { message: msg, qos: QoS::AtLeastOnce, retain: false, subscription_ids: vec![7] };
        let s = StoredSession {
            meta: SessionMeta {
                client_id: ClientId::new("c"),
                protocol: Protocol::Mqtt,
                expiry: None,
                expires_at: None,
                subscriptions: vec![("a/#".into(), SubOptions::default())],
            },
            messages: vec![(3, StoredMessage { pending, packet_id: Some(9), released: false })],
            awaiting_rel: vec![4, 5],
        };
        let (owner, meta) = decode_session_record(&encode_session_record("n1", &s.meta)).unwrap();
        assert_eq!((owner.as_str(), &meta.subscriptions), ("n1", &s.meta.subscriptions));
        let back = decode_handoff(&encode_handoff(&s)).unwrap();
        assert_eq!(back.meta.subscriptions, s.meta.subscriptions);
        assert_eq!(back.messages.len(), 1);
        assert_eq!(back.messages[0].1.packet_id, Some(9));
        assert_eq!(back.awaiting_rel, vec![4, 5]);
    }

    #[test]
    fn truncated_and_huge_counts_are_errors() {
        let m = Message::new("t", &b"x"[..], QoS::AtMostOnce, false);
        let b = encode_publish(&m, &[], &[ClientId::new("x")]);
        for n in 0..b.len() {
            assert!(decode_publish(&b[..n]).is_err());
        }
        assert!(decode_publish(&[WIRE_VERSION, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_handoff(&[2]).is_err());
    }
}
