//! Datagram vectors in the shapes of `PROTOCOL.TXT` (v2) and real forwarders' output.

use super::*;

const EUI: [u8; 8] = [0xaa, 0x55, 0x5a, 0x00, 0x00, 0x00, 0x01, 0x01];

fn push(json: &str) -> Vec<u8> {
    let mut b = vec![2, 0x12, 0x34, 0x00];
    b.extend_from_slice(&EUI);
    b.extend_from_slice(json.as_bytes());
    b
}

#[test]
fn push_data_with_rxpk_and_stat() {
    let b = push(
        r#"{"rxpk":[{"time":"2013-03-31T16:21:17.528002Z","tmst":3512348611,"chan":2,"rfch":0,"freq":866.349812,"stat":1,"modu":"LORA","datr":"SF7BW125","codr":"4/6","rssi":-35,"lsnr":5.1,"size":32,"data":"-DS4CGaDCdG+48eJNM3Vai-zDpsR71Pn9CPA9uCON84"},
                 {"time":"2013-03-31T16:21:17.530974Z","tmst":3512348514,"chan":9,"rfch":1,"freq":869.1,"stat":1,"modu":"FSK","datr":50000,"rssi":-75,"size":16,"data":"VEVTVF9QQUNLRVRfMTIzNA=="}],
           "stat":{"time":"2014-01-12 08:59:28 GMT","lati":46.24000,"long":3.25230,"alti":145,"rxnb":2,"rxok":2,"rxfw":2,"ackr":100.0,"dwnb":2,"txnb":2}}"#,
    );
    let Packet::PushData { version, token, gateway, payload } = decode(&b).unwrap() else { panic!() };
    assert_eq!((version, token, gateway), (2, 0x1234, GatewayEui(EUI)));
    assert_eq!(payload.rxpk.len(), 2);
    let r = &payload.rxpk[0];
    assert_eq!((r.tmst, r.chan, r.stat, r.rssi, r.modu), (3_512_348_611, 2, 1, Some(-35), Modulation::Lora));
    assert_eq!(r.datr.sf_bw(), Some((7, 125)));
    // Not base64 (URL alphabet): the frame is unreadable, not the datagram.
    assert_eq!(r.payload(), None);
    assert_eq!(payload.rxpk[1].datr, DataRate::Fsk(50_000));
    assert_eq!(payload.rxpk[1].payload().unwrap(), b"TEST_PACKET_1234");
    let stat = payload.stat.unwrap();
    assert_eq!((stat.rxnb, stat.rxok, stat.txnb), (2, 2, 2));
    assert_eq!(gateway.to_string(), "aa555a0000000101");
}

#[test]
fn multi_antenna_rsig() {
    let b = push(
        r#"{"rxpk":[{"tmst":1,"freq":868.1,"modu":"LORA","datr":"SF12BW125","codr":"4/5","size":2,"data":"AAE=",
            "rsig":[{"ant":0,"chan":3,"rssic":-110,"lsnr":-7.5,"etime":"abc"},{"ant":1,"chan":3,"rssic":-104,"lsnr":-3.25}]}]}"#,
    );
    let Packet::PushData { payload, .. } = decode(&b).unwrap() else { panic!() };
    let r = &payload.rxpk[0];
    assert_eq!(r.rsig.len(), 2);
    assert_eq!((r.best_rssi(), r.best_snr()), (-104, -3.25));
    assert_eq!(r.stat, 1, "stat defaults to CRC OK");
}

#[test]
fn pull_and_acks_round_trip() {
    for p in [
        Packet::PushAck { version: 2, token: 7 },
        Packet::PullData { version: 2, token: 8, gateway: GatewayEui(EUI) },
        Packet::PullAck { version: 2, token: 9 },
        Packet::TxAck { version: 2, token: 10, gateway: GatewayEui(EUI), error: None },
        Packet::TxAck { version: 2, token: 11, gateway: GatewayEui(EUI), error: Some(TxAckError::TooLate) },
        Packet::PushData { version: 2, token: 1, gateway: GatewayEui(EUI), payload: PushPayload::default() },
    ] {
        assert_eq!(decode(&encode(&p)).unwrap(), p, "{}", p.name());
    }
    assert_eq!(encode(&Packet::PullAck { version: 2, token: 0xabcd }), vec![2, 0xab, 0xcd, 4]);
}

