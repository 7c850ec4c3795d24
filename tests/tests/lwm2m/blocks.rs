//! LwM2M block-wise conformance (RFC 7959) with peers whose buffer is 16 bytes, as a small
//! C client's is (issue 26): a Register and an Update in Block1 blocks from libcoap's
//! `coap-client -b 16`; a write answered 4.13 with a smaller Block1 size, retried in it; a
//! 1,500-byte observation in 16-byte Block2 blocks fetched in block 0's format, and a block
//! in another format refused; reads asking for a format the device announced (`ct`).
//! The device side of the last three is a raw CoAP peer on its own UDP socket
//! (tests/src/lwm2m.rs), driven block by block so each step is seen.

use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_coap::codec::{self, Block};
use roost_e2e::lwm2m::Device;
use roost_e2e::{QUIET, TestBroker, WAIT};
use serde_json::json;

use super::{app, command, next};

/// libcoap's client without TLS, as tests/tests/coap.rs runs it.
async fn coap_client(args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("coap-client-notls").args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("coap-client-notls finished within 20 s")
    .expect("coap-client-notls runs (scripts/test installs libcoap3-bin)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A link list of `n` object instances: `</>;rt="oma.lwm2m",</1/0>,</3/0>,</3303/0>,...`.
fn links(n: u16) -> (String, Vec<String>) {
    let objects: Vec<String> = [1, 3].into_iter().chain(3300..3300 + n).map(|o| format!("/{o}/0")).collect();
    let body = std::iter::once("</>;rt=\"oma.lwm2m\"".to_string())
        .chain(objects.iter().map(|o| format!("<{o}>")))
        .collect::<Vec<_>>()
        .join(",");
    (body, objects)
}

#[tokio::test]
async fn register_and_update_in_16_byte_block1_blocks_give_the_whole_object_list() {
    let broker = TestBroker::start().await;
    let mut app = app(&broker, "app").await;
    let (body, objects) = links(20);
    assert!(body.len() > 200, "many blocks: {}", body.len());
    let url = format!("coap://{}/rd?ep=blk-1&lt=60&lwm2m=1.1&b=U", broker.lwm2m_addr());
    let out = coap_client(&["-m", "post", "-b", "16", "-t", "40", "-e", &body, "-v", "7", &url]).await;
    let (topic, ev) = next(&mut app).await;
    assert_eq!((topic.as_str(), ev["msgType"].as_str()), ("lwm2m/blk-1/up/resp", Some("register")), "{ev}");
    assert_eq!(ev["data"]["objectList"], json!(objects), "{out}");
    let (status, client) = broker.api().get("/api/v1/clients/blk-1").await;
    assert_eq!(status, 200, "{client}");
    // libcoap logs each response; the blocks before the last were answered 2.31 Continue.
    assert!(out.contains("2.31"), "no 2.31 Continue in the client's log:\n{out}");
    let id = out
        .split("Location-Path:")
        .nth(2)
        .and_then(|rest| rest.split([' ', ',', ']']).next())
        .unwrap_or_else(|| panic!("no Location-Path in the client's log:\n{out}"))
        .to_string();

    // An Update with a new, longer object list, also in blocks: 2.04 with the whole list.
    let (body, objects) = links(30);
    let url = format!("coap://{}/rd/{id}", broker.lwm2m_addr());
    let out = coap_client(&["-m", "post", "-b", "16", "-t", "40", "-e", &body, "-v", "7", &url]).await;
    let (topic, ev) = next(&mut app).await;
    assert_eq!((topic.as_str(), ev["msgType"].as_str()), ("lwm2m/blk-1/up/update", Some("update")), "{ev}\n{out}");
    assert_eq!(ev["data"]["objectList"], json!(objects));
    let (_, devices) = broker.api().get("/api/v1/lwm2m/devices/blk-1").await;
    assert!(devices.to_string().contains("/3329/0"), "the API shows the whole list: {devices}");
}

/// A piggybacked answer to `req` with `code`, built up by `f`.
async fn reply(dev: &Device, req: &Packet, code: ResponseType, f: impl FnOnce(&mut Packet)) {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    p.header.message_id = req.header.message_id;
    p.header.code = MessageClass::Response(code);
    p.set_token(req.get_token().to_vec());
    f(&mut p);
    dev.send(&p).await;
}

fn block(p: &Packet, o: CoapOption) -> Option<Block> {
    Block::of(p, o).map(|b| b.expect("a well-formed block option"))
}

fn set_block(p: &mut Packet, o: CoapOption, b: Block) {
    p.add_option(o, codec::encode_uint(b.encode()));
}

async fn registered(broker: &TestBroker, app: &mut roost_e2e::mqtt5::Client5, ep: &str, body: &str) -> Device {
    let mut dev = Device::new(broker.lwm2m_addr()).await;
    let q = [format!("ep={ep}"), "lt=300".into(), "lwm2m=1.1".into(), "b=U".into()];
    let r = dev.request(RequestType::Post, &["rd"], &q, body).await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Created));
    assert_eq!(next(app).await.1["msgType"], "register");
    dev
}

