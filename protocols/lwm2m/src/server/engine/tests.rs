//! The engine with virtual time: datagrams in and out, outputs checked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_coap::codec;
use serde_json::{Value as Json, json};

use super::*;
use crate::server::settings::{AutoObserve, Lwm2mSettings};

const DEV: &str = "127.0.0.1:40000";

struct H {
    s: Server,
    now: Instant,
    mid: u16,
    stash: Vec<Packet>,
}

fn dev() -> SocketAddr {
    DEV.parse().unwrap()
}

fn req(kind: MessageType, method: RequestType, path: &[&str], query: &[&str], body: &str) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.code = MessageClass::Request(method);
    p.set_token(vec![9, 9]);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p.payload = body.as_bytes().to_vec();
    p
}

impl H {
    fn new(settings: Lwm2mSettings) -> H {
        let s = Server::new(Arc::new(settings), Arc::new(|_: &Path| None), Arc::new(Counters::default()), 7);
        H { s, now: Instant::now(), mid: 100, stash: Vec::new() }
    }

    fn send(&mut self, mut p: Packet) {
        self.mid += 1;
        if p.header.message_id == 0 {
            p.header.message_id = self.mid;
        }
        self.s.handle_datagram(self.now, dev(), &codec::encode(&p).unwrap());
    }

    fn sent(&mut self) -> Vec<Packet> {
        let mut v = std::mem::take(&mut self.stash);
        while let Some((to, b)) = self.s.poll_transmit() {
            assert_eq!(to, dev());
            v.push(codec::decode(&b).unwrap());
        }
        v
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.s.poll_output()).collect()
    }

    fn published(&mut self) -> Vec<(String, Json)> {
        self.outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Publish { topic, payload, .. } => Some((topic, serde_json::from_slice(&payload).unwrap())),
                _ => None,
            })
            .collect()
    }

    /// Registers `ep`, returns the location id.
    fn register(&mut self, ep: &str, b: &str) -> String {
        let q = [format!("ep={ep}"), "lt=300".into(), "lwm2m=1.1".into(), format!("b={b}")];
        let q: Vec<&str> = q.iter().map(String::as_str).collect();
        self.send(req(MessageType::Confirmable, RequestType::Post, &["rd"], &q, "</1/0>,</3/0>,</3303/0>;ver=1.1"));
        assert!(self.sent().is_empty(), "answered only after the core");
        let Some(Output::Connect { ticket, ep: e, commands, .. }) = self.s.poll_output() else { panic!("no connect") };
        assert_eq!((e.as_str(), commands), (ep, format!("lwm2m/{ep}/dn/#")));
        self.s.connected(self.now, ticket, Ok(()));
        let mut sent = self.sent();
        let resp = sent.remove(0);
        self.stash = sent;
        assert_eq!(resp.header.code, MessageClass::Response(ResponseType::Created));
        let loc: Vec<String> = resp
            .get_option(CoapOption::LocationPath)
            .unwrap()
            .iter()
            .map(|s| String::from_utf8(s.clone()).unwrap())
            .collect();
        assert_eq!(loc[0], "rd");
        loc[1].clone()
    }

    fn command(&mut self, ep: &str, j: Json) {
        self.s.handle_command(self.now, ep, j.to_string().as_bytes(), None);
    }

    /// The device answers request `r` piggybacked.
    fn answer(&mut self, r: &Packet, code: ResponseType, body: &str, observe: Option<u32>) {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Acknowledgement);
        p.header.message_id = r.header.message_id;
        p.header.code = MessageClass::Response(code);
        p.set_token(r.get_token().to_vec());
        if let Some(o) = observe {
            p.add_option(CoapOption::Observe, codec::encode_uint(o));
        }
        p.payload = body.as_bytes().to_vec();
        self.send(p);
    }
}

