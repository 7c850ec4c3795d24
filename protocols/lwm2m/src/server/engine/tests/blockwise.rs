//! Block1 uploads to a device with virtual time (RFC 7959 §2.5, §2.3): blocks in order
//! under one token, a smaller block size when the device asks, commands behind the upload
//! held in order, and errors mid-way reported for the command.

use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn firmware(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn write_firmware(h: &mut H, ep: &str, req_id: u32, body: &[u8]) {
    h.command(ep, json!({"reqID": req_id, "msgType": "write", "encoding": "hex", "data": {"path": "/5/0/0", "type": "Opaque", "value": hex(body)}}));
}

fn block1(p: &Packet) -> codec::Block {
    codec::Block::of(p, CoapOption::Block1).unwrap().unwrap()
}

/// The device answers block request `r` with `code` and, for a 2.31, its Block1 option.
fn answer_block(h: &mut H, r: &Packet, code: ResponseType, block: Option<codec::Block>) {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    p.header.message_id = r.header.message_id;
    p.header.code = MessageClass::Response(code);
    p.set_token(r.get_token().to_vec());
    if let Some(b) = block {
        p.add_option(CoapOption::Block1, codec::encode_uint(b.encode()));
    }
    h.send(p);
}

#[test]
fn large_writes_go_in_blocks_of_the_size_the_device_asks_for() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("fw", "U");
    h.published();
    let body = firmware(3000);
    write_firmware(&mut h, "fw", 1, &body);
    let first = h.sent().pop().unwrap();
    assert_eq!(first.header.code, MessageClass::Request(RequestType::Put));
    assert_eq!(block1(&first), codec::Block { num: 0, more: true, szx: 6 });
    assert_eq!(codec::uint_option(&first, CoapOption::Size1), Some(Ok(3000)));
    assert_eq!(codec::uint_option(&first, CoapOption::ContentFormat), Some(Ok(42)));
    assert_eq!(first.payload.len(), 1024);
    let token = first.get_token().to_vec();
    // A command behind the upload waits for it.
    h.command("fw", json!({"reqID": 2, "msgType": "read", "data": {"path": "/3/0/0"}}));
    assert!(h.sent().is_empty());

    // The device takes block 0 but wants 512-byte blocks: the next is 2/1/512.
    answer_block(&mut h, &first, ResponseType::Continue, Some(codec::Block { num: 0, more: true, szx: 5 }));
    let mut got = first.payload.clone();
    let mut r = h.sent().pop().unwrap();
    let mut nums = Vec::new();
    loop {
        let b = block1(&r);
        assert_eq!((b.szx, r.get_token(), got.len()), (5, token.as_slice(), b.num as usize * 512));
        assert_eq!(codec::uint_option(&r, CoapOption::Size1), None);
        assert_eq!(codec::uri_path(&r).unwrap(), ["5", "0", "0"]);
        nums.push(b.num);
        got.extend_from_slice(&r.payload);
        assert!(h.published().is_empty());
        if !b.more {
            answer_block(&mut h, &r, ResponseType::Changed, Some(b));
            break;
        }
        answer_block(&mut h, &r, ResponseType::Continue, Some(b));
        let mut sent = h.sent();
        assert_eq!(sent.len(), 1, "one block at a time, nothing interleaved");
        r = sent.pop().unwrap();
    }
    assert_eq!(nums, [2, 3, 4, 5]);
    assert_eq!(got, body);
    let p = h.published();
    assert_eq!(
        p[0].1,
        json!({"reqID": 1, "msgType": "write", "data": {"reqPath": "/5/0/0", "code": "2.04", "codeMsg": "changed"}})
    );
    // Now the held read goes out.
    let read = h.sent().pop().unwrap();
    assert_eq!(
        (read.header.code, codec::uri_path(&read).unwrap()),
        (MessageClass::Request(RequestType::Get), vec!["3".to_string(), "0".into(), "0".into()])
    );
    assert!(codec::Block::of(&read, CoapOption::Block1).is_none());
}

#[test]
fn a_configured_block_size_and_small_writes_whole() {
    let mut h = H::new(Lwm2mSettings { block_size: 256, ..Lwm2mSettings::default() });
    h.register("fw", "U");
    h.published();
    write_firmware(&mut h, "fw", 1, &firmware(256));
    let r = h.sent().pop().unwrap();
    assert!(codec::Block::of(&r, CoapOption::Block1).is_none());
    assert_eq!(r.payload.len(), 256);
    answer_block(&mut h, &r, ResponseType::Changed, None);
    h.published();
    write_firmware(&mut h, "fw", 2, &firmware(257));
    let r = h.sent().pop().unwrap();
    assert_eq!((block1(&r), r.payload.len()), (codec::Block { num: 0, more: true, szx: 4 }, 256));
}

