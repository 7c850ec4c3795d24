//! The network server on a virtual clock: frames built with the `lorawan` crate's creators.

use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use lorawan::keys::{AppKey, AppSKey, NewSKey};

use super::*;
use crate::phy::MacCommand;
use crate::semtech::Modulation;
use crate::settings::{DeviceSettings, PayloadCodec};
use crate::types::{AesKey, JoinEui};

const NWK: [u8; 16] = [1; 16];
const APP: [u8; 16] = [2; 16];
const APP_KEY: [u8; 16] = [3; 16];
const ABP: DevEui = DevEui(0x0101_0101_0101_0101);
const OTAA: DevEui = DevEui(0x0202_0202_0202_0202);
const ADDR: DevAddr = DevAddr(0x2601_1234);

fn settings() -> NetworkServerSettings {
    NetworkServerSettings {
        devices: vec![
            DeviceSettings {
                dev_eui: ABP,
                name: "abp".into(),
                application_id: "app1".into(),
                activation: Activation::Abp { dev_addr: ADDR, nwk_s_key: AesKey(NWK), app_s_key: AesKey(APP) },
                payload_codec: PayloadCodec::None,
            },
            DeviceSettings {
                dev_eui: OTAA,
                name: "otaa".into(),
                application_id: "app1".into(),
                activation: Activation::Otaa { join_eui: None, app_key: AesKey(APP_KEY) },
                payload_codec: PayloadCodec::Json,
            },
        ],
        ..NetworkServerSettings::default()
    }
}

fn uplink(
    addr: DevAddr,
    nwk: [u8; 16],
    app: [u8; 16],
    fcnt: u32,
    confirmed: bool,
    fopts: &[MacCommand],
    data: &[u8],
) -> Vec<u8> {
    let mut c = lorawan::creator::DataPayloadCreator::new();
    c.set_uplink(true).set_confirmed(confirmed).set_dev_addr(&addr.to_le()).set_fcnt(fcnt).set_f_port(1);
    let cmds: Vec<&dyn lorawan::maccommands::SerializableMacCommand> = fopts.iter().map(|m| m as _).collect();
    c.build(data, &cmds, &NewSKey::from(nwk), &AppSKey::from(app)).unwrap().to_vec()
}

fn rxpk(phy: &[u8], tmst: u32, snr: f64) -> Rxpk {
    Rxpk {
        time: None,
        tmms: None,
        tmst,
        freq: 868.1,
        chan: 0,
        rfch: 0,
        stat: 1,
        modu: Modulation::Lora,
        datr: DataRate::lora(7, 125),
        codr: Some("4/5".into()),
        rssi: Some(-60),
        lsnr: Some(snr),
        size: phy.len() as u16,
        data: base64::engine::general_purpose::STANDARD.encode(phy),
        rsig: Vec::new(),
    }
}

struct Harness {
    ns: NetworkServer,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Harness { ns: NetworkServer::new(settings(), Vec::new()), now: Instant::now() }
    }

    fn hear(&mut self, gw: u64, phy: &[u8], snr: f64) {
        self.ns.handle_rxpk(self.now, GatewayEui::from_u64(gw), &rxpk(phy, 1_000_000, snr));
    }

    fn flush(&mut self) -> Vec<Output> {
        self.now += Duration::from_secs(1);
        let mut out = Vec::new();
        self.ns.handle_timeout(self.now, SystemTime::now(), &mut out);
        out
    }
}

fn published(out: &[Output], suffix: &str) -> Vec<serde_json::Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Publish { topic, payload, .. } if topic.ends_with(suffix) => {
                Some(serde_json::from_slice(payload).unwrap())
            }
            _ => None,
        })
        .collect()
}

fn transmits(out: &[Output]) -> Vec<&Transmit> {
    out.iter().filter_map(|o| if let Output::Transmit(t) = o { Some(t) } else { None }).collect()
}

