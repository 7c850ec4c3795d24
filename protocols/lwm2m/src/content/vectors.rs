//! Byte-vector tests from the OMA LwM2M TS Core examples (the Device object /3/0 read in
//! TLV, LwM2M JSON, SenML JSON and SenML CBOR), malformed payloads, and property
//! round-trips through every format.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::objects::Registry;

fn p(s: &str) -> Path {
    s.parse().unwrap()
}

fn rec(path: &str, value: Value) -> Record {
    Record { path: p(path), value }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn reg_decode(format: u16, path: &str, payload: &[u8]) -> Result<Vec<Record>, ContentError> {
    let reg = Registry::builtin();
    decode(format, p(path), payload, &|p| reg.kind(p))
}

/// The values of the spec's Device object example, in its order.
fn device() -> Vec<Record> {
    use Value::{Integer as I, Time};
    vec![
        rec("/3/0/0", s("Open Mobile Alliance")),
        rec("/3/0/1", s("Lightweight M2M Client")),
        rec("/3/0/2", s("345000123")),
        rec("/3/0/3", s("1.0")),
        rec("/3/0/6/0", I(1)),
        rec("/3/0/6/1", I(5)),
        rec("/3/0/7/0", I(3800)),
        rec("/3/0/7/1", I(5000)),
        rec("/3/0/8/0", I(125)),
        rec("/3/0/8/1", I(900)),
        rec("/3/0/9", I(100)),
        rec("/3/0/10", I(15)),
        rec("/3/0/11/0", I(0)),
        rec("/3/0/13", Time(0x5182_428F)),
        rec("/3/0/14", s("+02:00")),
        rec("/3/0/16", s("U")),
    ]
}

fn hex(h: &str) -> Vec<u8> {
    let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}

/// TS Core §7.4.3 (1.0.2: §6.4.3.1), Read /3/0 in TLV: 121 bytes.
const DEVICE_TLV: &str = "
    C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
    C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
    C8 02 09 33 34 35 30 30 30 31 32 33
    C3 03 31 2E 30
    86 06 41 00 01 41 01 05
    88 07 08 42 00 0E D8 42 01 13 88
    87 08 41 00 7D 42 01 03 84
    C1 09 64
    C1 0A 0F
    83 0B 41 00 00
    C4 0D 51 82 42 8F
    C6 0E 2B 30 32 3A 30 30
    C1 10 55";

/// TS Core 1.1 §7.4.5, the same read in SenML JSON.
const DEVICE_SENML_JSON: &str = r#"[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]"#;

/// TS Core 1.1 §7.4.6, the same read in SenML CBOR (the labels -2, 0, 2, 3; checked against
/// an independent CBOR encoder).
const DEVICE_SENML_CBOR: &str = "
    90 a3 21 65 2f332f302f 00 61 30 03 74 4f70656e204d6f62696c6520416c6c69616e6365
    a2 00 61 31 03 76 4c69676874776569676874204d324d20436c69656e74
    a2 00 61 32 03 69 333435303030313233
    a2 00 61 33 03 63 312e30
    a2 00 63 362f30 02 01
    a2 00 63 362f31 02 05
    a2 00 63 372f30 02 19 0ed8
    a2 00 63 372f31 02 19 1388
    a2 00 63 382f30 02 18 7d
    a2 00 63 382f31 02 19 0384
    a2 00 61 39 02 18 64
    a2 00 62 3130 02 0f
    a2 00 64 31312f30 02 00
    a2 00 62 3133 02 1a 5182428f
    a2 00 62 3134 03 66 2b30323a3030
    a2 00 62 3136 03 61 55";

/// TS 1.0.2 §6.4.4, the same read in LwM2M JSON.
const DEVICE_LWM2M_JSON: &str = r#"{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"1","sv":"Lightweight M2M Client"},{"n":"2","sv":"345000123"},{"n":"3","sv":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","sv":"+02:00"},{"n":"16","sv":"U"}]}"#;

#[test]
fn device_example_decodes_to_the_same_values_in_every_format() {
    let tlv = hex(DEVICE_TLV);
    assert_eq!(tlv.len(), 121);
    let cbor = hex(DEVICE_SENML_CBOR);
    for (format, payload) in [
        (format::TLV, tlv.clone()),
        (format::TLV_OLD, tlv.clone()),
        (format::SENML_JSON, DEVICE_SENML_JSON.as_bytes().to_vec()),
        (format::SENML_CBOR, cbor.clone()),
        (format::LWM2M_JSON, DEVICE_LWM2M_JSON.as_bytes().to_vec()),
        (format::LWM2M_JSON_OLD, DEVICE_LWM2M_JSON.as_bytes().to_vec()),
    ] {
        assert_eq!(reg_decode(format, "/3/0", &payload), Ok(device()), "format {format}");
    }
    // Read /3 (TS 1.0.2 §6.4.3.2): the same resources in an object instance entry.
    let mut wrapped = hex("08 00 79");
    wrapped.extend_from_slice(&tlv);
    assert_eq!(reg_decode(format::TLV, "/3", &wrapped), Ok(device()));
    // ...and a client that answers /3 with the bare resources means instance 0.
    assert_eq!(reg_decode(format::TLV, "/3", &tlv), Ok(device()));
    // A client that wraps its answer to /3/0 in the instance's own entry.
    assert_eq!(reg_decode(format::TLV, "/3/0", &wrapped), Ok(device()));
}

#[test]
fn device_example_encodes_to_the_spec_bytes() {
    let tlv = hex(DEVICE_TLV);
    assert_eq!(encode(format::TLV, p("/3/0"), &device()), Ok(tlv.clone()));
    let mut wrapped = hex("08 00 79");
    wrapped.extend_from_slice(&tlv);
    assert_eq!(encode(format::TLV, p("/3"), &device()), Ok(wrapped));
    assert_eq!(
        encode(format::SENML_JSON, p("/3/0"), &device()).map(String::from_utf8),
        Ok(Ok(DEVICE_SENML_JSON.to_string()))
    );
    assert_eq!(encode(format::SENML_CBOR, p("/3/0"), &device()), Ok(hex(DEVICE_SENML_CBOR)));
    assert_eq!(
        encode(format::LWM2M_JSON, p("/3/0"), &device()).map(String::from_utf8),
        Ok(Ok(DEVICE_LWM2M_JSON.to_string()))
    );
}

#[test]
fn tlv_shapes_by_path_depth() {
    // Single resource, multiple resource, one resource instance (TS 1.0.2 §6.4.3.1).
    let manufacturer = hex("C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65");
    assert_eq!(reg_decode(format::TLV, "/3/0/0", &manufacturer), Ok(vec![rec("/3/0/0", s("Open Mobile Alliance"))]));
    let power = vec![rec("/3/0/6/0", Value::Integer(1)), rec("/3/0/6/1", Value::Integer(5))];
    assert_eq!(reg_decode(format::TLV, "/3/0/6", &hex("86 06 41 00 01 41 01 05")), Ok(power.clone()));
    assert_eq!(encode(format::TLV, p("/3/0/6"), &power), Ok(hex("86 06 41 00 01 41 01 05")));
    assert_eq!(reg_decode(format::TLV, "/3/0/6/1", &hex("41 01 05")), Ok(vec![power[1].clone()]));
    assert_eq!(encode(format::TLV, p("/3/0/6/1"), &power[1..]), Ok(hex("41 01 05")));

    // Object level: instances 10, 11, 12 of an unknown object, each with resource 1: raw bytes.
    let three = hex("03 0A C1 01 14 03 0B C1 01 15 03 0C C1 01 16");
    let raw = |i: &str, b: u8| rec(&format!("/1024/{i}/1"), Value::Opaque(vec![b]));
    let records = vec![raw("10", 0x14), raw("11", 0x15), raw("12", 0x16)];
    assert_eq!(reg_decode(format::TLV, "/1024", &three), Ok(records.clone()));
    assert_eq!(encode(format::TLV, p("/1024"), &records), Ok(three));

    // 16-bit ids, 16-bit lengths, floats in 4 and 8 bytes, an object link.
    let temp = hex("E4 16 44 41 B4 00 00");
    assert_eq!(reg_decode(format::TLV, "/3303/0/5700", &temp), Ok(vec![rec("/3303/0/5700", Value::Float(22.5))]));
    assert_eq!(encode(format::TLV, p("/3303/0/5700"), &[rec("/3303/0/5700", Value::Float(22.5))]), Ok(temp));
    let tenth = hex("E8 16 44 08 3F B9 99 99 99 99 99 9A");
    assert_eq!(reg_decode(format::TLV, "/3303/0", &tenth), Ok(vec![rec("/3303/0/5700", Value::Float(0.1))]));
    assert_eq!(encode(format::TLV, p("/3303/0"), &[rec("/3303/0/5700", Value::Float(0.1))]), Ok(tenth));
    assert_eq!(
        reg_decode(format::TLV, "/3/0/22/0", &hex("44 00 00 03 00 00")),
        Ok(vec![rec("/3/0/22/0", Value::Objlnk(3, 0))])
    );
    let long = "x".repeat(300);
    let mut long_tlv = hex("D0 0E 01 2C");
    long_tlv.extend_from_slice(long.as_bytes());
    assert_eq!(encode(format::TLV, p("/3/0/14"), &[rec("/3/0/14", s(&long))]), Ok(long_tlv.clone()));
    assert_eq!(reg_decode(format::TLV, "/3/0", &long_tlv), Ok(vec![rec("/3/0/14", s(&long))]));

    // Two instances of the Server object with a boolean, a string and an integer each.
    let servers = vec![
        rec("/1/0/0", Value::Integer(1)),
        rec("/1/0/1", Value::Integer(86400)),
        rec("/1/0/6", Value::Boolean(true)),
        rec("/1/0/7", s("U")),
        rec("/1/2/0", Value::Integer(2)),
        rec("/1/2/7", s("UQ")),
    ];
    let bytes = hex("08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55  07 02 C1 00 02 C2 07 55 51");
    assert_eq!(encode(format::TLV, p("/1"), &servers), Ok(bytes.clone()));
    assert_eq!(reg_decode(format::TLV, "/1", &bytes), Ok(servers));
    // An empty instance (Create without values) and an empty payload.
    assert_eq!(reg_decode(format::TLV, "/1", &hex("08 05 00")), Ok(vec![]));
    assert_eq!(reg_decode(format::TLV, "/3/0", &[]), Ok(vec![]));
}

#[test]
fn tlv_refuses_what_it_cannot_carry() {
    assert!(encode(format::TLV, Path::ROOT, &device()).is_err());
    assert!(encode(format::TLV, p("/3/0"), &[rec("/4/0/1", Value::Integer(1))]).is_err());
    assert!(encode(format::TLV, p("/3/0/1"), &[rec("/3/0/2", s("x"))]).is_err());
    let huge = vec![rec("/3/0/0", Value::Opaque(vec![0; 1 << 24]))];
    assert!(encode(format::TLV, p("/3/0"), &huge).is_err());
}

#[test]
fn malformed_payloads_are_errors() {
    let bad: &[(u16, &str, &[u8])] = &[
        // A 24-bit length of 16 MB with 2 bytes behind it: refused before any allocation.
        (format::TLV, "/3/0", &[0xD8, 0x00, 0xFF, 0xFF, 0xFF, 0x41, 0x42]),
        (format::TLV, "/3/0", &[0xC8]),
        (format::TLV, "/3/0", &[0xE8, 0x16]),
        (format::TLV, "/3/0", &[0xC1, 0x09]),
        (format::TLV, "/3/0", &[0xC3, 0x09, 0x01, 0x02, 0x03]), // a 3-byte integer
        (format::TLV, "/3/0", &[0xC2, 0x00, 0xC3, 0x28]),       // a string that is not UTF-8
        (format::TLV, "/3/0", &[0xC1, 0x0D, 0x00, 0x00]),       // trailing half entry
        (format::TLV, "/3/0/1", &[0x08, 0x01, 0x00]),           // another instance under a resource
        (format::TLV, "/3/0", &[0x41, 0x00, 0x01]),             // a resource instance under an instance
        (format::TLV, "/", &[0x08, 0x00, 0x00]),
        (format::TLV, "/", &[]),
        (format::TLV, "/3303/0/5700", &[0xE3, 0x16, 0x44, 0x00, 0x00, 0x00]), // a 3-byte float
        (format::TLV, "/3311/0/5850", &[0xE1, 0x16, 0xDA, 0x02]),             // boolean 2
        (format::SENML_JSON, "/3/0", b"{"),
        (format::SENML_JSON, "/3/0", b"{}"),
        (format::SENML_JSON, "/3/0", br#"[1]"#),
        (format::SENML_JSON, "/3/0", br#"[{"n":"/3/0/9"}]"#),
        (format::SENML_JSON, "/3/0", br#"[{"n":"/3/0/9","v":"1"}]"#),
        (format::SENML_JSON, "/3/0", br#"[{"n":"/3/0/9","v":1,"vs":"1"}]"#),
        (format::SENML_JSON, "/3/0", br#"[{"n":"/3/0/x","v":1}]"#),
        (format::SENML_JSON, "/3/0", br#"[{"n":"/3/0/1/2/3","v":1}]"#),
        (format::SENML_JSON, "/3/0", br#"[{"v":1}]"#),
        (format::SENML_JSON, "/3/0", br#"[{"n":"/3/0","v":1}]"#),
        (format::LWM2M_JSON, "/3/0", br#"{"e":[{"v":1}]}"#),
        (format::SENML_JSON, "/3/0", br#"[{"n":"/3/0/22","vlo":"3"}]"#),
        (format::SENML_JSON, "/3/0", br#"[{"n":"/3/0/1","vd":"!!"}]"#),
        (format::SENML_JSON, "/3/0", br#"[{"bn":3,"n":"/3/0/1","vs":"a"}]"#),
        (format::SENML_CBOR, "/3/0", &[]),
        (format::SENML_CBOR, "/3/0", &[0xa1]),
        (format::SENML_CBOR, "/3/0", &[0x81, 0xa1, 0x00, 0x65, 0x2f]), // truncated name
        (format::SENML_CBOR, "/3/0", &[0x81, 0xa1, 0x08, 0x5a, 0xff, 0xff, 0xff, 0xff]), // 4 GB vd
        (format::SENML_CBOR, "/3/0", &[0x80, 0x00]),                   // bytes after the array
        (format::SENML_CBOR, "/3/0", &[0x81, 0xa1, 0x02, 0x61, 0x31]), // v is a string
        (format::SENML_CBOR, "/3/0", &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // 2^64 records
        (format::LWM2M_JSON, "/3/0", br#"[]"#),
        (format::LWM2M_JSON, "/3/0", br#"{"bn":"/3/0/"}"#),
        (format::LWM2M_JSON, "/3/0", br#"{"e":[{"n":"9","bv":1}]}"#),
        (format::TEXT, "/3/0/9", b"ten"),
        (format::TEXT, "/3/0", b"10"),
        (format::OPAQUE, "/3/0", b"10"),
    ];
    for (format, path, payload) in bad {
        let r = reg_decode(*format, path, payload);
        assert!(
            matches!(r, Err(ContentError::Malformed { .. } | ContentError::NotSingle(_))),
            "{format} {path} {payload:02x?}: {r:?}"
        );
    }
    assert_eq!(reg_decode(60, "/3/0", b""), Err(ContentError::Unsupported(60)));
    assert_eq!(encode(40, p("/3/0"), &[]), Err(ContentError::Unsupported(40)));
}

#[test]
fn senml_names_types_and_lenient_spellings() {
    // Base name carried over and replaced, a base name without the trailing slash, times
    // read and dropped, unknown labels ignored, an unknown object typed by the payload.
    let json = br#"[{"bn":"/3303/0","bt":1.7e9,"n":"5700","v":21.5,"t":-5,"u":"Cel"},
                    {"bn":"/9999/1/","n":"2","v":7},{"n":"3","vb":true},{"n":"4","vd":"AQID"},
                    {"n":"5","vlo":"3:0"},{"n":"6","v":2.5},{"bn":"/3/0/13","v":1.0}]"#;
    let expect = vec![
        rec("/3303/0/5700", Value::Float(21.5)),
        rec("/9999/1/2", Value::Integer(7)),
        rec("/9999/1/3", Value::Boolean(true)),
        rec("/9999/1/4", Value::Opaque(vec![1, 2, 3])),
        rec("/9999/1/5", Value::Objlnk(3, 0)),
        rec("/9999/1/6", Value::Float(2.5)),
        rec("/3/0/13", Value::Time(1)),
    ];
    assert_eq!(reg_decode(format::SENML_JSON, "/", json), Ok(expect.clone()));
    let cbor = encode(format::SENML_CBOR, Path::ROOT, &expect).unwrap();
    assert_eq!(reg_decode(format::SENML_CBOR, "/", &cbor), Ok(expect.clone()));
    // Indefinite-length array and map, a tag, a half float, an ignored text label.
    let cbor = hex("9f bf 21 67 2f333330332f30 00 64 35373030 02 f9 4d60 63 666f6f c1 00 ff ff");
    assert_eq!(reg_decode(format::SENML_CBOR, "/3303/0", &cbor), Ok(vec![rec("/3303/0/5700", Value::Float(21.5))]));
    // vd in base64url without padding; an Integer resource sent as a float stays exact.
    let json = br#"[{"bn":"/3/0/","n":"9","v":100.0},{"n":"0","vs":"x"},{"bn":"/0/0/","n":"3","vd":"-_8"}]"#;
    assert_eq!(
        reg_decode(format::SENML_JSON, "/", json),
        Ok(vec![
            rec("/3/0/9", Value::Integer(100)),
            rec("/3/0/0", s("x")),
            rec("/0/0/3", Value::Opaque(vec![0xfb, 0xff]))
        ])
    );
    let out = String::from_utf8(
        encode(format::SENML_JSON, p("/0/0/3"), &[rec("/0/0/3", Value::Opaque(vec![0xfb, 0xff]))]).unwrap(),
    )
    .unwrap();
    assert_eq!(out, r#"[{"bn":"/0/0/3","vd":"-_8"}]"#);
    // JSON has no NaN.
    assert!(encode(format::SENML_JSON, p("/3303/0/5700"), &[rec("/3303/0/5700", Value::Float(f64::NAN))]).is_err());
    assert!(
        encode(format::LWM2M_JSON, p("/3303/0/5700"), &[rec("/3303/0/5700", Value::Float(f64::INFINITY))]).is_err()
    );
    let nan = encode(format::SENML_CBOR, p("/3303/0/5700"), &[rec("/3303/0/5700", Value::Float(f64::NAN))]).unwrap();
    assert!(
        matches!(reg_decode(format::SENML_CBOR, "/", &nan).unwrap()[..], [Record { value: Value::Float(f), .. }] if f.is_nan())
    );
}

#[test]
fn lwm2m_json_opaque_objlnk_and_relative_names() {
    let records = vec![
        rec("/0/1/3", Value::Opaque(vec![0, 1, 254])),
        rec("/0/1/17", Value::Objlnk(21, 0)),
        rec("/0/1/1", Value::Boolean(false)),
    ];
    let bytes = encode(format::LWM2M_JSON, p("/0/1"), &records).unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        r#"{"bn":"/0/1/","e":[{"n":"3","sv":"AAH+"},{"n":"17","ov":"21:0"},{"bv":false,"n":"1"}]}"#
    );
    assert_eq!(reg_decode(format::LWM2M_JSON, "/0/1", &bytes), Ok(records));
    // Without bn the names are below the request path.
    assert_eq!(
        reg_decode(format::LWM2M_JSON, "/3/0", br#"{"e":[{"n":"9","v":50}]}"#),
        Ok(vec![rec("/3/0/9", Value::Integer(50))])
    );
    assert_eq!(
        reg_decode(format::LWM2M_JSON, "/3/0/9", br#"{"e":[{"v":50}]}"#),
        Ok(vec![rec("/3/0/9", Value::Integer(50))])
    );
}

#[test]
fn text_and_opaque_encode_one_value() {
    assert_eq!(encode(format::TEXT, p("/3/0/9"), &[rec("/3/0/9", Value::Integer(42))]), Ok(b"42".to_vec()));
    assert_eq!(encode(format::OPAQUE, p("/5/0/0"), &[rec("/5/0/0", Value::Opaque(vec![1, 2]))]), Ok(vec![1, 2]));
    assert!(encode(format::OPAQUE, p("/5/0/0"), &[rec("/5/0/0", Value::Integer(1))]).is_err());
    assert!(encode(format::TEXT, p("/5/0/0"), &[rec("/5/0/0", Value::Opaque(vec![1]))]).is_err());
    assert_eq!(encode(format::TEXT, p("/3/0"), &device()), Err(ContentError::NotSingle(p("/3/0"))));
    assert_eq!(
        encode(format::TEXT, p("/3/0/9"), &[rec("/3/0/8", Value::Integer(1))]),
        Err(ContentError::NotSingle(p("/3/0/9")))
    );
}

fn value() -> impl Strategy<Value = Value> {
    let float = prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO;
    prop_oneof![
        "\\PC{0,20}".prop_map(Value::String),
        any::<i64>().prop_map(Value::Integer),
        any::<u64>().prop_map(Value::UnsignedInteger),
        float.prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Opaque),
        any::<i64>().prop_map(Value::Time),
        (any::<u16>(), any::<u16>()).prop_map(|(o, i)| Value::Objlnk(o, i)),
        "[ -~]{0,20}".prop_map(Value::CoreLink),
    ]
}

/// Records of one object in instances 0..3, unique paths, with a resource instance or not.
fn records() -> impl Strategy<Value = (u16, Vec<Record>)> {
    let one =
        (0u16..3, prop_oneof![0u16..20, 256u16..65535], prop::option::of(prop_oneof![0u16..5, 300u16..65535]), value());
    (0u16..65535, prop::collection::vec(one, 0..12)).prop_map(|(o, items)| {
        let mut map = BTreeMap::new();
        for (i, r, ri, v) in items {
            let ids: Vec<u16> = [o, i, r].into_iter().chain(ri).collect();
            map.insert(Path::new(&ids).unwrap(), v);
        }
        (o, map.into_iter().map(|(path, value)| Record { path, value }).collect())
    })
}

fn sorted(mut v: Vec<Record>) -> Vec<Record> {
    v.sort_by_key(|r| r.path);
    v
}

proptest! {
    #[test]
    fn every_format_round_trips((object, records) in records()) {
        let kinds: HashMap<Path, Kind> = records.iter().map(|r| (r.path, r.value.kind())).collect();
        let kind_of = |p: &Path| kinds.get(p).copied();
        let instance0: Vec<Record> = records.iter().filter(|r| r.path.instance() == Some(0)).cloned().collect();
        for (path, records) in [(Path::new(&[object]).unwrap(), &records), (Path::new(&[object, 0]).unwrap(), &instance0)] {
            for format in [format::TLV, format::LWM2M_JSON, format::SENML_JSON, format::SENML_CBOR] {
                let bytes = encode(format, path, records).unwrap();
                let back = decode(format, path, &bytes, &kind_of).unwrap();
                prop_assert_eq!(sorted(back), records.clone(), "format {} at {}", format, path);
            }
        }
        for r in &records {
            for format in [format::TEXT, format::OPAQUE] {
                if let Ok(bytes) = encode(format, r.path, std::slice::from_ref(r)) {
                    prop_assert_eq!(decode(format, r.path, &bytes, &kind_of).unwrap(), vec![r.clone()]);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(payload in prop::collection::vec(any::<u8>(), 0..200), depth in 0usize..5) {
        let reg = Registry::builtin();
        let path = Path::new(&[3, 0, 6, 1][..depth]).unwrap();
        for format in [format::TLV, format::LWM2M_JSON, format::SENML_JSON, format::SENML_CBOR, format::TEXT, format::OPAQUE] {
            let _ = decode(format, path, &payload, &|p| reg.kind(p));
        }
    }
}