#[test]
fn registration_ids_are_unguessable() {
    // An Update or De-register names its registration by id alone: 64 random bits, not a counter.
    let ids: Vec<String> = (0..3).map(|i| H::new(Lwm2mSettings::default()).register(&format!("dev{i}"), "U")).collect();
    for id in &ids {
        assert!(id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }
    let n: Vec<u64> = ids.iter().map(|id| u64::from_str_radix(id, 16).unwrap()).collect();
    assert!(n[1].abs_diff(n[0]) > 1_000_000 && n[2].abs_diff(n[1]) > 1_000_000, "{ids:?}");
}

#[test]
fn register_read_update_deregister() {
    let mut h = H::new(Lwm2mSettings::default());
    let id = h.register("dev1", "U");
    let p = h.published();
    assert_eq!(p[0].0, "lwm2m/dev1/up/resp");
    assert_eq!(p[0].1["msgType"], "register");
    assert_eq!(p[0].1["data"]["objectList"], json!(["/1/0", "/3/0", "/3303/0"]));
    assert_eq!(p[0].1["data"]["lt"], 300);

    h.command("dev1", json!({"reqID": 7, "msgType": "read", "data": {"path": "/3/0/0"}}));
    let r = h.sent().pop().unwrap();
    assert_eq!(r.header.get_type(), MessageType::Confirmable);
    h.answer(&r, ResponseType::Content, "Roost", None);
    let p = h.published();
    assert_eq!(
        p[0].1,
        json!({"reqID": 7, "msgType": "read", "data": {"reqPath": "/3/0/0", "code": "2.05", "codeMsg": "content", "content": [{"path": "/3/0/0", "value": "Roost"}]}})
    );

    // Update with a new object list, then without one (not published by default).
    h.send(req(MessageType::Confirmable, RequestType::Post, &["rd", &id], &["lt=120"], "</1/0>,</3/0>"));
    assert_eq!(h.sent()[0].header.code, MessageClass::Response(ResponseType::Changed));
    let p = h.published();
    assert_eq!(
        (p[0].0.as_str(), &p[0].1["msgType"], &p[0].1["data"]["lt"]),
        ("lwm2m/dev1/up/update", &json!("update"), &json!(120))
    );
    h.send(req(MessageType::Confirmable, RequestType::Post, &["rd", &id], &[], ""));
    assert!(h.published().is_empty());
    h.sent();

    h.send(req(MessageType::Confirmable, RequestType::Post, &["rd", "nope"], &[], ""));
    assert_eq!(h.sent()[0].header.code, MessageClass::Response(ResponseType::NotFound));
    h.send(req(MessageType::Confirmable, RequestType::Delete, &["rd", &id], &[], ""));
    assert_eq!(h.sent()[0].header.code, MessageClass::Response(ResponseType::Deleted));
    let o = h.outputs();
    assert!(
        matches!(&o[0], Output::Publish { payload, .. } if payload.starts_with(br#"{"data":{"ep":"dev1","reason":"deregister"}"#))
    );
    assert!(matches!(&o[1], Output::Close { ep, reason: DisconnectReason::Normal } if ep == "dev1"));
    assert_eq!(h.s.device_count(), 0);
}

#[test]
fn bad_registrations_are_refused() {
    let mut h = H::new(Lwm2mSettings::default());
    for q in [&["lt=60"][..], &["ep=a", "lt=x"], &["ep=a", "lt=5"], &["ep=a", "lt=999999"]] {
        h.send(req(MessageType::Confirmable, RequestType::Post, &["rd"], q, ""));
        assert_eq!(h.sent()[0].header.code, MessageClass::Response(ResponseType::BadRequest), "{q:?}");
    }
    h.send(req(MessageType::Confirmable, RequestType::Post, &["rd"], &["ep=a"], ""));
    let Some(Output::Connect { ticket, .. }) = h.s.poll_output() else { panic!() };
    h.s.connected(h.now, ticket, Err(Refusal::Forbidden));
    assert_eq!(h.sent()[0].header.code, MessageClass::Response(ResponseType::Forbidden));
    assert_eq!(h.s.device_count(), 0);
    h.s.handle_datagram(h.now, dev(), &[0x40, 1]);
    assert_eq!(h.s.counters().malformed.load(Relaxed), 1);
}

#[test]
fn timeouts_resets_and_bad_commands_are_answered() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("d", "U");
    h.published();
    h.command("d", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}}));
    let first = h.sent().pop().unwrap();
    let mut retransmits = 0;
    while let Some(t) = h.s.poll_timeout() {
        if t > h.now + Duration::from_secs(200) {
            break;
        }
        h.now = t;
        h.s.handle_timeout(h.now);
        retransmits += h.sent().len();
        let p = h.published();
        if !p.is_empty() {
            assert_eq!(p[0].1["data"]["code"], "coap_timeout");
            assert_eq!(p[0].1["reqID"], 1);
            break;
        }
    }
    assert_eq!(retransmits, 4, "{first:?}");
    h.command("d", json!({"reqID": 2, "msgType": "execute", "data": {"path": "/3/0/4"}}));
    let r = h.sent().pop().unwrap();
    h.send(codec::empty(MessageType::Reset, r.header.message_id));
    assert_eq!(h.published()[0].1["data"]["code"], "coap_reset");
    h.s.handle_command(h.now, "d", b"{oops", None);
    assert_eq!(h.published()[0].1["data"]["code"], "4.00");
    // A payload that does not decode is an error result, not a panic.
    h.command("d", json!({"reqID": 3, "msgType": "read", "data": {"path": "/3/0"}}));
    let r = h.sent().pop().unwrap();
    h.answer(&r, ResponseType::Content, "x", None);
    assert_eq!(h.published()[0].1["data"]["code"], "decode_error");
}