#[test]
fn abp_uplink_is_decrypted_once_with_every_gateway() {
    let mut h = Harness::new();
    let f = uplink(ADDR, NWK, APP, 7, false, &[], b"hello");
    h.hear(1, &f, 1.0);
    h.hear(2, &f, 9.0);
    h.hear(3, &f, -3.0);
    h.hear(2, &f, 9.0);
    assert_eq!(h.ns.poll_timeout(), Some(h.now + Duration::from_millis(200)));
    let out = h.flush();
    let up = published(&out, "event/up");
    assert_eq!(up.len(), 1);
    let up = &up[0];
    assert_eq!(up["fCnt"], 7);
    assert_eq!(up["fPort"], 1);
    assert_eq!(up["data"], "aGVsbG8=");
    assert_eq!(up["devAddr"], "26011234");
    assert_eq!(up["deviceInfo"]["devEui"], "0101010101010101");
    let rx = up["rxInfo"].as_array().unwrap();
    assert_eq!(rx.len(), 3);
    assert_eq!(rx[0]["gatewayId"], "0000000000000002", "best SNR first");
    assert_eq!(rx[0]["context"], "AA9CQA==");
    assert_eq!(up["txInfo"]["frequency"], 868_100_000);
    assert!(transmits(&out).is_empty(), "nothing to answer");
    assert!(matches!(out.last(), Some(Output::Persist { dev_eui: ABP, .. })));
}

#[test]
fn replay_gap_and_bad_mic_are_rejected_and_counted() {
    let mut h = Harness::new();
    let f5 = uplink(ADDR, NWK, APP, 5, false, &[], b"a");
    h.hear(1, &f5, 0.0);
    assert_eq!(published(&h.flush(), "event/up").len(), 1);
    h.hear(1, &f5, 0.0);
    assert!(published(&h.flush(), "event/up").is_empty());
    let f4 = uplink(ADDR, NWK, APP, 4, false, &[], b"a");
    h.hear(1, &f4, 0.0);
    assert!(published(&h.flush(), "event/up").is_empty());
    assert_eq!(h.ns.counters.replays.load(Relaxed), 2);
    let bad = uplink(ADDR, [9; 16], APP, 6, false, &[], b"a");
    h.hear(1, &bad, 0.0);
    assert!(published(&h.flush(), "event/up").is_empty());
    assert_eq!(h.ns.counters.mic_failures.load(Relaxed), 1);
    let far = uplink(ADDR, NWK, APP, 5 + 20_000, false, &[], b"a");
    h.hear(1, &far, 0.0);
    assert!(published(&h.flush(), "event/up").is_empty());
    assert_eq!(h.ns.counters.fcnt_gaps.load(Relaxed), 1);
    // Across a 16-bit rollover the 32-bit counter goes on.
    h.ns.devices.get_mut(&ABP).unwrap().state.session.as_mut().unwrap().fcnt_up = Some(0xfffe);
    let f = uplink(ADDR, NWK, APP, 0x1_0003, false, &[], b"z");
    h.hear(1, &f, 0.0);
    assert_eq!(published(&h.flush(), "event/up")[0]["fCnt"], 0x1_0003);
}

#[test]
fn full_fcnt_reconstruction() {
    assert_eq!(full_fcnt(None, 9), 9);
    assert_eq!(full_fcnt(Some(9), 10), 10);
    assert_eq!(full_fcnt(Some(9), 9), 9);
    assert_eq!(full_fcnt(Some(0x1_fff0), 2), 0x2_0002);
    assert_eq!(full_fcnt(Some(0x1_0002), 0xfff0), 0x1_fff0);
}

