//! Bridge mode's messages: ChirpStack Gateway Bridge v4 topics and its `gw.proto` messages
//! (UplinkFrame, GatewayStats, ConnState, DownlinkFrame, DownlinkTxAck) in canonical
//! protobuf JSON, mapped to and from the Semtech `rxpk` / `stat` / `txpk` / TX_ACK.
//!
//! Uplink `context` is the 4-byte big-endian `tmst`; a DownlinkFrame item's delay timing
//! becomes `txpk.tmst = context + delay` in wrapping u32 arithmetic (the concentrator
//! counter wraps every 71.6 minutes).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ns::events::{b64, code_rate, rfc3339, rx_info};
use crate::region::{hz_to_mhz, mhz_to_hz};
use crate::semtech::{DataRate, GatewayEui, Modulation, Rxpk, Stat, TxAckError, Txpk};

pub fn topic(prefix: &str, gateway: GatewayEui, rest: &str) -> String {
    format!("{prefix}/gateway/{gateway}/{rest}")
}

pub fn conn_state(gateway: GatewayEui, online: bool) -> Vec<u8> {
    json!({ "gatewayId": gateway.to_string(), "state": if online { "ONLINE" } else { "OFFLINE" } })
        .to_string()
        .into_bytes()
}

fn modulation(modu: Modulation, datr: &DataRate, codr: Option<&str>) -> Value {
    match (modu, datr) {
        (Modulation::Fsk, DataRate::Fsk(bps)) => json!({ "fsk": { "datarate": bps } }),
        _ => {
            let (sf, bw) = datr.sf_bw().unwrap_or((0, 0));
            json!({ "lora": { "bandwidth": bw * 1000, "spreadingFactor": sf, "codeRate": code_rate(codr) } })
        }
    }
}

/// `event/up`: an UplinkFrame.
pub fn uplink_frame(gateway: GatewayEui, rxpk: &Rxpk, phy: &[u8], uplink_id: u32, ns_time: SystemTime) -> Vec<u8> {
    let rx = rx_info(gateway, rxpk, uplink_id, ns_time);
    json!({
        "phyPayload": b64(phy),
        "txInfo": {
            "frequency": mhz_to_hz(rxpk.freq),
            "modulation": modulation(rxpk.modu, &rxpk.datr, rxpk.codr.as_deref()),
        },
        "rxInfo": rx,
    })
    .to_string()
    .into_bytes()
}

/// `event/stats`: GatewayStats from a `stat` object.
pub fn gateway_stats(gateway: GatewayEui, stat: &Stat, now: SystemTime) -> Vec<u8> {
    let mut v = json!({
        "gatewayId": gateway.to_string(),
        "time": rfc3339(now),
        "rxPacketsReceived": stat.rxnb,
        "rxPacketsReceivedOk": stat.rxok,
        "txPacketsReceived": stat.dwnb,
        "txPacketsEmitted": stat.txnb,
    });
    if let (Some(lat), Some(lon)) = (stat.lati, stat.long) {
        v["location"] =
            json!({ "latitude": lat, "longitude": lon, "altitude": stat.alti.unwrap_or(0.0), "source": "GPS" });
    }
    v.to_string().into_bytes()
}

/// ChirpStack's TxAckStatus name of a Semtech TX_ACK error.
pub fn ack_status(error: Option<TxAckError>) -> &'static str {
    match error {
        None | Some(TxAckError::None) => "OK",
        Some(TxAckError::TooLate) => "TOO_LATE",
        Some(TxAckError::TooEarly) => "TOO_EARLY",
        Some(TxAckError::CollisionPacket) => "COLLISION_PACKET",
        Some(TxAckError::CollisionBeacon) => "COLLISION_BEACON",
        Some(TxAckError::TxFreq) => "TX_FREQ",
        Some(TxAckError::TxPower) => "TX_POWER",
        Some(TxAckError::GpsUnlocked) => "GPS_UNLOCKED",
        Some(TxAckError::Unknown) => "INTERNAL_ERROR",
    }
}

