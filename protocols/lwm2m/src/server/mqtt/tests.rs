use super::*;

fn opts(p: &Packet, o: CoapOption) -> Vec<String> {
    p.get_option(o).map(|v| v.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()).unwrap_or_default()
}

#[test]
fn commands_become_requests() {
    let c = parse_command(br#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/0"}}"#, "/").unwrap();
    assert_eq!(c.request.header.code, MessageClass::Request(RequestType::Get));
    assert_eq!(opts(&c.request, CoapOption::UriPath), ["3", "0", "0"]);
    assert_eq!(c.req_id, json!(1));

    let c = parse_command(
        br#"{"reqID":2,"msgType":"write","data":{"path":"/3/0/13","type":"Time","value":1700000000}}"#,
        "/",
    )
    .unwrap();
    assert_eq!(c.request.header.code, MessageClass::Request(RequestType::Put));
    assert_eq!(c.request.payload, b"1700000000");

    let c = parse_command(
        br#"{"reqID":3,"msgType":"write","data":{"basePath":"/3/0","content":[{"path":"14","type":"String","value":"+02"},{"path":"15","type":"String","value":"UTC"}]}}"#,
        "/",
    )
    .unwrap();
    assert_eq!(c.request.header.code, MessageClass::Request(RequestType::Post));
    assert_eq!(
        c.request.get_option(CoapOption::ContentFormat).and_then(|v| v.front().cloned()),
        Some(vec![0x2d, 0x16]),
        "TLV (11542)"
    );
    let records =
        crate::content::decode(crate::types::format::TLV, "/3/0".parse().unwrap(), &c.request.payload, &|_| {
            Some(crate::types::Kind::String)
        })
        .unwrap();
    let got: Vec<(String, crate::types::Value)> = records.into_iter().map(|r| (r.path.to_string(), r.value)).collect();
    assert_eq!(
        got,
        [
            ("/3/0/14".into(), crate::types::Value::String("+02".into())),
            ("/3/0/15".into(), crate::types::Value::String("UTC".into()))
        ]
    );

    let c = parse_command(
        br#"{"reqID":4,"msgType":"write-attr","data":{"path":"/3303/0/5700","pmin":"5","pmax":60,"gt":""}}"#,
        "/",
    )
    .unwrap();
    assert_eq!(opts(&c.request, CoapOption::UriQuery), ["pmin=5", "pmax=60"]);

    let c =
        parse_command(br#"{"reqID":5,"msgType":"execute","data":{"path":"/3/0/4","args":"0='x'"}}"#, "/lwm2m").unwrap();
    assert_eq!(opts(&c.request, CoapOption::UriPath), ["lwm2m", "3", "0", "4"]);
    assert_eq!(c.request.payload, b"0='x'");

    let c = parse_command(
        br#"{"reqID":6,"msgType":"write","encoding":"hex","data":{"path":"/5/0/0","type":"Opaque","value":"0aFF"}}"#,
        "/",
    )
    .unwrap();
    assert_eq!(c.request.payload, [0x0a, 0xff]);
    assert_eq!(c.kind, CommandKind::Plain);

    let c = parse_command(br#"{"msgType":"cancel-observe","data":{"path":"/3/0"}}"#, "/").unwrap();
    assert_eq!(c.kind, CommandKind::CancelObserve);
    assert_eq!(c.req_id, Json::Null);
}

#[test]
fn bad_commands_are_answered() {
    for bad in [
        &br#"not json"#[..],
        br#"{"reqID":1,"msgType":"fly","data":{"path":"/3/0/0"}}"#,
        br#"{"reqID":1,"msgType":"read","data":{"path":"/x"}}"#,
        br#"{"reqID":1,"msgType":"write","data":{"path":"/3/0/1","type":"Integer","value":"z"}}"#,
        br#"{"reqID":1,"msgType":"write","data":{"path":"/3/0/1","type":"Nope","value":"z"}}"#,
        br#"{"reqID":1,"msgType":"execute","data":{"path":"/3/0"}}"#,
        br#"{"reqID":1,"msgType":"write","encoding":"hex","data":{"path":"/3/0/1","type":"Opaque","value":"zz"}}"#,
        br#"{"reqID":1,"msgType":"write-attr","data":{"path":"/3/0/1","pmin":[1]}}"#,
    ] {
        let e = parse_command(bad, "/").unwrap_err();
        assert_eq!(e.to_json()["data"]["code"], "4.00", "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn responses_become_json() {
    let mut r = Packet::new();
    r.header.code = MessageClass::Response(ResponseType::Content);
    r.payload = b"Roost".to_vec();
    let d = response_data("/3/0/0", CommandKind::Plain, &r, &|_| None);
    assert_eq!(
        d,
        json!({"reqPath": "/3/0/0", "code": "2.05", "codeMsg": "content", "content": [{"path": "/3/0/0", "value": "Roost"}]})
    );
    let d = response_data("/3/0/9", CommandKind::Plain, &r, &|_| Some(Kind::Integer));
    assert_eq!(d["code"], "decode_error");
    r.payload = b"</3/0>;pmin=10,</3/0/1>".to_vec();
    let d = response_data("/3/0", CommandKind::Discover, &r, &|_| None);
    assert_eq!(d["content"], json!(["</3/0>;pmin=10", "</3/0/1>"]));
    r.header.code = MessageClass::Response(ResponseType::NotFound);
    assert_eq!(response_data("/9", CommandKind::Plain, &r, &|_| None)["code"], "4.04");
}
