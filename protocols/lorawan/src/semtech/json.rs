//! The JSON objects of the Semtech UDP protocol (`PROTOCOL.TXT` §3.2 `rxpk` and `stat`,
//! §6.2 `txpk`, §6.3 `txpk_ack`). Unknown fields are ignored (forwarders add their own);
//! fields a forwarder may leave out are `Option`s.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The JSON body of PUSH_DATA.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushPayload {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rxpk: Vec<Rxpk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<Stat>,
}

/// `"LORA"` or `"FSK"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Modulation {
    #[serde(rename = "LORA")]
    Lora,
    #[serde(rename = "FSK")]
    Fsk,
}

/// `datr`: `"SF7BW125"` for LoRa, bits per second for FSK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DataRate {
    Lora(String),
    Fsk(u32),
}

impl DataRate {
    pub fn lora(sf: u8, bw_khz: u32) -> Self {
        DataRate::Lora(format!("SF{sf}BW{bw_khz}"))
    }

    /// (spreading factor, bandwidth in kHz) of a LoRa data rate string.
    pub fn sf_bw(&self) -> Option<(u8, u32)> {
        let DataRate::Lora(s) = self else { return None };
        let rest = s.strip_prefix("SF")?;
        let (sf, bw) = rest.split_once("BW")?;
        let sf: u8 = sf.parse().ok()?;
        let bw: u32 = bw.parse().ok()?;
        (5..=12).contains(&sf).then_some((sf, bw))
    }
}

/// Per-antenna metadata of a multi-antenna gateway (`rsig`, §3.2 of the v2 protocol with
/// fine timestamps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rsig {
    #[serde(default)]
    pub ant: u8,
    #[serde(default)]
    pub chan: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssic: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssis: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsnr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foff: Option<i32>,
}

/// A received frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rxpk {
    /// UTC time of reception (ISO 8601), when the gateway has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// GPS time of reception (ms since the GPS epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmms: Option<u64>,
    /// Concentrator counter at reception (µs, wraps at 2^32): what downlinks are timed on.
    pub tmst: u32,
    /// MHz.
    pub freq: f64,
    #[serde(default)]
    pub chan: u8,
    #[serde(default)]
    pub rfch: u8,
    /// 1: CRC OK, -1: CRC bad, 0: no CRC.
    #[serde(default = "crc_ok")]
    pub stat: i8,
    pub modu: Modulation,
    pub datr: DataRate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsnr: Option<f64>,
    #[serde(default)]
    pub size: u16,
    /// The PHYPayload, base64.
    pub data: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rsig: Vec<Rsig>,
}

fn crc_ok() -> i8 {
    1
}

impl Rxpk {
    /// The PHYPayload bytes; `None` if `data` is not base64.
    pub fn payload(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD.decode(self.data.as_bytes()).ok()
    }

    /// RSSI: the top-level value, else the best antenna's.
    pub fn best_rssi(&self) -> i32 {
        self.rssi.or_else(|| self.rsig.iter().filter_map(|r| r.rssic).max()).unwrap_or(-200)
    }

    /// SNR: the top-level value, else the best antenna's.
    pub fn best_snr(&self) -> f64 {
        self.lsnr.or_else(|| self.rsig.iter().filter_map(|r| r.lsnr).max_by(|a, b| a.total_cmp(b))).unwrap_or(-50.0)
    }
}

/// Gateway statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lati: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alti: Option<f64>,
    /// Radio packets received.
    #[serde(default)]
    pub rxnb: u32,
    /// ... with a valid CRC.
    #[serde(default)]
    pub rxok: u32,
    /// ... forwarded.
    #[serde(default)]
    pub rxfw: u32,
    /// Percentage of upstream datagrams acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ackr: Option<f64>,
    /// Downlinks received.
    #[serde(default)]
    pub dwnb: u32,
    /// ... emitted.
    #[serde(default)]
    pub txnb: u32,
}

/// A frame to transmit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Txpk {
    /// Send now, ignoring `tmst`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imme: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmms: Option<u64>,
    pub freq: f64,
    #[serde(default)]
    pub rfch: u8,
    /// dBm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powe: Option<i32>,
    pub modu: Modulation,
    pub datr: DataRate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fdev: Option<u32>,
    /// Inverted polarity: true for LoRaWAN downlinks.
    #[serde(default)]
    pub ipol: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prea: Option<u16>,
    pub size: u16,
    pub data: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ncrc: bool,
}

impl Txpk {
    pub fn payload(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD.decode(self.data.as_bytes()).ok()
    }
}

/// TX_ACK `error` values (§6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TxAckError {
    None,
    TooLate,
    TooEarly,
    CollisionPacket,
    CollisionBeacon,
    TxFreq,
    TxPower,
    GpsUnlocked,
    /// Any other value a forwarder invents.
    #[serde(other)]
    Unknown,
}

impl TxAckError {
    pub fn as_str(self) -> &'static str {
        match self {
            TxAckError::None => "NONE",
            TxAckError::TooLate => "TOO_LATE",
            TxAckError::TooEarly => "TOO_EARLY",
            TxAckError::CollisionPacket => "COLLISION_PACKET",
            TxAckError::CollisionBeacon => "COLLISION_BEACON",
            TxAckError::TxFreq => "TX_FREQ",
            TxAckError::TxPower => "TX_POWER",
            TxAckError::GpsUnlocked => "GPS_UNLOCKED",
            TxAckError::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct PullRespPayload {
    pub txpk: Txpk,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TxAckPayload {
    #[serde(default)]
    pub txpk_ack: Option<TxAckInner>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TxAckInner {
    #[serde(default)]
    pub error: Option<TxAckError>,
}