#[test]
fn pull_resp_txpk() {
    let txpk = Txpk {
        imme: false,
        tmst: Some(4_294_967_000u32.wrapping_add(1_000_000)),
        tmms: None,
        freq: 869.525,
        rfch: 0,
        powe: Some(14),
        modu: Modulation::Lora,
        datr: DataRate::lora(9, 125),
        codr: Some("4/5".into()),
        fdev: None,
        ipol: true,
        prea: None,
        size: 2,
        data: "AAE=".into(),
        ncrc: false,
    };
    let p = Packet::PullResp { version: 2, token: 3, txpk };
    let b = encode(&p);
    let text = std::str::from_utf8(&b[4..]).unwrap();
    assert!(text.starts_with(r#"{"txpk":{"tmst":999704,"freq":869.525"#), "{text}");
    assert!(text.contains(r#""datr":"SF9BW125""#) && text.contains(r#""ipol":true"#), "{text}");
    assert_eq!(decode(&b).unwrap(), p);
}

#[test]
fn tx_ack_forms() {
    let mut b = vec![2, 0, 1, 5];
    b.extend_from_slice(&EUI);
    // Empty (v2 forwarders before TX_ACK JSON) and NUL-terminated JSON.
    assert!(matches!(decode(&b).unwrap(), Packet::TxAck { error: None, .. }));
    let mut with = b.clone();
    with.extend_from_slice(b"{\"txpk_ack\":{\"error\":\"COLLISION_PACKET\"}}\0");
    assert!(matches!(decode(&with).unwrap(), Packet::TxAck { error: Some(TxAckError::CollisionPacket), .. }));
    let mut none = b.clone();
    none.extend_from_slice(b"{\"txpk_ack\":{\"error\":\"NONE\"}}");
    assert!(matches!(decode(&none).unwrap(), Packet::TxAck { error: None, .. }));
    let mut odd = b.clone();
    odd.extend_from_slice(b"{\"txpk_ack\":{\"error\":\"WHATEVER\",\"warn\":\"TX_POWER\"}}");
    assert!(matches!(decode(&odd).unwrap(), Packet::TxAck { error: Some(TxAckError::Unknown), .. }));
}

#[test]
fn malformed_datagrams_are_errors() {
    assert_eq!(decode(&[2, 0, 0]), Err(DecodeError::Short(3)));
    assert!(decode(&[3, 0, 0, 0]).unwrap_err().is_unknown_version());
    assert_eq!(decode(&[2, 0, 0, 9]), Err(DecodeError::UnknownIdentifier(9)));
    assert_eq!(decode(&[2, 0, 0, 0, 1, 2]), Err(DecodeError::Short(6)));
    assert!(matches!(decode(&push("{")), Err(DecodeError::Json { packet: "PUSH_DATA", .. })));
    assert!(matches!(decode(&push(r#"{"rxpk":[{"tmst":"x"}]}"#)), Err(DecodeError::Json { .. })));
    assert!(matches!(decode(&[2, 0, 0, 1, 0]), Err(DecodeError::Trailing { .. })));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(decode(&push(&deep)), Err(DecodeError::Json { .. })));
}

proptest::proptest! {
    #[test]
    fn decode_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let _ = decode(&b);
    }

    #[test]
    fn decode_never_panics_on_headers(id in 0u8..8, tail in ".{0,64}") {
        let mut b = vec![2, 0, 0, id];
        b.extend_from_slice(&EUI);
        b.extend_from_slice(tail.as_bytes());
        let _ = decode(&b);
    }
}