#[test]
fn observe_notify_and_cancel() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("d", "U");
    h.published();
    h.command("d", json!({"reqID": 5, "msgType": "observe", "data": {"path": "/3303/0/5700"}}));
    let r = h.sent().pop().unwrap();
    h.answer(&r, ResponseType::Content, "20.5", Some(1));
    assert_eq!(h.published()[0].1["msgType"], "observe");
    let notify = |h: &mut H, seq: u32, v: &str| {
        let mut p = Packet::new();
        p.header.set_type(MessageType::NonConfirmable);
        p.header.code = MessageClass::Response(ResponseType::Content);
        p.set_token(r.get_token().to_vec());
        p.add_option(CoapOption::Observe, codec::encode_uint(seq));
        p.payload = v.as_bytes().to_vec();
        h.send(p);
    };
    notify(&mut h, 2, "21");
    let p = h.published();
    assert_eq!(p[0].0, "lwm2m/d/up/notify");
    assert_eq!(
        p[0].1,
        json!({"reqID": 5, "msgType": "notify", "seqNum": 2, "data": {"reqPath": "/3303/0/5700", "code": "2.05", "codeMsg": "content", "content": [{"path": "/3303/0/5700", "value": "21"}]}})
    );
    notify(&mut h, 1, "19");
    assert!(h.published().is_empty(), "stale");
    h.command("d", json!({"reqID": 6, "msgType": "cancel-observe", "data": {"path": "/3303/0/5700"}}));
    let c = h.sent().pop().unwrap();
    assert_eq!(c.get_token(), r.get_token());
    h.answer(&c, ResponseType::Content, "21", None);
    assert_eq!(h.published()[0].1["msgType"], "cancel-observe");
    notify(&mut h, 3, "22");
    assert!(h.published().is_empty());
    assert_eq!(h.sent()[0].header.get_type(), MessageType::Reset);
}

#[test]
fn queue_mode_holds_commands_until_heard() {
    let mut h = H::new(Lwm2mSettings::default());
    let id = h.register("q", "UQ");
    h.published();
    h.now += Duration::from_secs(30);
    h.command("q", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}}));
    h.command("q", json!({"reqID": 2, "msgType": "read", "data": {"path": "/3/0/1"}}));
    assert!(h.sent().is_empty());
    assert_eq!(h.s.device("q").unwrap().queued(), 2);
    h.send(req(MessageType::Confirmable, RequestType::Post, &["rd", &id], &[], ""));
    let out = h.sent();
    assert_eq!(out[0].header.code, MessageClass::Response(ResponseType::Changed));
    // NSTART 1: the first goes now, the second after its answer.
    assert_eq!(out.len(), 2);
    h.answer(&out[1], ResponseType::Content, "A", None);
    let second = h.sent().pop().unwrap();
    h.answer(&second, ResponseType::Content, "B", None);
    let p = h.published();
    assert_eq!((p[0].1["reqID"].clone(), p[1].1["reqID"].clone()), (json!(1), json!(2)));
}

