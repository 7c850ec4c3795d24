//! Bridge mode's `marshaler = "protobuf"`: the ChirpStack v4 `gw.proto` messages the bridge
//! exchanges (UplinkFrame, GatewayStats, ConnState, DownlinkFrame, DownlinkTxAck), declared
//! with `prost` derives and the field numbers of `chirpstack/gw/gw.proto` and
//! `common/common.proto` (api 4.x). The `chirpstack_api` crate would bring them generated,
//! but its build script needs `protoc` and pulls in tonic; these few messages do not.
//! Legacy fields (`*_legacy`) are left out: ChirpStack v4 reads the current ones.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;

use crate::bridge::{DownlinkError, DownlinkFrame, Item, ItemTiming, item_txpk};
use crate::region::mhz_to_hz;
use crate::semtech::{DataRate, GatewayEui, Modulation as Modu, Rxpk, Stat};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PbDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl PbDuration {
    fn to_std(&self) -> Option<Duration> {
        let secs = u64::try_from(self.seconds).ok()?;
        let nanos = u32::try_from(self.nanos).ok().filter(|n| *n < 1_000_000_000)?;
        Some(Duration::new(secs, nanos))
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX), nanos: d.subsec_nanos() as i32 }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LoraModulationInfo {
    #[prost(uint32, tag = "1")]
    pub bandwidth: u32,
    #[prost(uint32, tag = "2")]
    pub spreading_factor: u32,
    #[prost(enumeration = "CodeRate", tag = "5")]
    pub code_rate: i32,
    #[prost(bool, tag = "4")]
    pub polarization_inversion: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FskModulationInfo {
    #[prost(uint32, tag = "1")]
    pub frequency_deviation: u32,
    #[prost(uint32, tag = "2")]
    pub datarate: u32,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ModulationParameters {
    #[prost(message, tag = "3")]
    Lora(LoraModulationInfo),
    #[prost(message, tag = "4")]
    Fsk(FskModulationInfo),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Modulation {
    #[prost(oneof = "ModulationParameters", tags = "3, 4")]
    pub parameters: Option<ModulationParameters>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum CodeRate {
    CrUndefined = 0,
    Cr45 = 1,
    Cr46 = 2,
    Cr47 = 3,
    Cr48 = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum CrcStatus {
    NoCrc = 0,
    BadCrc = 1,
    CrcOk = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UplinkTxInfo {
    #[prost(uint32, tag = "1")]
    pub frequency: u32,
    #[prost(message, optional, tag = "2")]
    pub modulation: Option<Modulation>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UplinkRxInfo {
    #[prost(string, tag = "1")]
    pub gateway_id: String,
    #[prost(uint32, tag = "2")]
    pub uplink_id: u32,
    #[prost(message, optional, tag = "17")]
    pub ns_time: Option<Timestamp>,
    #[prost(message, optional, tag = "4")]
    pub time_since_gps_epoch: Option<PbDuration>,
    #[prost(int32, tag = "6")]
    pub rssi: i32,
    #[prost(float, tag = "7")]
    pub snr: f32,
    #[prost(uint32, tag = "8")]
    pub channel: u32,
    #[prost(uint32, tag = "9")]
    pub rf_chain: u32,
    #[prost(uint32, tag = "11")]
    pub antenna: u32,
    #[prost(bytes = "vec", tag = "13")]
    pub context: Vec<u8>,
    #[prost(enumeration = "CrcStatus", tag = "16")]
    pub crc_status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UplinkFrame {
    #[prost(bytes = "vec", tag = "1")]
    pub phy_payload: Vec<u8>,
    #[prost(message, optional, tag = "4")]
    pub tx_info: Option<UplinkTxInfo>,
    #[prost(message, optional, tag = "5")]
    pub rx_info: Option<UplinkRxInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GatewayStats {
    #[prost(string, tag = "17")]
    pub gateway_id: String,
    #[prost(message, optional, tag = "2")]
    pub time: Option<Timestamp>,
    #[prost(uint32, tag = "5")]
    pub rx_packets_received: u32,
    #[prost(uint32, tag = "6")]
    pub rx_packets_received_ok: u32,
    #[prost(uint32, tag = "7")]
    pub tx_packets_received: u32,
    #[prost(uint32, tag = "8")]
    pub tx_packets_emitted: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnState {
    #[prost(string, tag = "3")]
    pub gateway_id: String,
    /// OFFLINE = 0, ONLINE = 1.
    #[prost(int32, tag = "2")]
    pub state: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DelayTimingInfo {
    #[prost(message, optional, tag = "1")]
    pub delay: Option<PbDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GpsEpochTimingInfo {
    #[prost(message, optional, tag = "1")]
    pub time_since_gps_epoch: Option<PbDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImmediatelyTimingInfo {}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TimingParameters {
    #[prost(message, tag = "1")]
    Immediately(ImmediatelyTimingInfo),
    #[prost(message, tag = "2")]
    Delay(DelayTimingInfo),
    #[prost(message, tag = "3")]
    GpsEpoch(GpsEpochTimingInfo),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Timing {
    #[prost(oneof = "TimingParameters", tags = "1, 2, 3")]
    pub parameters: Option<TimingParameters>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DownlinkTxInfo {
    #[prost(uint32, tag = "1")]
    pub frequency: u32,
    #[prost(int32, tag = "2")]
    pub power: i32,
    #[prost(message, optional, tag = "3")]
    pub modulation: Option<Modulation>,
    #[prost(uint32, tag = "4")]
    pub board: u32,
    #[prost(uint32, tag = "5")]
    pub antenna: u32,
    #[prost(message, optional, tag = "6")]
    pub timing: Option<Timing>,
    #[prost(bytes = "vec", tag = "7")]
    pub context: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DownlinkFrameItem {
    #[prost(bytes = "vec", tag = "1")]
    pub phy_payload: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub tx_info: Option<DownlinkTxInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DownlinkFramePb {
    #[prost(uint32, tag = "3")]
    pub downlink_id: u32,
    #[prost(message, repeated, tag = "5")]
    pub items: Vec<DownlinkFrameItem>,
    #[prost(string, tag = "7")]
    pub gateway_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DownlinkTxAckItem {
    #[prost(enumeration = "TxAckStatus", tag = "1")]
    pub status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DownlinkTxAck {
    #[prost(string, tag = "6")]
    pub gateway_id: String,
    #[prost(uint32, tag = "2")]
    pub downlink_id: u32,
    #[prost(message, repeated, tag = "5")]
    pub items: Vec<DownlinkTxAckItem>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum TxAckStatus {
    Ignored = 0,
    Ok = 1,
    TooLate = 2,
    TooEarly = 3,
    CollisionPacket = 4,
    CollisionBeacon = 5,
    TxFreq = 6,
    TxPower = 7,
    GpsUnlocked = 8,
    QueueFull = 9,
    InternalError = 10,
}

fn code_rate(codr: Option<&str>) -> CodeRate {
    match codr {
        Some("4/6") => CodeRate::Cr46,
        Some("4/7") => CodeRate::Cr47,
        Some("4/8") => CodeRate::Cr48,
        Some("4/5") | None => CodeRate::Cr45,
        Some(_) => CodeRate::CrUndefined,
    }
}

fn code_rate_text(c: i32) -> String {
    match CodeRate::try_from(c) {
        Ok(CodeRate::Cr46) => "4/6",
        Ok(CodeRate::Cr47) => "4/7",
        Ok(CodeRate::Cr48) => "4/8",
        _ => "4/5",
    }
    .to_string()
}

fn modulation(modu: Modu, datr: &DataRate, codr: Option<&str>) -> Modulation {
    let p = match (modu, datr) {
        (Modu::Fsk, DataRate::Fsk(bps)) => {
            ModulationParameters::Fsk(FskModulationInfo { frequency_deviation: 0, datarate: *bps })
        }
        _ => {
            let (sf, bw) = datr.sf_bw().unwrap_or((0, 0));
            ModulationParameters::Lora(LoraModulationInfo {
                bandwidth: bw * 1000,
                spreading_factor: u32::from(sf),
                code_rate: code_rate(codr) as i32,
                polarization_inversion: false,
            })
        }
    };
    Modulation { parameters: Some(p) }
}

pub fn uplink_frame(gateway: GatewayEui, rxpk: &Rxpk, phy: &[u8], uplink_id: u32, ns_time: SystemTime) -> Vec<u8> {
    let antenna = rxpk.rsig.iter().max_by_key(|r| r.rssic.unwrap_or(i32::MIN)).map_or(0, |r| u32::from(r.ant));
    UplinkFrame {
        phy_payload: phy.to_vec(),
        tx_info: Some(UplinkTxInfo {
            frequency: mhz_to_hz(rxpk.freq),
            modulation: Some(modulation(rxpk.modu, &rxpk.datr, rxpk.codr.as_deref())),
        }),
        rx_info: Some(UplinkRxInfo {
            gateway_id: gateway.to_string(),
            uplink_id,
            ns_time: Some(timestamp(ns_time)),
            time_since_gps_epoch: rxpk.tmms.map(|ms| PbDuration {
                seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
                nanos: ((ms % 1000) * 1_000_000) as i32,
            }),
            rssi: rxpk.best_rssi(),
            snr: rxpk.best_snr() as f32,
            channel: u32::from(rxpk.chan),
            rf_chain: u32::from(rxpk.rfch),
            antenna,
            context: rxpk.tmst.to_be_bytes().to_vec(),
            crc_status: match rxpk.stat {
                1 => CrcStatus::CrcOk,
                -1 => CrcStatus::BadCrc,
                _ => CrcStatus::NoCrc,
            } as i32,
        }),
    }
    .encode_to_vec()
}

pub fn gateway_stats(gateway: GatewayEui, stat: &Stat, now: SystemTime) -> Vec<u8> {
    GatewayStats {
        gateway_id: gateway.to_string(),
        time: Some(timestamp(now)),
        rx_packets_received: stat.rxnb,
        rx_packets_received_ok: stat.rxok,
        tx_packets_received: stat.dwnb,
        tx_packets_emitted: stat.txnb,
    }
    .encode_to_vec()
}

pub fn conn_state(gateway: GatewayEui, online: bool) -> Vec<u8> {
    ConnState { gateway_id: gateway.to_string(), state: i32::from(online) }.encode_to_vec()
}

fn status_code(s: &str) -> TxAckStatus {
    match s {
        "OK" => TxAckStatus::Ok,
        "TOO_LATE" => TxAckStatus::TooLate,
        "TOO_EARLY" => TxAckStatus::TooEarly,
        "COLLISION_PACKET" => TxAckStatus::CollisionPacket,
        "COLLISION_BEACON" => TxAckStatus::CollisionBeacon,
        "TX_FREQ" => TxAckStatus::TxFreq,
        "TX_POWER" => TxAckStatus::TxPower,
        "GPS_UNLOCKED" => TxAckStatus::GpsUnlocked,
        "IGNORED" => TxAckStatus::Ignored,
        _ => TxAckStatus::InternalError,
    }
}

pub fn tx_ack(gateway: GatewayEui, downlink_id: u32, statuses: &[&str]) -> Vec<u8> {
    DownlinkTxAck {
        gateway_id: gateway.to_string(),
        downlink_id,
        items: statuses.iter().map(|s| DownlinkTxAckItem { status: status_code(s) as i32 }).collect(),
    }
    .encode_to_vec()
}

/// Parses a protobuf DownlinkFrame into `txpk`s.
pub fn downlink_frame(payload: &[u8]) -> Result<DownlinkFrame, DownlinkError> {
    let f = DownlinkFramePb::decode(payload).map_err(|e| DownlinkError::Json(e.to_string()))?;
    let mut items = Vec::with_capacity(f.items.len().min(4));
    for (i, item) in f.items.into_iter().enumerate() {
        let t = item.tx_info.ok_or(DownlinkError::Item(i, "txInfo is missing"))?;
        let (lora, fsk) = match t.modulation.and_then(|m| m.parameters) {
            Some(ModulationParameters::Lora(l)) => (
                Some((
                    l.bandwidth,
                    u8::try_from(l.spreading_factor).unwrap_or(0),
                    code_rate_text(l.code_rate),
                    l.polarization_inversion,
                )),
                None,
            ),
            Some(ModulationParameters::Fsk(f)) => (None, Some((f.frequency_deviation, f.datarate))),
            None => (None, None),
        };
        let timing = match t.timing.and_then(|t| t.parameters) {
            None | Some(TimingParameters::Immediately(_)) => ItemTiming::Immediately,
            Some(TimingParameters::Delay(d)) => ItemTiming::Delay(
                d.delay.and_then(|d| d.to_std()).ok_or(DownlinkError::Item(i, "timing.delay is not a duration"))?,
            ),
            Some(TimingParameters::GpsEpoch(g)) => ItemTiming::GpsEpoch(
                g.time_since_gps_epoch
                    .and_then(|d| d.to_std())
                    .ok_or(DownlinkError::Item(i, "timing.gpsEpoch is not a duration"))?,
            ),
        };
        let context = (!t.context.is_empty()).then_some(t.context);
        items.push(item_txpk(
            i,
            Item {
                phy: item.phy_payload,
                frequency: t.frequency,
                power: t.power,
                antenna: t.antenna,
                lora,
                fsk,
                timing,
                context,
            },
        )?);
    }
    Ok(DownlinkFrame { downlink_id: f.downlink_id, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downlink_frame_round_trip_with_wrapping_delay() {
        let item = |freq: u32, sf: u32, secs: i64| DownlinkFrameItem {
            phy_payload: vec![0x60, 1, 2, 3, 4, 0, 0, 0, 9, 9, 9, 9],
            tx_info: Some(DownlinkTxInfo {
                frequency: freq,
                power: 14,
                modulation: Some(Modulation {
                    parameters: Some(ModulationParameters::Lora(LoraModulationInfo {
                        bandwidth: 125_000,
                        spreading_factor: sf,
                        code_rate: CodeRate::Cr45 as i32,
                        polarization_inversion: true,
                    })),
                }),
                board: 0,
                antenna: 0,
                timing: Some(Timing {
                    parameters: Some(TimingParameters::Delay(DelayTimingInfo {
                        delay: Some(PbDuration { seconds: secs, nanos: 0 }),
                    })),
                }),
                context: 0xffff_ff00u32.to_be_bytes().to_vec(),
            }),
        };
        let f = DownlinkFramePb {
            downlink_id: 9,
            items: vec![item(868_100_000, 7, 1), item(869_525_000, 12, 2)],
            gateway_id: "0102030405060708".into(),
        };
        let d = downlink_frame(&f.encode_to_vec()).unwrap();
        assert_eq!(d.downlink_id, 9);
        assert_eq!(d.items[0].tmst, Some(999_744));
        assert_eq!(d.items[1].datr, DataRate::lora(12, 125));
        assert!(d.items[0].ipol);
        assert!(downlink_frame(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn uplink_and_ack_encode() {
        let rxpk: Rxpk = serde_json::from_str(r#"{"tmst":16909060,"freq":868.1,"modu":"LORA","datr":"SF9BW125","codr":"4/5","rssi":-70,"lsnr":5.5,"size":1,"data":"AA=="}"#).unwrap();
        let b = uplink_frame(GatewayEui::from_u64(1), &rxpk, &[0], 7, SystemTime::now());
        let u = UplinkFrame::decode(b.as_slice()).unwrap();
        let rx = u.rx_info.unwrap();
        assert_eq!(rx.context, vec![1, 2, 3, 4]);
        assert_eq!((rx.rssi, rx.snr, rx.crc_status), (-70, 5.5, CrcStatus::CrcOk as i32));
        assert_eq!(u.tx_info.unwrap().frequency, 868_100_000);
        let a = DownlinkTxAck::decode(tx_ack(GatewayEui::from_u64(1), 5, &["TOO_LATE", "OK"]).as_slice()).unwrap();
        assert_eq!(a.items.iter().map(|i| i.status).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(ConnState::decode(conn_state(GatewayEui::from_u64(1), true).as_slice()).unwrap().state, 1);
    }
}
