//! The `line` codec's conformance suite: the behaviour tests of [`super::line`], written
//! against any codec that claims to be `line` (with `keep_alive = 60`), so the same
//! assertions run against the Rust codec here and the WebAssembly build of it in
//! `roost-plugins`. Each function panics on the first difference.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing

use bytes::Bytes;

use crate::frame::{ConnectFrame, Downlink, Refused, Uplink};
use crate::{CodecTester, QoS};

/// Makes a fresh tester around a fresh `line` codec.
pub type NewTester<'a> = &'a dyn Fn() -> CodecTester;

/// Every test of the suite.
pub fn all(new: NewTester<'_>) {
    commands_decode_across_reads(new);
    bad_lines_are_errors(new);
    answers_encode_as_lines(new);
}

pub fn commands_decode_across_reads(new: NewTester<'_>) {
    let mut t = new();
    assert_eq!(
        t.feed(b"CONNECT dev-1 alice s3cret\r\nPUB a/b hello ").expect("decodes"),
        [Uplink::Connect(ConnectFrame {
            username: Some("alice".into()),
            password: Some(Bytes::from_static(b"s3cret")),
            ..ConnectFrame::new("dev-1", 60)
        })]
    );
    assert_eq!(
        t.feed(b"world\nSUB c/# 1\nACK 7\nPING\nQUIT\n").expect("decodes"),
        [
            Uplink::Publish {
                id: 0,
                topic: "a/b".into(),
                payload: Bytes::from_static(b"hello world"),
                qos: QoS::AtMostOnce,
                retain: false
            },
            Uplink::Subscribe { id: 0, filter: "c/#".into(), qos: QoS::AtLeastOnce },
            Uplink::Ack { id: 7 },
            Uplink::Ping,
            Uplink::Disconnect,
        ]
    );
    assert!(t.buffered().is_empty());
}

pub fn bad_lines_are_errors(new: NewTester<'_>) {
    for bad in [&b"HELLO\n"[..], b"SUB\n", b"SUB a 2\n", b"ACK x\n", b"PUB\n", b"\xff\n"] {
        assert!(new().feed(bad).is_err(), "{bad:?}");
    }
}

pub fn answers_encode_as_lines(new: NewTester<'_>) {
    let mut t = new();
    assert_eq!(t.encode(Downlink::SubAck { id: 0, result: Ok(QoS::AtLeastOnce) }).expect("encodes"), "OK 1\n");
    assert_eq!(
        t.encode(Downlink::PubAck { id: 0, result: Err(Refused::NotAuthorized) }).expect("encodes"),
        "ERR not authorized\n"
    );
    let msg = Downlink::Publish {
        id: 3,
        topic: "x/y".into(),
        payload: "on".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        dup: false,
    };
    assert_eq!(t.encode(msg).expect("encodes"), "MSG 3 x/y on\n");
    let two_lines = Downlink::Publish {
        id: 0,
        topic: "x".into(),
        payload: "a\nb".into(),
        qos: QoS::AtMostOnce,
        retain: false,
        dup: false,
    };
    assert!(t.encode(two_lines).is_err());
}