#[test]
fn lifetime_expiry_and_auto_observe() {
    let settings = Lwm2mSettings {
        auto_observe: AutoObserve::List(vec!["/3303/0/5700".into(), "/9/0".into()]),
        ..Default::default()
    };
    let mut h = H::new(settings);
    h.register("e", "U");
    let obs = h.sent();
    assert_eq!(obs.len(), 1);
    assert!(obs[0].get_option(CoapOption::Observe).is_some());
    h.answer(&obs[0], ResponseType::Content, "1", Some(0));
    h.published();
    h.now += Duration::from_secs(301);
    h.s.handle_timeout(h.now);
    let o = h.outputs();
    assert!(
        matches!(&o[0], Output::Publish { payload, .. } if payload.starts_with(br#"{"data":{"ep":"e","reason":"expired"}"#))
    );
    assert!(matches!(&o[1], Output::Close { reason: DisconnectReason::Abnormal, .. }));
    assert_eq!(h.s.counters().expired.load(Relaxed), 1);
}

#[test]
fn reregistering_takes_over() {
    let mut h = H::new(Lwm2mSettings::default());
    let a = h.register("r", "U");
    h.command("r", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}}));
    h.sent();
    h.published();
    let b = h.register("r", "U");
    assert_ne!(a, b);
    let p = h.published();
    assert_eq!(p[0].1["data"]["code"], "coap_timeout");
    assert_eq!(p[1].1["msgType"], "register");
    assert_eq!(h.s.device_count(), 1);
}

#[test]
fn requests_in_flight_are_bounded() {
    let mut h = H::new(Lwm2mSettings { max_queued: 3, ..Default::default() });
    h.register("b", "U");
    h.published();
    for i in 0..5 {
        h.command("b", json!({"reqID": i, "msgType": "read", "data": {"path": "/3/0/0"}}));
    }
    let p = h.published();
    assert_eq!(p.len(), 2);
    assert!(p.iter().all(|(_, j)| j["data"]["code"] == "queue_full"));
    assert_eq!(h.sent().len(), 1, "NSTART 1: one on the wire, two waiting");
}

#[test]
fn bootstrap_provisions_security_and_server_objects() {
    use crate::server::settings::BootstrapSettings;
    let bs = BootstrapSettings {
        server_uri: "coap://127.0.0.1:5783".into(),
        lifetime: Duration::from_secs(300),
        psk_identity: Some("dev-psk".into()),
        psk_key: Some(b"secret".to_vec()),
        devices: Vec::new(),
        only_listed: false,
    };
    let mut h = H::new(Lwm2mSettings { bootstrap: Some(bs), ..Default::default() });
    h.send(req(MessageType::Confirmable, RequestType::Post, &["bs"], &["ep=boot"], ""));
    let mut out = h.sent();
    assert_eq!(out.remove(0).header.code, MessageClass::Response(ResponseType::Changed));
    let mut seen = Vec::new();
    let mut next = out.pop().unwrap();
    loop {
        let path = codec::uri_path(&next).unwrap().join("/");
        let MessageClass::Request(m) = next.header.code else { panic!() };
        seen.push(format!("{m:?} /{path}"));
        if path == "0/1" {
            let registry = crate::objects::Registry::builtin();
            let records =
                crate::content::decode(crate::types::format::TLV, "/0/1".parse().unwrap(), &next.payload, &|p| {
                    registry.kind(p)
                })
                .unwrap();
            let value = |p: &str| records.iter().find(|r| r.path.to_string() == p).map(|r| r.value.clone());
            assert_eq!(value("/0/1/0"), Some(crate::types::Value::String("coap://127.0.0.1:5783".into())));
            assert_eq!(value("/0/1/3"), Some(crate::types::Value::Opaque(b"dev-psk".to_vec())));
        }
        // Deleting an empty object may fail: tolerated.
        let code = if m == RequestType::Delete { ResponseType::NotFound } else { ResponseType::Changed };
        h.answer(&next, code, "", None);
        match h.sent().pop() {
            Some(p) => next = p,
            None => break,
        }
    }
    assert_eq!(seen, ["Delete /0", "Delete /1", "Put /0/1", "Put /1/0", "Post /bs"]);
    assert!(h.s.poll_timeout().is_none(), "session over");
}