#[test]
fn confirmed_uplink_gets_ack_and_queued_downlink_in_rx1_via_best_gateway() {
    let mut h = Harness::new();
    let cmd = br#"{"devEui":"0101010101010101","confirmed":true,"fPort":10,"data":"AQID"}"#;
    let id = h.ns.enqueue(ABP, cmd).unwrap();
    let f = uplink(ADDR, NWK, APP, 1, true, &[MacCommand { cid: 0x02, payload: vec![] }], b"x");
    h.hear(1, &f, 2.0);
    h.hear(2, &f, 8.0);
    let out = h.flush();
    let tx = transmits(&out);
    assert_eq!(tx.len(), 1);
    let t = tx[0];
    assert_eq!(t.candidates[0], (GatewayEui::from_u64(2), 1_000_000));
    assert_eq!(t.windows[0].delay, Duration::from_secs(1));
    assert_eq!(t.windows[0].freq_hz, 868_100_000);
    assert_eq!(t.windows[0].datr, DataRate::lora(7, 125));
    assert_eq!(t.windows[1].delay, Duration::from_secs(2));
    assert_eq!(t.windows[1].freq_hz, 869_525_000);
    let crate::phy::Frame::Data(d) = crate::phy::decode(&t.phy).unwrap() else { panic!() };
    assert!(d.ack() && d.confirmed() && !d.uplink());
    assert_eq!(d.fport, Some(10));
    assert_eq!(d.fopts, &[0x02, 15, 2], "LinkCheckAns: margin 8 - (-7.5) dB, 2 gateways");
    assert_eq!(crate::phy::decrypt_frm_payload(&t.phy, &AesKey(NWK), &AesKey(APP), 0), vec![1, 2, 3]);
    let tag = t.tag.clone();
    assert_eq!(tag.queue_item.as_ref().unwrap().id, id);
    let window = t.windows[0].clone();
    let mut out = Vec::new();
    h.ns.tx_sent(SystemTime::now(), tag, GatewayEui::from_u64(2), &window, &mut out);
    let txack = published(&out, "event/txack");
    assert_eq!(txack[0]["queueItemId"], id.as_str());
    assert_eq!(txack[0]["gatewayId"], "0000000000000002");
    // The next uplink acknowledges it.
    let mut c = lorawan::creator::DataPayloadCreator::new();
    c.set_uplink(true)
        .set_dev_addr(&ADDR.to_le())
        .set_fcnt(2)
        .set_f_port(1)
        .set_fctrl(&lorawan::parser::FCtrl::new(0x20, true));
    let f2 = c.build(b"y", &[], &NewSKey::from(NWK), &AppSKey::from(APP)).unwrap().to_vec();
    h.hear(1, &f2, 0.0);
    let out = h.flush();
    let ack = published(&out, "event/ack");
    assert_eq!(ack[0]["acknowledged"], true);
    assert_eq!(ack[0]["fCntDown"], 0);
}