/// `event/ack`: a DownlinkTxAck, one status per item (`IGNORED` for those not tried).
pub fn tx_ack(gateway: GatewayEui, downlink_id: u32, statuses: &[&str]) -> Vec<u8> {
    json!({
        "gatewayId": gateway.to_string(),
        "downlinkId": downlink_id,
        "items": statuses.iter().map(|s| json!({ "status": s })).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DownlinkFrameJson {
    #[serde(default)]
    downlink_id: u32,
    #[serde(default)]
    items: Vec<ItemJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemJson {
    phy_payload: String,
    tx_info: TxInfoJson,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TxInfoJson {
    frequency: u32,
    #[serde(default)]
    power: i32,
    modulation: ModulationJson,
    #[serde(default)]
    board: u32,
    #[serde(default)]
    antenna: u32,
    #[serde(default)]
    timing: Option<TimingJson>,
    #[serde(default)]
    context: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModulationJson {
    lora: Option<LoraJson>,
    fsk: Option<FskJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoraJson {
    bandwidth: u32,
    spreading_factor: u8,
    #[serde(default)]
    code_rate: Option<String>,
    #[serde(default)]
    polarization_inversion: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FskJson {
    #[serde(default)]
    frequency_deviation: u32,
    datarate: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimingJson {
    #[serde(default)]
    immediately: Option<Value>,
    #[serde(default)]
    delay: Option<DelayJson>,
    #[serde(default)]
    gps_epoch: Option<GpsJson>,
}

#[derive(Debug, Deserialize)]
struct DelayJson {
    delay: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GpsJson {
    time_since_gps_epoch: String,
}

/// A DownlinkFrame, as `txpk`s to try in order.
#[derive(Debug, Clone, PartialEq)]
pub struct DownlinkFrame {
    pub downlink_id: u32,
    pub items: Vec<Txpk>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownlinkError {
    #[error("gateway bridge command/down: not a DownlinkFrame: {0}")]
    Json(String),
    #[error("gateway bridge command/down: item {0}: {1}")]
    Item(usize, &'static str),
}

/// protobuf JSON Duration: `"1s"`, `"1.500s"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.strip_suffix('s')?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: u64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    Some(Duration::new(secs, nanos))
}

/// One DownlinkFrame item, whatever the marshaler.
pub(crate) struct Item {
    pub phy: Vec<u8>,
    pub frequency: u32,
    pub power: i32,
    pub antenna: u32,
    /// (bandwidth Hz, spreading factor, code rate "4/5", polarization inversion)
    pub lora: Option<(u32, u8, String, bool)>,
    /// (frequency deviation, bit rate)
    pub fsk: Option<(u32, u32)>,
    pub timing: ItemTiming,
    pub context: Option<Vec<u8>>,
}

pub(crate) enum ItemTiming {
    Immediately,
    Delay(Duration),
    GpsEpoch(Duration),
}

pub(crate) fn item_txpk(i: usize, item: Item) -> Result<Txpk, DownlinkError> {
    if item.phy.len() > crate::phy::MAX_PHY {
        return Err(DownlinkError::Item(i, "phyPayload is over 255 bytes"));
    }
    let (modu, datr, codr, ipol, fdev) = match (item.lora, item.fsk) {
        (Some((bw, sf, cr, ipol)), _) => (Modulation::Lora, DataRate::lora(sf, bw / 1000), Some(cr), ipol, None),
        (None, Some((fdev, bps))) => (Modulation::Fsk, DataRate::Fsk(bps), None, false, Some(fdev)),
        (None, None) => return Err(DownlinkError::Item(i, "txInfo.modulation has neither lora nor fsk")),
    };
    let (imme, tmst, tmms) = match item.timing {
        ItemTiming::Immediately => (true, None, None),
        ItemTiming::Delay(delay) => {
            let Some(ctx) = item.context.filter(|c| c.len() == 4) else {
                return Err(DownlinkError::Item(i, "context is not the 4-byte tmst of the uplink"));
            };
            let base = u32::from_be_bytes([ctx[0], ctx[1], ctx[2], ctx[3]]);
            let delay_us =
                u32::try_from(delay.as_micros()).map_err(|_| DownlinkError::Item(i, "timing.delay is too long"))?;
            (false, Some(base.wrapping_add(delay_us)), None)
        }
        ItemTiming::GpsEpoch(d) => (false, None, Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
    };
    Ok(Txpk {
        imme,
        tmst,
        tmms,
        freq: hz_to_mhz(item.frequency),
        rfch: item.antenna.min(255) as u8,
        powe: Some(item.power),
        modu,
        datr,
        codr,
        fdev,
        ipol,
        prea: None,
        size: item.phy.len() as u16,
        data: b64(&item.phy),
        ncrc: modu == Modulation::Lora,
    })
}

/// Parses a DownlinkFrame (canonical JSON) into `txpk`s.
pub fn downlink_frame(payload: &[u8]) -> Result<DownlinkFrame, DownlinkError> {
    let f: DownlinkFrameJson = serde_json::from_slice(payload).map_err(|e| DownlinkError::Json(e.to_string()))?;
    let mut items = Vec::with_capacity(f.items.len().min(4));
    for (i, item) in f.items.into_iter().enumerate() {
        let phy = base64::engine::general_purpose::STANDARD
            .decode(item.phy_payload.as_bytes())
            .map_err(|_| DownlinkError::Item(i, "phyPayload is not base64"))?;
        let t = item.tx_info;
        let lora = t.modulation.lora.map(|l| {
            (
                l.bandwidth,
                l.spreading_factor,
                l.code_rate.as_deref().unwrap_or("CR_4_5").trim_start_matches("CR_").replace('_', "/"),
                l.polarization_inversion,
            )
        });
        let fsk = t.modulation.fsk.map(|f| (f.frequency_deviation, f.datarate));
        let timing = match t.timing {
            None | Some(TimingJson { immediately: Some(_), .. }) => ItemTiming::Immediately,
            Some(TimingJson { delay: Some(d), .. }) => ItemTiming::Delay(
                parse_duration(&d.delay).ok_or(DownlinkError::Item(i, "timing.delay.delay is not a duration"))?,
            ),
            Some(TimingJson { gps_epoch: Some(g), .. }) => ItemTiming::GpsEpoch(
                parse_duration(&g.time_since_gps_epoch)
                    .ok_or(DownlinkError::Item(i, "timing.gpsEpoch is not a duration"))?,
            ),
            Some(_) => return Err(DownlinkError::Item(i, "timing has no immediately, delay or gpsEpoch")),
        };
        let context =
            t.context.as_deref().and_then(|c| base64::engine::general_purpose::STANDARD.decode(c.as_bytes()).ok());
        let _ = t.board;
        items.push(item_txpk(
            i,
            Item { phy, frequency: t.frequency, power: t.power, antenna: t.antenna, lora, fsk, timing, context },
        )?);
    }
    Ok(DownlinkFrame { downlink_id: f.downlink_id, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downlink_frame_delay_wraps() {
        // context = 0xFFFF_FF00: 1 s later is past the u32 wrap.
        let body = br#"{"downlinkId":77,"gatewayId":"0102030405060708","items":[
            {"phyPayload":"YAEAAAAAAAAA","txInfo":{"frequency":868100000,"power":14,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_4_5","polarizationInversion":true}},"timing":{"delay":{"delay":"1s"}},"context":"////AA=="}},
            {"phyPayload":"YAEAAAAAAAAA","txInfo":{"frequency":869525000,"power":14,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":12,"codeRate":"CR_4_5","polarizationInversion":true}},"timing":{"delay":{"delay":"2s"}},"context":"////AA=="}}]}"#;
        let f = downlink_frame(body).unwrap();
        assert_eq!(f.downlink_id, 77);
        assert_eq!(f.items.len(), 2);
        assert_eq!(f.items[0].tmst, Some(0xffff_ff00u32.wrapping_add(1_000_000)));
        assert_eq!(f.items[0].tmst, Some(999_744));
        assert_eq!(f.items[1].datr, DataRate::lora(12, 125));
        assert_eq!(f.items[1].freq, 869.525);
        assert!(f.items[0].ipol && !f.items[0].imme);
        assert_eq!(f.items[0].codr.as_deref(), Some("4/5"));
    }

    #[test]
    fn bad_downlink_frames() {
        assert!(matches!(downlink_frame(b"{"), Err(DownlinkError::Json(_))));
        let no_ctx = br#"{"items":[{"phyPayload":"AA==","txInfo":{"frequency":1,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7}},"timing":{"delay":{"delay":"1s"}}}}]}"#;
        assert!(matches!(downlink_frame(no_ctx), Err(DownlinkError::Item(0, _))));
        let imm = br#"{"items":[{"phyPayload":"AA==","txInfo":{"frequency":1,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7}},"timing":{"immediately":{}}}}]}"#;
        assert!(downlink_frame(imm).unwrap().items[0].imme);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.000001s"), Some(Duration::from_micros(1)));
        assert_eq!(parse_duration("1"), None);
        assert_eq!(parse_duration("1.x5s"), None);
    }
}
