//! Simulated devices for the dashboard test, each over its own protocol's real socket:
//! an MQTT-SN client, a CoAP client, the LwM2M crate's simulated device and a Semtech UDP
//! packet forwarder carrying an ABP LoRaWAN device's uplink.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use coap_lite::RequestType;
use lorawan::keys::{AppSKey, NewSKey};
use roost_e2e::coap::Raw;
use roost_e2e::{TestBroker, WAIT};
use roost_lorawan::semtech::{self, DataRate, GatewayEui, Modulation, Packet, PushPayload, Rxpk};
use roost_lorawan::types::{AesKey, DevAddr};
use roost_mqttsn::codec::{self, Connect, Flags, Message, ReturnCode};
use roost_sim::lwm2m_client::{DeviceConfig, DeviceHandle, Event, spawn_device};
use tokio::net::UdpSocket;

pub const LORA_EUI: &str = "0101010101010101";
const LORA_ADDR: &str = "26011234";
pub const NWK: &str = "01010101010101010101010101010101";
pub const APP: &str = "02020202020202020202020202020202";

/// The `[[lorawan.device]]` the forwarder's uplinks belong to.
pub fn lorawan_config() -> String {
    format!(
        "[[lorawan.device]]\ndev_eui = \"{LORA_EUI}\"\nname = \"field-sensor\"\napplication_id = \"farm\"\n\
         dev_addr = \"{LORA_ADDR}\"\nnwk_s_key = \"{NWK}\"\napp_s_key = \"{APP}\"\n"
    )
}

/// An MQTT-SN client connected as `id` (the socket keeps its session's address).
pub async fn mqttsn(gw: SocketAddr, id: &str) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let connect = Message::Connect(Connect {
        flags: Flags { clean_session: true, ..Flags::default() },
        duration: 600,
        client_id: id.into(),
    });
    sock.send_to(&codec::to_bytes(&connect).unwrap(), gw).await.unwrap();
    let mut buf = vec![0u8; 1500];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await.expect("MQTT-SN CONNACK in time").unwrap();
    assert_eq!(
        codec::decode(&Bytes::copy_from_slice(&buf[..n])).unwrap(),
        Message::ConnAck { rc: ReturnCode::Accepted }
    );
    sock
}

/// A CoAP client that published a retained value (its session stays known to the gateway).
pub async fn coap(broker: &TestBroker) -> Raw {
    let raw = Raw::new(broker.coap_addr()).await;
    let r = raw.call(RequestType::Put, "ps/greenhouse/vent", &["retain=true"], b"open").await;
    assert!(matches!(r.header.code, coap_lite::MessageClass::Response(_)), "{r:?}");
    raw
}

/// The LwM2M crate's simulated device (objects 1, 3, 5, 3303), registered.
pub async fn lwm2m(broker: &TestBroker, ep: &str) -> DeviceHandle {
    let mut dev = spawn_device(broker.lwm2m_addr(), DeviceConfig::new(ep)).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, dev.events.recv()).await {
            Ok(Some(Event::Registered(_))) => return dev,
            Ok(Some(_)) => continue,
            other => panic!("the LwM2M device did not register: {other:?}"),
        }
    }
}

/// A packet forwarder: PULL_DATA (so the gateway is listed with a downlink path), then one
/// PUSH_DATA with the ABP device's uplink number `fcnt`. Returns its socket.
pub async fn lorawan(broker: &TestBroker, fcnt: u32) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gateway = GatewayEui::from_u64(0xaa55_0000_0000_0001);
    let target = broker.lorawan_addr();
    sock.send_to(&semtech::encode(&Packet::PullData { version: 2, token: 1, gateway }), target).await.unwrap();
    let phy = uplink(fcnt, b"\x01\x67\x00\xd2");
    let rxpk = Rxpk {
        time: None,
        tmms: None,
        tmst: 1_000_000,
        freq: 868.1,
        chan: 0,
        rfch: 0,
        stat: 1,
        modu: Modulation::Lora,
        datr: DataRate::lora(7, 125),
        codr: Some("4/5".into()),
        rssi: Some(-57),
        lsnr: Some(9.5),
        size: phy.len() as u16,
        data: base64::engine::general_purpose::STANDARD.encode(&phy),
        rsig: Vec::new(),
    };
    let push =
        Packet::PushData { version: 2, token: 2, gateway, payload: PushPayload { rxpk: vec![rxpk], stat: None } };
    sock.send_to(&semtech::encode(&push), target).await.unwrap();
    sock
}

fn uplink(fcnt: u32, payload: &[u8]) -> Vec<u8> {
    let addr = DevAddr::parse(LORA_ADDR).unwrap();
    let (nwk, app) = (AesKey::parse(NWK).unwrap(), AesKey::parse(APP).unwrap());
    let mut c = lorawan::creator::DataPayloadCreator::new();
    c.set_uplink(true).set_confirmed(false).set_dev_addr(&addr.to_le()).set_fcnt(fcnt).set_f_port(2);
    c.build(payload, &[], &NewSKey::from(nwk.0), &AppSKey::from(app.0)).unwrap().to_vec()
}