#[tokio::test]
async fn a_4_13_with_a_smaller_block1_size_is_retried_in_it_and_remembered() {
    let broker = TestBroker::start().await;
    let mut app = app(&broker, "app").await;
    let mut dev = registered(&broker, &mut app, "small-1", "</>;rt=\"oma.lwm2m\",</3/0>").await;
    let value = "forty bytes of model name, more than 16.";
    let write = json!({"reqID": 1, "msgType": "write", "data": {"path": "/3/0/1", "type": "String", "value": value}});
    command(&mut app, "small-1", write.clone()).await;
    // 40 bytes go whole (the gateway's block size is 1024); the device can take 16.
    let req = dev.next_request(WAIT).await.expect("the write");
    assert_eq!((block(&req, CoapOption::Block1), req.payload.len()), (None, 40));
    reply(&dev, &req, ResponseType::RequestEntityTooLarge, |p| {
        set_block(p, CoapOption::Block1, Block { num: 0, more: false, szx: 0 })
    })
    .await;
    let serve_blocks = async |dev: &mut Device| {
        let mut got = Vec::new();
        loop {
            let req = dev.next_request(WAIT).await.expect("the next Block1 block");
            let b = block(&req, CoapOption::Block1).expect("a Block1 option");
            assert_eq!((b.num as usize, b.szx), (got.len() / 16, 0), "16-byte blocks in order");
            got.extend_from_slice(&req.payload);
            let code = if b.more { ResponseType::Continue } else { ResponseType::Changed };
            reply(dev, &req, code, |p| set_block(p, CoapOption::Block1, b)).await;
            if !b.more {
                return got;
            }
        }
    };
    assert_eq!(serve_blocks(&mut dev).await, value.as_bytes());
    assert_eq!(
        next(&mut app).await.1,
        json!({"reqID": 1, "msgType": "write", "data": {"reqPath": "/3/0/1", "code": "2.04", "codeMsg": "changed"}})
    );
    // The next write goes in 16-byte blocks from the start.
    command(
        &mut app,
        "small-1",
        json!({"reqID": 2, "msgType": "write", "data": {"path": "/3/0/1", "type": "String", "value": value}}),
    )
    .await;
    assert_eq!(serve_blocks(&mut dev).await, value.as_bytes());
    assert_eq!(next(&mut app).await.1["data"]["code"], "2.04");
}

/// Serves a Block2 response of `body` to `req` and to the gateway's follow-up GETs, each
/// block 0 in `want`, the others in the format asked for by Accept, else in `default`;
/// checks each follow-up asks for `want`. Block 0 carries Observe `observe` if given.
async fn serve_block2(dev: &mut Device, mut req: Packet, body: &[u8], want: u16, default: u16, observe: Option<u32>) {
    let mut num = 0u32;
    loop {
        let accept = codec::uint_option(&req, CoapOption::Accept).map(|a| a.unwrap() as u16);
        if num > 0 {
            assert_eq!(accept, Some(want), "follow-up GET for block {num} asks for block 0's format");
            assert_eq!(block(&req, CoapOption::Block2).map(|b| b.num), Some(num));
        }
        let start = num as usize * 16;
        let end = (start + 16).min(body.len());
        let more = end < body.len();
        reply(dev, &req, ResponseType::Content, |p| {
            if let (Some(o), 0) = (observe, num) {
                p.add_option(CoapOption::Observe, codec::encode_uint(o));
            }
            let format = if num == 0 { want } else { accept.unwrap_or(default) };
            p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(format)));
            set_block(p, CoapOption::Block2, Block { num, more, szx: 0 });
            p.payload = body[start..end].to_vec();
        })
        .await;
        if !more {
            return;
        }
        num += 1;
        req = dev.next_request(WAIT).await.expect("a GET for the next block");
    }
}

