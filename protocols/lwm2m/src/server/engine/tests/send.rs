//! The 1.1 Send operation (`POST /dp`) with virtual time.

use super::*;
use crate::types::{Record, Value, format};

fn send_dp(h: &mut H, fmt: Option<u16>, body: &[u8]) -> Packet {
    let mut p = req(MessageType::Confirmable, RequestType::Post, &["dp"], &[], "");
    if let Some(f) = fmt {
        p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(f)));
    }
    p.payload = body.to_vec();
    h.send(p);
    let mut sent = h.sent();
    assert_eq!(sent.len(), 1);
    sent.remove(0)
}

fn code(p: &Packet) -> MessageClass {
    p.header.code
}

#[test]
fn send_reports_are_published_on_the_notify_topic() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("s1", "U");
    h.published();
    let senml = br#"[{"bn":"/3303/0/","n":"5700","v":21.5},{"n":"5701","vs":"Cel"},{"n":"5605","vb":true}]"#;
    let r = send_dp(&mut h, Some(format::SENML_JSON), senml);
    assert_eq!(code(&r), MessageClass::Response(ResponseType::Changed));
    let p = h.published();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "lwm2m/s1/up/notify");
    assert_eq!(
        p[0].1,
        json!({"msgType": "send", "data": {"reqPath": "/dp", "content": [
            {"path": "/3303/0/5700", "value": 21.5}, {"path": "/3303/0/5701", "value": "Cel"}, {"path": "/3303/0/5605", "value": true}]}})
    );

    // SenML CBOR, typed by the object definitions.
    let records = [Record { path: "/3/0/9".parse().unwrap(), value: Value::Integer(87) }];
    let cbor = crate::content::encode(format::SENML_CBOR, "/3/0".parse().unwrap(), &records).unwrap();
    let r = send_dp(&mut h, Some(format::SENML_CBOR), &cbor);
    assert_eq!(code(&r), MessageClass::Response(ResponseType::Changed));
    assert_eq!(h.published()[0].1["data"]["content"], json!([{"path": "/3/0/9", "value": 87}]));
    assert_eq!(h.s.counters().sends.load(Relaxed), 2);
}

#[test]
fn bad_sends_are_refused_and_not_published() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("s1", "U");
    h.published();
    let r = send_dp(&mut h, Some(format::SENML_JSON), br#"[{"bn":"/3303/0/","n":"5700","v":"#);
    assert_eq!(code(&r), MessageClass::Response(ResponseType::BadRequest));
    assert!(!r.payload.is_empty(), "a diagnostic says why");
    let r = send_dp(&mut h, Some(format::SENML_JSON), br#"[{"n":"/3303/0/5700","v":"hot"}]"#);
    assert_eq!(code(&r), MessageClass::Response(ResponseType::BadRequest));
    let r = send_dp(&mut h, Some(format::TLV), &[0xC1, 0x00, 0x01]);
    assert_eq!(code(&r), MessageClass::Response(ResponseType::UnsupportedContentFormat));
    let r = send_dp(&mut h, None, br#"[{"n":"/3303/0/5700","v":1}]"#);
    assert_eq!(code(&r), MessageClass::Response(ResponseType::UnsupportedContentFormat));
    assert!(h.published().is_empty());
    assert_eq!(h.s.counters().bad_sends.load(Relaxed), 4);

    // From a peer that is not registered: 4.04.
    let stranger: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let mut p = req(MessageType::Confirmable, RequestType::Post, &["dp"], &[], r#"[{"n":"/3303/0/5700","v":1}]"#);
    p.header.message_id = 7;
    p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(format::SENML_JSON)));
    h.s.handle_datagram(h.now, stranger, &codec::encode(&p).unwrap());
    let (to, bytes) = h.s.poll_transmit().unwrap();
    assert_eq!(
        (to, codec::decode(&bytes).unwrap().header.code),
        (stranger, MessageClass::Response(ResponseType::NotFound))
    );
    assert!(h.published().is_empty());
}

#[test]
fn a_send_wakes_a_queue_mode_device() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("q1", "UQ");
    h.published();
    h.now += Duration::from_secs(60);
    h.command("q1", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}}));
    assert!(h.sent().is_empty(), "asleep: held");
    let mut p = req(MessageType::Confirmable, RequestType::Post, &["dp"], &[], r#"[{"n":"/3303/0/5700","v":1}]"#);
    p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(format::SENML_JSON)));
    h.send(p);
    let sent = h.sent();
    assert_eq!(sent.len(), 2, "the 2.04 and the held read");
    assert_eq!(code(&sent[0]), MessageClass::Response(ResponseType::Changed));
    assert_eq!(code(&sent[1]), MessageClass::Request(RequestType::Get));
}

#[test]
fn a_send_in_block1_blocks_is_reassembled() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("s1", "U");
    h.published();
    let senml = br#"[{"bn":"/3303/0/","n":"5700","v":21.5},{"n":"5701","vs":"Cel"}]"#;
    let chunks: Vec<&[u8]> = senml.chunks(32).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut p = req(MessageType::Confirmable, RequestType::Post, &["dp"], &[], "");
        p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(format::SENML_JSON)));
        let b = codec::Block { num: i as u32, more: i + 1 < chunks.len(), szx: 1 };
        p.add_option(CoapOption::Block1, codec::encode_uint(b.encode()));
        p.payload = chunk.to_vec();
        h.send(p);
        let r = h.sent().pop().unwrap();
        assert_eq!(codec::Block::of(&r, CoapOption::Block1), Some(Ok(b)));
        let want = if b.more { ResponseType::Continue } else { ResponseType::Changed };
        assert_eq!(code(&r), MessageClass::Response(want));
        let published = h.published();
        assert_eq!(published.len(), usize::from(!b.more));
        if !b.more {
            assert_eq!(published[0].1["data"]["content"][1], json!({"path": "/3303/0/5701", "value": "Cel"}));
        }
    }
}