#[test]
fn errors_and_timeouts_mid_transfer_answer_the_command() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("fw", "U");
    h.published();
    // 4.13 on block 1: the command's result, and the next command goes out.
    write_firmware(&mut h, "fw", 1, &firmware(5000));
    let r0 = h.sent().pop().unwrap();
    h.command("fw", json!({"reqID": 2, "msgType": "read", "data": {"path": "/3/0/0"}}));
    answer_block(&mut h, &r0, ResponseType::Continue, Some(block1(&r0)));
    let r1 = h.sent().pop().unwrap();
    assert_eq!(block1(&r1).num, 1);
    answer_block(&mut h, &r1, ResponseType::RequestEntityTooLarge, None);
    let p = h.published();
    assert_eq!(
        (p[0].1["reqID"].clone(), p[0].1["data"]["code"].clone(), p[0].1["data"]["codeMsg"].clone()),
        (json!(1), json!("4.13"), json!("request_entity_too_large"))
    );
    let read = h.sent().pop().unwrap();
    answer_block(&mut h, &read, ResponseType::Content, None);
    assert_eq!(h.published()[0].1["reqID"], 2);

    // A 2.31 that names another block abandons the write.
    write_firmware(&mut h, "fw", 3, &firmware(5000));
    let r0 = h.sent().pop().unwrap();
    answer_block(&mut h, &r0, ResponseType::Continue, Some(codec::Block { num: 3, more: true, szx: 6 }));
    assert_eq!(h.published()[0].1["data"]["code"], "bad_block");

    // No answer to block 1: coap_timeout for the write, then the held command goes.
    write_firmware(&mut h, "fw", 4, &firmware(5000));
    let r0 = h.sent().pop().unwrap();
    answer_block(&mut h, &r0, ResponseType::Continue, Some(block1(&r0)));
    h.sent();
    h.command("fw", json!({"reqID": 5, "msgType": "read", "data": {"path": "/3/0/0"}}));
    let mut result = None;
    while let Some(t) = h.s.poll_timeout() {
        if t > h.now + Duration::from_secs(200) {
            break;
        }
        h.now = t;
        h.s.handle_timeout(h.now);
        if let Some((_, j)) = h.published().pop() {
            result = Some(j);
            break;
        }
    }
    let result = result.expect("a result for the write");
    assert_eq!((result["reqID"].clone(), result["data"]["code"].clone()), (json!(4), json!("coap_timeout")));
    let sent = h.sent();
    let read = sent.last().unwrap();
    assert_eq!(read.header.code, MessageClass::Request(RequestType::Get));
}

#[test]
fn a_write_beyond_the_bound_is_refused_at_once() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("fw", "U");
    h.published();
    write_firmware(&mut h, "fw", 1, &firmware(256 * 1024 + 1));
    assert!(h.sent().is_empty());
    assert_eq!(h.published()[0].1["data"]["code"], "payload_too_large");
}

/// A response to `r` from the device: block `num` of `body` in blocks of 16 bytes, with an
/// Observe number if given.
fn block2_answer(r: &Packet, kind: MessageType, body: &[u8], num: usize, observe: Option<u32>) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.message_id = if kind == MessageType::Acknowledgement { r.header.message_id } else { 900 + num as u16 };
    p.header.code = MessageClass::Response(ResponseType::Content);
    p.set_token(r.get_token().to_vec());
    if let Some(o) = observe {
        p.add_option(CoapOption::Observe, codec::encode_uint(o));
    }
    let chunks: Vec<&[u8]> = body.chunks(16).collect();
    let block = codec::Block { num: num as u32, more: num + 1 < chunks.len(), szx: 0 };
    p.add_option(CoapOption::Block2, codec::encode_uint(block.encode()));
    p.payload = chunks[num].to_vec();
    p
}

#[test]
fn an_observe_answered_in_blocks_and_a_notification_in_blocks_are_reassembled() {
    let mut h = H::new(Lwm2mSettings::default());
    h.register("obs", "U");
    h.published();
    h.command("obs", json!({"reqID": 3, "msgType": "observe", "data": {"path": "/3/0/0"}}));
    let observe = h.sent().pop().unwrap();
    // The Observe is answered in three blocks: the later two are plain GETs (RFC 7959 §3.4).
    let first = "0123456789abcdef".repeat(3);
    h.send(block2_answer(&observe, MessageType::Acknowledgement, first.as_bytes(), 0, Some(7)));
    for num in 1..3 {
        let get = h.sent().pop().unwrap();
        assert_eq!(codec::Block::of(&get, CoapOption::Block2).unwrap().unwrap().num as usize, num);
        assert!(get.get_option(CoapOption::Observe).is_none());
        assert_ne!(get.get_token(), observe.get_token());
        h.send(block2_answer(&get, MessageType::Acknowledgement, first.as_bytes(), num, None));
    }
    let p = h.published();
    assert_eq!(
        (p.len(), &p[0].1["msgType"], &p[0].1["data"]["content"][0]["value"]),
        (1, &json!("observe"), &json!(first))
    );

    // A notification under the Observe's token, in blocks: fetched and published whole.
    let second = "fedcba9876543210".repeat(2) + "xyz";
    h.send(block2_answer(&observe, MessageType::NonConfirmable, second.as_bytes(), 0, Some(8)));
    assert!(h.published().is_empty(), "not before the last block");
    let get = h.sent().pop().unwrap();
    assert_eq!(codec::uri_path(&get).unwrap(), ["3", "0", "0"]);
    h.send(block2_answer(&get, MessageType::Acknowledgement, second.as_bytes(), 1, None));
    let get = h.sent().pop().unwrap();
    h.send(block2_answer(&get, MessageType::Acknowledgement, second.as_bytes(), 2, None));
    let p = h.published();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].0.as_str(), &p[0].1["msgType"], &p[0].1["seqNum"]),
        ("lwm2m/obs/up/notify", &json!("notify"), &json!(8))
    );
    assert_eq!(p[0].1["data"]["content"][0]["value"], json!(second));
    assert_eq!(p[0].1["reqID"], 3);
}