#[tokio::test]
async fn a_1500_byte_observation_in_16_byte_blocks_is_exact_and_a_format_change_is_an_error() {
    let broker = TestBroker::start().await;
    let mut app = app(&broker, "app").await;
    let mut dev = registered(&broker, &mut app, "obs-1", "</>;rt=\"oma.lwm2m\",</3/0>").await;
    let value: String = (0..1500).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    command(&mut app, "obs-1", json!({"reqID": 7, "msgType": "observe", "data": {"path": "/3/0/1"}})).await;
    let req = dev.next_request(WAIT).await.expect("the observe");
    let token = req.get_token().to_vec();
    // Text for block 0 (a single resource), TLV for a GET without Accept: the C client's defaults.
    serve_block2(&mut dev, req, value.as_bytes(), 0, 11542, Some(0)).await;
    let (topic, r) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/obs-1/up/resp");
    assert_eq!(r["data"]["content"], json!([{"path": "/3/0/1", "value": value}]), "exact 1,500 bytes");

    // A notification in blocks: fetched the same way, published as the notification.
    let notify = |num_more: bool, seq: u32, payload: &[u8]| {
        let mut p = Packet::new();
        p.header.set_type(MessageType::NonConfirmable);
        p.header.code = MessageClass::Response(ResponseType::Content);
        p.header.message_id = 900 + seq as u16;
        p.set_token(token.clone());
        p.add_option(CoapOption::Observe, codec::encode_uint(seq));
        p.add_option(CoapOption::ContentFormat, codec::encode_uint(0));
        set_block(&mut p, CoapOption::Block2, Block { num: 0, more: num_more, szx: 0 });
        p.payload = payload.to_vec();
        p
    };
    let value2: String = value.chars().rev().collect();
    dev.send(&notify(true, 1, &value2.as_bytes()[..16])).await;
    let req = dev.next_request(WAIT).await.expect("a GET for block 1 of the notification");
    serve_block2_from(&mut dev, req, value2.as_bytes(), 1).await;
    let (topic, n) = next(&mut app).await;
    assert_eq!(
        (topic.as_str(), n["msgType"].as_str(), n["seqNum"].as_u64()),
        ("lwm2m/obs-1/up/notify", Some("notify"), Some(1)),
        "{n}"
    );
    assert_eq!(n["data"]["content"], json!([{"path": "/3/0/1", "value": value2}]));

    // A device that answers block 1 in TLV after block 0 in text: an error result, no value.
    dev.send(&notify(true, 2, &value.as_bytes()[..16])).await;
    let req = dev.next_request(WAIT).await.expect("a GET for block 1");
    reply(&dev, &req, ResponseType::Content, |p| {
        p.add_option(CoapOption::ContentFormat, codec::encode_uint(11542));
        set_block(p, CoapOption::Block2, Block { num: 1, more: false, szx: 0 });
        p.payload = value.as_bytes()[16..30].to_vec();
    })
    .await;
    let (_, r) = next(&mut app).await;
    assert_eq!(r["data"]["code"], "content_format_changed", "{r}");
    assert!(r["data"].get("content").is_none(), "{r}");
    app.assert_no_publish(QUIET).await;
}

/// Like [`serve_block2`] for a fetch that starts at block `num` (text only).
async fn serve_block2_from(dev: &mut Device, mut req: Packet, body: &[u8], mut num: u32) {
    loop {
        assert_eq!(
            codec::uint_option(&req, CoapOption::Accept).map(|a| a.unwrap()),
            Some(0),
            "Accept: block 0's format"
        );
        assert_eq!(block(&req, CoapOption::Block2).map(|b| b.num), Some(num));
        let start = num as usize * 16;
        let end = (start + 16).min(body.len());
        let more = end < body.len();
        reply(dev, &req, ResponseType::Content, |p| {
            p.add_option(CoapOption::ContentFormat, codec::encode_uint(0));
            set_block(p, CoapOption::Block2, Block { num, more, szx: 0 });
            p.payload = body[start..end].to_vec();
        })
        .await;
        if !more {
            return;
        }
        num += 1;
        req = dev.next_request(WAIT).await.expect("a GET for the next block");
    }
}

#[tokio::test]
async fn reads_ask_for_a_format_the_device_announced() {
    let broker = TestBroker::start().await;
    let mut app = app(&broker, "app").await;
    // A SenML-JSON-only client (`ct=110`): a read without Accept would get 5.00 from it.
    let mut dev = registered(&broker, &mut app, "senml-1", "</>;rt=\"oma.lwm2m\";ct=110,</3/0>").await;
    command(&mut app, "senml-1", json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    let req = dev.next_request(WAIT).await.expect("the read");
    let accept = codec::uint_option(&req, CoapOption::Accept).map(|a| a.unwrap());
    if accept == Some(110) {
        reply(&dev, &req, ResponseType::Content, |p| {
            p.add_option(CoapOption::ContentFormat, codec::encode_uint(110));
            p.payload = br#"[{"bn":"/3/0/0","vs":"C client"}]"#.to_vec();
        })
        .await;
    } else {
        reply(&dev, &req, ResponseType::InternalServerError, |_| {}).await;
    }
    assert_eq!(
        next(&mut app).await.1["data"],
        json!({"reqPath": "/3/0/0", "code": "2.05", "codeMsg": "content", "content": [{"path": "/3/0/0", "value": "C client"}]})
    );
    assert_eq!(accept, Some(110));

    // One announcing nothing is asked for nothing, as before; a read may name a format.
    let mut plain = registered(&broker, &mut app, "plain-1", "</>;rt=\"oma.lwm2m\",</3/0>").await;
    command(&mut app, "plain-1", json!({"reqID": 2, "msgType": "read", "data": {"path": "/3/0/0"}})).await;
    let req = plain.serve_one().await;
    assert_eq!(req.get_option(CoapOption::Accept), None);
    assert_eq!(next(&mut app).await.1["data"]["code"], "2.05");
    command(
        &mut app,
        "plain-1",
        json!({"reqID": 3, "msgType": "read", "data": {"path": "/3/0/0", "accept": "senml-cbor"}}),
    )
    .await;
    let req = plain.serve_one().await;
    assert_eq!(codec::uint_option(&req, CoapOption::Accept).map(|a| a.unwrap()), Some(112));
    next(&mut app).await;
}
