//! Send reports (1.1 `POST /dp`) from the simulated device.

use super::*;
use roost_lwm2m::types::Path;

#[test]
fn send_reports_go_every_period_while_registered() {
    let t0 = Instant::now();
    let mut cfg = DeviceConfig::new("ep-s");
    cfg.send = true;
    cfg.report_period = Duration::from_secs(10);
    let mut rig = Rig { dev: Device::new(cfg, t0), t0, mid: 100 };
    rig.dev.register(t0);
    let reg = rig.sent();
    rig.ack(&reg, ResponseType::Created, &["rd", "1"], t0);
    rig.events();
    assert_eq!(rig.dev.poll_timeout(), Some(rig.at(10)));
    rig.dev.handle_timeout(rig.at(10));
    let dp = rig.sent();
    assert_eq!(
        (dp.header.code, path_of(&dp), cf(&dp)),
        (MessageClass::Request(RequestType::Post), "dp".to_string(), Some(112))
    );
    let records = roost_lwm2m::content::decode(format::SENML_CBOR, Path::ROOT, &dp.payload, &|_: &Path| None).unwrap();
    assert_eq!((records.len(), records[0].path.to_string()), (1, "/3303/0/5700".to_string()));
    assert!(matches!(records[0].value, Value::Float(_)), "{records:?}");
    rig.ack(&dp, ResponseType::Changed, &[], rig.at(10));
    assert_eq!(rig.events(), [Event::Sent]);

    // Refused: reported, and the device stays registered.
    rig.dev.handle_timeout(rig.at(20));
    let dp = rig.sent();
    rig.ack(&dp, ResponseType::BadRequest, &[], rig.at(20));
    assert_eq!(rig.events(), [Event::SendFailed(Some("4.00".into()))]);
    assert!(rig.dev.is_registered());
}

#[test]
fn no_send_reports_unless_asked() {
    let mut rig = Rig::registered(false);
    rig.dev.handle_timeout(rig.at(30));
    assert!(
        std::iter::from_fn(|| rig.dev.poll_transmit())
            .all(|b| codec::uri_path(&codec::decode(&b).unwrap()).unwrap() != ["dp"])
    );
}