#[test]
fn bootstrap_writes_a_listed_endpoints_own_psk_and_refuses_others_when_only_listed() {
    use crate::server::settings::{BootstrapDevice, BootstrapSettings};
    let bs = BootstrapSettings {
        server_uri: "coaps://127.0.0.1:5784".into(),
        lifetime: Duration::from_secs(300),
        psk_identity: None,
        psk_key: None,
        devices: vec![BootstrapDevice {
            endpoint: "meter-1".into(),
            psk_identity: "id-meter-1".into(),
            psk_key: b"k1".to_vec(),
        }],
        only_listed: true,
    };
    let mut h = H::new(Lwm2mSettings { bootstrap: Some(bs), ..Default::default() });
    h.send(req(MessageType::Confirmable, RequestType::Post, &["bs"], &["ep=meter-1"], ""));
    let mut out = h.sent();
    assert_eq!(out.remove(0).header.code, MessageClass::Response(ResponseType::Changed));
    let mut next = out.pop().unwrap();
    let mut security = None;
    while security.is_none() {
        if codec::uri_path(&next).unwrap() == ["0", "1"] {
            let registry = crate::objects::Registry::builtin();
            security = Some(
                crate::content::decode(crate::types::format::TLV, "/0/1".parse().unwrap(), &next.payload, &|p| {
                    registry.kind(p)
                })
                .unwrap(),
            );
        }
        h.answer(&next, ResponseType::Deleted, "", None);
        next = h.sent().pop().unwrap();
    }
    let records = security.unwrap();
    let value = |p: &str| records.iter().find(|r| r.path.to_string() == p).map(|r| r.value.clone());
    use crate::types::Value;
    assert_eq!(value("/0/1/2"), Some(Value::Integer(0)), "security mode PSK");
    assert_eq!(value("/0/1/3"), Some(Value::Opaque(b"id-meter-1".to_vec())));
    assert_eq!(value("/0/1/5"), Some(Value::Opaque(b"k1".to_vec())));

    // Another endpoint has no bootstrap information: 4.00, nothing sent.
    h.send(req(MessageType::Confirmable, RequestType::Post, &["bs"], &["ep=stranger"], ""));
    let out = h.sent();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].header.code, MessageClass::Response(ResponseType::BadRequest));
}

#[test]
fn bootstrap_is_not_served_without_settings() {
    // Without [lwm2m.bootstrap], /bs is not served.
    let mut h = H::new(Lwm2mSettings::default());
    h.send(req(MessageType::Confirmable, RequestType::Post, &["bs"], &["ep=boot"], ""));
    assert_eq!(h.sent()[0].header.code, MessageClass::Response(ResponseType::NotFound));
}

#[test]
fn block2_responses_are_reassembled() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("big", "U");
    h.published();
    h.command("big", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}}));
    let body: String = "abcdefghijklmnop".repeat(3);
    for (num, chunk) in body.as_bytes().chunks(16).enumerate() {
        let r = h.sent().pop().unwrap();
        if num > 0 {
            let b = codec::Block::of(&r, CoapOption::Block2).unwrap().unwrap();
            assert_eq!(b.num as usize, num);
        }
        let mut p = Packet::new();
        p.header.set_type(MessageType::Acknowledgement);
        p.header.message_id = r.header.message_id;
        p.header.code = MessageClass::Response(ResponseType::Content);
        p.set_token(r.get_token().to_vec());
        let block = codec::Block { num: num as u32, more: num < 2, szx: 0 };
        p.add_option(CoapOption::Block2, codec::encode_uint(block.encode()));
        p.payload = chunk.to_vec();
        h.send(p);
    }
    let p = h.published();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1["data"]["content"][0]["value"], json!(body));
}

#[test]
fn separate_responses_are_matched_by_token() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("sep", "U");
    h.published();
    h.command("sep", json!({"reqID": 9, "msgType": "execute", "data": {"path": "/3/0/4"}}));
    let r = h.sent().pop().unwrap();
    h.send(codec::empty(MessageType::Acknowledgement, r.header.message_id));
    assert_eq!(h.published()[0].1, json!({"reqID": 9, "msgType": "ack", "data": {"reqPath": "/3/0/4"}}));
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.message_id = 4242;
    p.header.code = MessageClass::Response(ResponseType::Changed);
    p.set_token(r.get_token().to_vec());
    h.send(p.clone());
    let acks = h.sent();
    assert_eq!((acks[0].header.get_type(), acks[0].header.message_id), (MessageType::Acknowledgement, 4242));
    assert_eq!(h.published()[0].1["data"]["code"], "2.04");
    // The same response again (our ACK was lost): ACKed again, no second result.
    h.send(p);
    assert!(h.published().is_empty());
    assert_eq!(h.sent()[0].header.get_type(), MessageType::Acknowledgement);
    // Nothing outstanding but the lifetime.
    let d = h.s.device("sep").unwrap();
    assert_eq!(h.s.poll_timeout(), Some(d.expires_at()));
}

mod blockwise;
mod send;
