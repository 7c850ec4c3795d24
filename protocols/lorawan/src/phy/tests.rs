//! PHYPayload vectors: the lora-packet README's uplink, and JoinRequest / JoinAccept /
//! downlink frames built by lora-packet 0.9.3 (npm) with the keys below.

use super::*;

fn h(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn key(s: &str) -> AesKey {
    AesKey::parse(s).unwrap()
}

const APP_KEY: &str = "00112233445566778899aabbccddeeff";

#[test]
fn uplink_vector_decodes_verifies_and_decrypts() {
    let b = h("40F17DBE4900020001954378762B11FF0D");
    let Frame::Data(f) = decode(&b).unwrap() else { panic!("not data") };
    assert_eq!(f.mtype, MType::UnconfirmedUp);
    assert_eq!(f.dev_addr, DevAddr(0x49be7df1));
    assert_eq!(f.fcnt16, 2);
    assert_eq!(f.fport, Some(1));
    assert_eq!(f.frm_payload.len(), 4);
    let nwk = key("44024241ed4ce9a68c6a8bc055233fd3");
    let app = key("ec925802ae430ca77fd3dd73cb2cc588");
    assert!(data_mic_ok(&b, &nwk, 2));
    assert!(!data_mic_ok(&b, &nwk, 0x10002), "the MIC covers the upper counter bits");
    assert!(!data_mic_ok(&b, &app, 2));
    assert_eq!(decrypt_frm_payload(&b, &nwk, &app, 2), b"test");
}

#[test]
fn join_request_vector() {
    let b = h("00010000d07ed5b37030051c000ba304003412fdd72e7b");
    let Frame::JoinRequest(jr) = decode(&b).unwrap() else { panic!("not a join request") };
    assert_eq!(jr.join_eui, JoinEui(0x70b3d57ed0000001));
    assert_eq!(jr.dev_eui, DevEui(0x0004a30b001c0530));
    assert_eq!(jr.dev_nonce, 0x1234);
    assert!(join_request_mic_ok(&b, &key(APP_KEY)));
    assert!(!join_request_mic_ok(&b, &key("00112233445566778899aabbccddeefe")));
}

#[test]
fn join_accept_and_session_keys_match_lora_packet() {
    let f = JoinAcceptFields {
        join_nonce: 0x010203,
        net_id: 0x000013,
        dev_addr: DevAddr(0x26011234),
        dl_settings: 0,
        rx_delay: 1,
    };
    assert_eq!(join_accept(&key(APP_KEY), &f), h("2037157a5b29fd9e8f79b933d790553277"));
    let (nwk, app) = derive_session_keys(&key(APP_KEY), 0x010203, 0x000013, 0x1234);
    assert_eq!(nwk, key("3a85c7a9c4f565c9620fc636dc4b2945"));
    assert_eq!(app, key("1f69d719dc65bbd9e559581ce4a203ee"));
}

#[test]
fn downlink_matches_lora_packet() {
    let nwk = key("3a85c7a9c4f565c9620fc636dc4b2945");
    let app = key("1f69d719dc65bbd9e559581ce4a203ee");
    let d = Downlink {
        dev_addr: DevAddr(0x26011234),
        confirmed: true,
        ack: true,
        fpending: false,
        adr: false,
        fcnt: 5,
        mac: &[],
        data: Some((10, b"hi")),
    };
    let b = build_downlink(&d, &nwk, &app).unwrap();
    assert_eq!(b, h("a0341201262005000a48128b547900"));
    let Frame::Data(f) = decode(&b).unwrap() else { panic!() };
    assert!(f.ack() && f.confirmed() && !f.uplink());
}

#[test]
fn downlink_with_fopts_round_trips() {
    let nwk = key("3a85c7a9c4f565c9620fc636dc4b2945");
    let app = key("1f69d719dc65bbd9e559581ce4a203ee");
    let mac = [link_check_ans(20, 3), device_time_ans(std::time::Duration::from_millis(1_500))];
    let d = Downlink {
        dev_addr: DevAddr(1),
        confirmed: false,
        ack: false,
        fpending: true,
        adr: false,
        fcnt: 70_000,
        mac: &mac,
        data: Some((2, b"abc")),
    };
    let b = build_downlink(&d, &nwk, &app).unwrap();
    let Frame::Data(f) = decode(&b).unwrap() else { panic!() };
    assert_eq!(f.fopts, &[0x02, 20, 3, 0x0d, 1, 0, 0, 0, 128]);
    assert_eq!(f.fcnt16, 70_000u32 as u16);
    assert!(data_mic_ok(&b, &nwk, 70_000));
    assert_eq!(decrypt_frm_payload(&b, &nwk, &app, 70_000), b"abc");
}

#[test]
fn malformed_frames_are_errors() {
    assert_eq!(decode(&[]), Err(PhyError::Short(0)));
    assert!(matches!(decode(&[0x41; 20]), Err(PhyError::Major(1))));
    assert!(matches!(decode(&[0x00; 22]), Err(PhyError::JoinRequestLength(22))));
    assert!(matches!(decode(&[0x40, 1, 2, 3, 4, 0x0f, 0, 0, 1, 2, 3, 4]), Err(PhyError::FOpts { .. })));
    assert!(matches!(decode(&[0x20; 17]), Err(PhyError::Unsupported(MType::JoinAccept))));
    assert!(matches!(decode(&[0x40; 300]), Err(PhyError::TooLong { .. })));
    // No FPort: header and MIC only.
    let Frame::Data(f) = decode(&[0x40, 1, 2, 3, 4, 0, 0, 0, 1, 2, 3, 4]).unwrap() else { panic!() };
    assert_eq!((f.fport, f.frm_payload.len()), (None, 0));
}

#[test]
fn uplink_mac_commands() {
    let cmds = parse_uplink_mac(&[0x02, 0x03, 0x07, 0x06, 200, 0x3f, 0x0d, 0x99, 0x02]);
    assert_eq!(
        cmds,
        vec![
            UplinkMac::LinkCheckReq,
            UplinkMac::LinkAdrAns { status: 7 },
            UplinkMac::DevStatusAns { battery: 200, margin: -1 },
            UplinkMac::DeviceTimeReq
        ]
    );
    // Truncated payloads stop the parse.
    assert_eq!(parse_uplink_mac(&[0x03]), vec![]);
}

proptest::proptest! {
    #[test]
    fn decode_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = decode(&b);
        let k = AesKey([7; 16]);
        let _ = decrypt_frm_payload(&b, &k, &k, 1);
        let _ = data_mic_ok(&b, &k, 1);
        let _ = join_request_mic_ok(&b, &k);
        let _ = parse_uplink_mac(&b);
    }
}
