//! Application messages in ChirpStack v4's integration shape (`integration.proto` in its
//! canonical JSON), so applications written for ChirpStack read Roost's events unchanged:
//! `application/{application_id}/device/{dev_eui}/event/{up|join|ack|txack|status}`.

use std::time::SystemTime;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::semtech::{GatewayEui, Rxpk};
use crate::settings::DeviceSettings;

pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn event_topic(device: &DeviceSettings, event: &str) -> String {
    format!("application/{}/device/{}/event/{event}", device.application_id, device.dev_eui)
}

pub fn command_topic(device: &DeviceSettings) -> String {
    format!("application/{}/device/{}/command/down", device.application_id, device.dev_eui)
}

/// RFC 3339 UTC with nanoseconds, as protobuf JSON writes a Timestamp.
pub fn rfc3339(t: SystemTime) -> String {
    roost_core::trace::rfc3339(t, true)
}

/// A random (version 4) UUID.
pub fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::hex::encode(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

pub fn device_info(d: &DeviceSettings) -> Value {
    json!({
        "tenantId": "",
        "tenantName": "",
        "applicationId": d.application_id,
        "applicationName": d.application_id,
        "deviceProfileId": "",
        "deviceProfileName": "",
        "deviceName": d.name,
        "devEui": d.dev_eui.to_string(),
        "deviceClassEnabled": "CLASS_A",
        "tags": {},
    })
}

/// `codr` "4/5" as `CR_4_5`.
pub(crate) fn code_rate(codr: Option<&str>) -> String {
    match codr {
        Some(c) => format!("CR_{}", c.replace('/', "_")),
        None => "CR_4_5".into(),
    }
}

/// `txInfo` of an uplink or downlink.
pub fn tx_info(freq_hz: u32, sf: u8, bw_khz: u32, codr: Option<&str>) -> Value {
    json!({
        "frequency": freq_hz,
        "modulation": { "lora": {
            "bandwidth": bw_khz * 1000,
            "spreadingFactor": sf,
            "codeRate": code_rate(codr),
        }},
    })
}

/// One gateway's `rxInfo` (the gw.proto `UplinkRxInfo` JSON): the one builder for the
/// gateway bridge's `event/up` and the network server's application events. `crcStatus`
/// comes from the packet forwarder's `stat` (the network server drops `BAD_CRC` frames
/// before any event, so its events say `CRC_OK`, or `NO_CRC` where the radio checked none).
pub fn rx_info(gateway: GatewayEui, rxpk: &Rxpk, uplink_id: u32, ns_time: SystemTime) -> Value {
    let mut v = json!({
        "gatewayId": gateway.to_string(),
        "uplinkId": uplink_id,
        "nsTime": rfc3339(ns_time),
        "rssi": rxpk.best_rssi(),
        "snr": rxpk.best_snr(),
        "channel": rxpk.chan,
        "rfChain": rxpk.rfch,
        "context": b64(&rxpk.tmst.to_be_bytes()),
        "crcStatus": match rxpk.stat { 1 => "CRC_OK", -1 => "BAD_CRC", _ => "NO_CRC" },
    });
    if let Some(t) = &rxpk.time {
        v["gwTime"] = json!(t);
    }
    if let Some(ms) = rxpk.tmms {
        v["timeSinceGpsEpoch"] = json!(format!("{}.{:03}s", ms / 1000, ms % 1000));
    }
    if let Some(best) = rxpk.rsig.iter().max_by_key(|r| r.rssic.unwrap_or(i32::MIN)) {
        v["antenna"] = json!(best.ant);
    }
    v
}
