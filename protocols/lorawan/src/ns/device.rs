//! A registered device: its settings, its durable state (session keys and frame counters,
//! used DevNonces, the last JoinNonce) and its downlink queue.

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::settings::{DeviceSettings, NetworkServerSettings};
use crate::types::{AesKey, DevAddr};

/// An application payload waiting for the device's next receive window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub id: String,
    pub confirmed: bool,
    pub fport: u8,
    pub data: Vec<u8>,
}

/// A device's network session (LoRaWAN 1.0: one NwkSKey, one AppSKey, FCntUp, FCntDown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub dev_addr: DevAddr,
    pub nwk_s_key: AesKey,
    pub app_s_key: AesKey,
    /// The last accepted uplink counter (`None`: none yet).
    pub fcnt_up: Option<u32>,
    /// The next downlink counter to use.
    pub fcnt_down: u32,
    pub rx1_delay: u8,
    pub rx1_dr_offset: u8,
    pub rx2_dr: u8,
    pub rx2_freq_hz: u32,
}

impl Session {
    pub fn new(
        dev_addr: DevAddr,
        nwk_s_key: AesKey,
        app_s_key: AesKey,
        s: &NetworkServerSettings,
        rx1_delay: u8,
    ) -> Self {
        Session {
            dev_addr,
            nwk_s_key,
            app_s_key,
            fcnt_up: None,
            fcnt_down: 0,
            rx1_delay: rx1_delay.max(1),
            rx1_dr_offset: s.rx1_dr_offset,
            rx2_dr: s.rx2_dr,
            rx2_freq_hz: s.rx2_freq_hz,
        }
    }
}

/// What survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    pub session: Option<Session>,
    /// DevNonces already used in joins (bounded, oldest forgotten first).
    #[serde(default)]
    pub dev_nonces: VecDeque<u16>,
    /// The last JoinNonce (AppNonce) sent.
    #[serde(default)]
    pub join_nonce: u32,
}

/// Where a device was registered: the config file, or the management API (then its
/// settings are in the store too, and the API may delete it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
        }
    }
}

pub struct Device {
    pub settings: DeviceSettings,
    pub origin: Origin,
    /// When its last uplink or join was accepted (not stored).
    pub last_seen: Option<SystemTime>,
    pub state: DeviceState,
    pub queue: VecDeque<QueueItem>,
    /// A confirmed downlink sent and not yet acknowledged, with its FCntDown.
    pub awaiting_ack: Option<(QueueItem, u32)>,
}

/// The 32-bit frame counter of an uplink whose 16 low bits are `fcnt16`, after `last`
/// (LoRaWAN 1.0.4 §4.3.1.5): the smallest value above `last` with those low bits, or
/// `last` itself when they are equal (a replay).
pub fn full_fcnt(last: Option<u32>, fcnt16: u16) -> u32 {
    match last {
        None => u32::from(fcnt16),
        Some(last) => {
            let c = (last & 0xffff_0000) | u32::from(fcnt16);
            if c < last { c.wrapping_add(0x1_0000) } else { c }
        }
    }
}