#[test]
fn failed_transmission_requeues_the_payload() {
    let mut h = Harness::new();
    h.ns.enqueue(ABP, br#"{"fPort":3,"data":"AA=="}"#).unwrap();
    h.hear(1, &uplink(ADDR, NWK, APP, 1, false, &[], b"x"), 0.0);
    let out = h.flush();
    let tag = transmits(&out)[0].tag.clone();
    assert!(h.ns.device(ABP).unwrap().queue.is_empty());
    h.ns.tx_failed(tag);
    assert_eq!(h.ns.device(ABP).unwrap().queue.len(), 1);
}

#[test]
fn bad_commands_are_refused() {
    let mut h = Harness::new();
    assert!(matches!(h.ns.enqueue(ABP, b"nope"), Err(CommandError::Json(_))));
    assert!(matches!(h.ns.enqueue(ABP, br#"{"fPort":0,"data":""}"#), Err(CommandError::Port(0))));
    assert!(matches!(
        h.ns.enqueue(ABP, br#"{"devEui":"0202020202020202","fPort":1,"data":""}"#),
        Err(CommandError::WrongDevice(_))
    ));
    assert!(matches!(h.ns.enqueue(ABP, br#"{"fPort":1,"data":"!!"}"#), Err(CommandError::Data)));
    assert!(matches!(h.ns.enqueue(DevEui(5), br#"{"fPort":1,"data":""}"#), Err(CommandError::UnknownDevice(_))));
    for _ in 0..32 {
        h.ns.enqueue(ABP, br#"{"fPort":1,"data":""}"#).unwrap();
    }
    assert!(matches!(h.ns.enqueue(ABP, br#"{"fPort":1,"data":""}"#), Err(CommandError::QueueFull(_))));
    assert_eq!(h.ns.counters.queue_full.load(Relaxed), 1);
}

fn join_request(nonce: u16, key: [u8; 16]) -> Vec<u8> {
    let mut c = lorawan::creator::JoinRequestCreator::new();
    c.set_app_eui(&JoinEui(0x70b3_d57e_d000_0001).0.to_le_bytes())
        .set_dev_eui(&OTAA.to_le())
        .set_dev_nonce(&nonce.to_le_bytes());
    c.build(&AppKey::from(key)).to_vec()
}

#[test]
fn otaa_join_then_uplink_with_derived_keys_and_nonce_replay() {
    let mut h = Harness::new();
    h.hear(1, &join_request(0x0102, APP_KEY), 3.0);
    let out = h.flush();
    let join = published(&out, "event/join");
    assert_eq!(join.len(), 1);
    let tx = transmits(&out);
    assert_eq!(tx[0].windows[0].delay, Duration::from_secs(5));
    assert_eq!(tx[0].windows[1].delay, Duration::from_secs(6));
    assert_eq!(tx[0].windows[1].datr, DataRate::lora(12, 125));
    // Decrypt the JoinAccept as a device does.
    let ja = lorawan::parser::DecryptedJoinAcceptPayload::new(tx[0].phy.clone(), &AppKey::from(APP_KEY)).unwrap();
    let addr = DevAddr::from_le(ja.dev_addr().as_ref().try_into().unwrap());
    assert_eq!(join[0]["devAddr"], addr.to_string());
    let nonce = lorawan::parser::DevNonce::new(&[0x02u8, 0x01][..]).unwrap();
    let nwk = ja.derive_newskey(&nonce, &AppKey::from(APP_KEY));
    let app = ja.derive_appskey(&nonce, &AppKey::from(APP_KEY));
    assert_eq!(h.ns.counters.joins.load(Relaxed), 1);
    let up = uplink(addr, nwk.inner().0, app.inner().0, 0, false, &[], br#"{"t":21}"#);
    h.hear(1, &up, 0.0);
    let out = h.flush();
    let up = published(&out, "event/up");
    assert_eq!(up[0]["object"], serde_json::json!({"t": 21}));
    // The same DevNonce again is a replay; a wrong AppKey a MIC failure.
    h.hear(1, &join_request(0x0102, APP_KEY), 3.0);
    assert!(published(&h.flush(), "event/join").is_empty());
    assert_eq!(h.ns.counters.dev_nonce_replays.load(Relaxed), 1);
    h.hear(1, &join_request(0x0103, [9; 16]), 3.0);
    assert!(published(&h.flush(), "event/join").is_empty());
    assert_eq!(h.ns.counters.mic_failures.load(Relaxed), 1);
}

#[test]
fn restored_state_keeps_counters() {
    let mut h = Harness::new();
    h.hear(1, &uplink(ADDR, NWK, APP, 41, false, &[], b"a"), 0.0);
    let out = h.flush();
    let Some(Output::Persist { value, .. }) = out.iter().find(|o| matches!(o, Output::Persist { .. })) else {
        panic!()
    };
    let mut ns = NetworkServer::new(settings(), vec![(ABP.to_string(), bytes::Bytes::from(value.clone()))]);
    assert_eq!(ns.device(ABP).unwrap().state.session.as_ref().unwrap().fcnt_up, Some(41));
    let now = Instant::now();
    ns.handle_rxpk(now, GatewayEui::from_u64(1), &rxpk(&uplink(ADDR, NWK, APP, 41, false, &[], b"a"), 5, 0.0));
    let mut out = Vec::new();
    ns.handle_timeout(now + Duration::from_secs(1), SystemTime::now(), &mut out);
    assert!(published(&out, "event/up").is_empty());
    assert_eq!(ns.counters.replays.load(Relaxed), 1);
}

#[test]
fn device_time_and_status() {
    let mut h = Harness::new();
    let f = uplink(
        ADDR,
        NWK,
        APP,
        1,
        false,
        &[MacCommand { cid: 0x0d, payload: vec![] }, MacCommand { cid: 0x06, payload: vec![254, 5] }],
        b"x",
    );
    h.hear(1, &f, 0.0);
    let out = h.flush();
    let status = published(&out, "event/status");
    assert_eq!(status[0]["margin"], 5);
    assert_eq!(status[0]["batteryLevel"], 100.0);
    let t = transmits(&out)[0];
    let crate::phy::Frame::Data(d) = crate::phy::decode(&t.phy).unwrap() else { panic!() };
    assert_eq!(d.fopts[0], 0x0d);
    let secs = u32::from_le_bytes(d.fopts[1..5].try_into().unwrap());
    assert!(secs > 1_300_000_000, "GPS seconds: {secs}");
}

const API: DevEui = DevEui(0x0303_0303_0303_0303);
const API_ADDR: DevAddr = DevAddr(0x2601_5678);

fn api_device() -> DeviceSettings {
    DeviceSettings {
        dev_eui: API,
        name: "api".into(),
        application_id: "app2".into(),
        activation: Activation::Abp { dev_addr: API_ADDR, nwk_s_key: AesKey([4; 16]), app_s_key: AesKey([5; 16]) },
        payload_codec: PayloadCodec::None,
    }
}

#[test]
fn api_devices_are_added_and_removed_and_config_devices_stay() {
    let mut h = Harness::new();
    let mut out = Vec::new();
    h.ns.add_device(api_device(), &mut out).unwrap();
    assert!(matches!(out.as_slice(), [Output::Persist { dev_eui: API, .. }]), "its fresh session is stored");
    assert_eq!(h.ns.device(API).unwrap().origin, Origin::Api);
    assert_eq!(h.ns.add_device(api_device(), &mut out), Err(DeviceError::Exists(API)));
    assert_eq!(h.ns.remove_device(ABP).err(), Some(DeviceError::FromConfig(ABP)));
    assert_eq!(h.ns.device_count(), 3);

    h.hear(1, &uplink(API_ADDR, [4; 16], [5; 16], 3, false, &[], b"hi"), 0.0);
    let out = h.flush();
    assert_eq!(published(&out, "app2/device/0303030303030303/event/up")[0]["fCnt"], 3);
    assert!(h.ns.device(API).unwrap().last_seen.is_some());
    assert_eq!(h.ns.enqueue_item(API, None, false, 0, vec![]), Err(CommandError::Port(0)));
    assert_eq!(h.ns.enqueue_item(API, None, false, 5, vec![0; 243]), Err(CommandError::Data));
    let id = h.ns.enqueue_item(API, Some("q1".into()), true, 5, vec![1]).unwrap();
    assert_eq!((id.as_str(), h.ns.device(API).unwrap().queue.len()), ("q1", 1));

    assert!(h.ns.remove_device(API).is_ok());
    assert_eq!(h.ns.remove_device(API).err(), Some(DeviceError::Unknown(API)));
    assert_eq!(h.ns.enqueue_item(API, None, false, 5, vec![]), Err(CommandError::UnknownDevice(API)));
    h.hear(1, &uplink(API_ADDR, [4; 16], [5; 16], 4, false, &[], b"hi"), 0.0);
    assert!(published(&h.flush(), "event/up").is_empty());
    assert_eq!(h.ns.counters.unknown_devices.load(Relaxed), 1);
}

#[test]
fn an_api_device_takes_up_its_stored_state_at_start() {
    let mut h = Harness::new();
    h.ns.add_device(api_device(), &mut Vec::new()).unwrap();
    h.hear(1, &uplink(API_ADDR, [4; 16], [5; 16], 9, false, &[], b"a"), 0.0);
    let out = h.flush();
    let Some(Output::Persist { value, .. }) = out.iter().find(|o| matches!(o, Output::Persist { dev_eui: API, .. }))
    else {
        panic!()
    };
    let mut ns = NetworkServer::new(settings(), vec![(API.to_string(), bytes::Bytes::from(value.clone()))]);
    assert!(ns.device(API).is_none(), "not registered until its settings are added");
    ns.add_device(api_device(), &mut Vec::new()).unwrap();
    assert_eq!(ns.device(API).unwrap().state.session.as_ref().unwrap().fcnt_up, Some(9));
}

#[test]
fn frames_come_out_for_traces_only_while_one_runs() {
    let mut h = Harness::new();
    h.hear(1, &uplink(ADDR, NWK, APP, 1, false, &[], b"a"), 0.0);
    assert!(!h.flush().iter().any(|o| matches!(o, Output::Trace { .. })));
    h.ns.trace = true;
    h.hear(7, &uplink(ADDR, NWK, APP, 2, false, &[], b"abc"), 2.5);
    let out = h.flush();
    let Some(Output::Trace { dev_eui, gateway, text }) = out.iter().find(|o| matches!(o, Output::Trace { .. })) else {
        panic!("{out:?}")
    };
    assert_eq!((*dev_eui, *gateway), (ABP, Some(GatewayEui::from_u64(7))));
    assert!(text.starts_with("UnconfirmedUp dev_addr=26011234 fcnt=2 fport=Some(1)"), "{text}");
    assert!(
        text.contains("frm_payload=3B") && text.contains("[gateway=0000000000000007 tmst=1000000 freq=868.1"),
        "{text}"
    );
}
