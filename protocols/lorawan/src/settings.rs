//! Typed settings of the LoRaWAN adapter, filled from `[lorawan]` by the server crate.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::region::{EU868, Region};
use crate::types::{AesKey, DevAddr, DevEui, JoinEui};

/// What Roost does with the frames gateways forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Republish raw frames on MQTT as ChirpStack Gateway Bridge v4 does.
    Bridge,
    /// Decrypt device traffic into application messages (a built-in network server).
    NetworkServer,
}

/// Bridge-mode payload encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marshaler {
    /// ChirpStack's `gw` messages in canonical protobuf JSON.
    Json,
    /// ChirpStack's `gw` messages as protobuf (ChirpStack's default).
    Protobuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    /// Topics are `{topic_prefix}/gateway/{gateway_id}/...` (ChirpStack uses the region,
    /// e.g. `eu868`).
    pub topic_prefix: String,
    pub marshaler: Marshaler,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings { topic_prefix: "eu868".into(), marshaler: Marshaler::Json }
    }
}

/// How a device joins. (Serde: devices created through the management API are stored.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Activation by personalisation: the session is configured.
    Abp { dev_addr: DevAddr, nwk_s_key: AesKey, app_s_key: AesKey },
    /// Over-the-air activation: the device joins with its AppKey. `join_eui: None` accepts
    /// any JoinEUI.
    Otaa { join_eui: Option<JoinEui>, app_key: AesKey },
}

/// How `object` is made from an uplink's bytes in `event/up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadCodec {
    None,
    /// The bytes are a JSON document.
    Json,
    /// Cayenne LPP (digital/analog in/out, temperature, humidity, ... as in ChirpStack).
    CayenneLpp,
    /// A TS013 JavaScript codec of `[[payload_codec]]`, by name: `decodeUplink` makes
    /// `object`, `encodeDownlink` turns a `command/down` `object` into bytes.
    Script(String),
}

impl PayloadCodec {
    /// The name `payload_codec` has in the config file and the API.
    pub fn as_str(&self) -> &str {
        match self {
            PayloadCodec::None => "none",
            PayloadCodec::Json => "json",
            PayloadCodec::CayenneLpp => "cayenne_lpp",
            PayloadCodec::Script(name) => name,
        }
    }

    /// A built-in name, or the name of a script codec (1-64 of `[A-Za-z0-9_-]`; whether
    /// it is configured is checked where the codecs are known).
    pub fn parse(s: &str) -> Option<PayloadCodec> {
        match s {
            "" | "none" => Some(PayloadCodec::None),
            "json" => Some(PayloadCodec::Json),
            "cayenne_lpp" => Some(PayloadCodec::CayenneLpp),
            name if name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {
                Some(PayloadCodec::Script(name.to_string()))
            }
            _ => None,
        }
    }
}

/// What a script codec made of an uplink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptDecoded {
    pub object: Option<serde_json::Value>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Script payload codecs by name (`[[payload_codec]]`, run by roost-plugins), handed to the
/// network server by the gateway. `None` from either method: no codec of that name.
pub trait ScriptCodecs: Send + Sync {
    fn decode_uplink(&self, name: &str, fport: u8, bytes: &[u8]) -> Option<ScriptDecoded>;
    /// The bytes and the fPort the codec chose (if it did), or its errors.
    #[allow(clippy::type_complexity)]
    fn encode_downlink(
        &self,
        name: &str,
        object: &serde_json::Value,
    ) -> Option<Result<(Option<u8>, Vec<u8>), Vec<String>>>;
}

/// The gateway's [`ScriptCodecs`], if any. Settings compare equal when they hold the same
/// codecs object.
#[derive(Clone, Default)]
pub struct Scripts(pub Option<std::sync::Arc<dyn ScriptCodecs>>);

impl PartialEq for Scripts {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::addr_eq(std::sync::Arc::as_ptr(a), std::sync::Arc::as_ptr(b)),
            _ => false,
        }
    }
}

impl Eq for Scripts {}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Scripts(Some)" } else { "Scripts(None)" })
    }
}

impl Scripts {
    /// `decodeUplink` of `name`; a missing codec is an error in the result.
    pub fn decode(&self, name: &str, fport: u8, bytes: &[u8]) -> ScriptDecoded {
        self.0.as_ref().and_then(|s| s.decode_uplink(name, fport, bytes)).unwrap_or_else(|| ScriptDecoded {
            errors: vec![format!("payload codec {name:?} is not configured ([[payload_codec]])")],
            ..ScriptDecoded::default()
        })
    }

    /// `encodeDownlink` of `name`; a missing codec is an error.
    pub fn encode(&self, name: &str, object: &serde_json::Value) -> Result<(Option<u8>, Vec<u8>), Vec<String>> {
        self.0
            .as_ref()
            .and_then(|s| s.encode_downlink(name, object))
            .unwrap_or_else(|| Err(vec![format!("payload codec {name:?} is not configured ([[payload_codec]])")]))
    }
}

/// One registered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSettings {
    pub dev_eui: DevEui,
    pub name: String,
    pub application_id: String,
    pub activation: Activation,
    pub payload_codec: PayloadCodec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkServerSettings {
    pub region: Region,
    /// 24-bit NetID; OTAA DevAddrs carry its NwkID.
    pub net_id: u32,
    /// How long copies of a frame from other gateways are collected.
    pub deduplication_window: Duration,
    /// Largest accepted jump of the uplink frame counter.
    pub max_fcnt_gap: u32,
    pub rx1_dr_offset: u8,
    /// RX1 delay in seconds (1..=15) given to OTAA devices; ABP devices use 1.
    pub rx1_delay: u8,
    pub rx2_dr: u8,
    pub rx2_freq_hz: u32,
    /// Downlinks queued per device; more are refused (counted).
    pub max_queue: usize,
    /// DevNonces remembered per device for replay protection.
    pub max_dev_nonces: usize,
    pub devices: Vec<DeviceSettings>,
    /// Script payload codecs devices may name (set by the gateway, not the config file).
    pub scripts: Scripts,
}

impl Default for NetworkServerSettings {
    fn default() -> Self {
        NetworkServerSettings {
            region: EU868,
            net_id: 0,
            deduplication_window: Duration::from_millis(200),
            max_fcnt_gap: 16_384,
            rx1_dr_offset: 0,
            rx1_delay: 1,
            rx2_dr: EU868.rx2_dr,
            rx2_freq_hz: EU868.rx2_freq_hz,
            max_queue: 32,
            max_dev_nonces: 1024,
            devices: Vec::new(),
            scripts: Scripts::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LorawanSettings {
    /// UDP sockets for packet forwarders; empty disables LoRaWAN.
    pub bind: Vec<SocketAddr>,
    /// Kernel receive buffer asked for each socket, bytes (0: the system default).
    pub recv_buffer: usize,
    pub mode: Mode,
    /// A gateway silent (no PUSH_DATA, PULL_DATA or TX_ACK) this long is dropped: OFFLINE.
    pub gateway_timeout: Duration,
    /// Gateways tracked at once; datagrams from more are dropped (counted).
    pub max_gateways: usize,
    pub bridge: BridgeSettings,
    pub network_server: NetworkServerSettings,
}

impl Default for LorawanSettings {
    fn default() -> Self {
        LorawanSettings {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], 1700))],
            recv_buffer: 4 * 1024 * 1024,
            mode: Mode::NetworkServer,
            gateway_timeout: Duration::from_secs(60),
            max_gateways: 10_000,
            bridge: BridgeSettings::default(),
            network_server: NetworkServerSettings::default(),
        }
    }
}

/// A device as written in `[[lorawan.device]]` or a management API request: text fields,
/// validated into [`DeviceSettings`] by [`DeviceFields::validate`] (one set of rules for
/// both). Absent keys are empty; unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub struct DeviceFields {
    pub dev_eui: String,
    pub name: String,
    pub application_id: String,
    pub payload_codec: String,
    // ABP
    pub dev_addr: Option<String>,
    pub nwk_s_key: Option<String>,
    pub app_s_key: Option<String>,
    // OTAA
    pub join_eui: Option<String>,
    pub app_key: Option<String>,
}

/// What is wrong with one field of [`DeviceFields`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

/// Names and application ids are at most this long (they appear in every event).
const MAX_NAME: usize = 256;

impl DeviceFields {
    pub fn validate(self) -> Result<DeviceSettings, FieldError> {
        fn hex<T>(
            field: &'static str,
            value: &str,
            parse: impl Fn(&str) -> Option<T>,
            what: &str,
        ) -> Result<T, FieldError> {
            parse(value).ok_or_else(|| FieldError { field, problem: format!("{value:?} is not {what}") })
        }
        let k128 = |field: &'static str, v: &str| hex(field, v, AesKey::parse, "an AES-128 key of 32 hex digits");
        let dev_eui = hex("dev_eui", &self.dev_eui, DevEui::parse, "an EUI-64 of 16 hex digits")?;
        let activation = match (&self.dev_addr, &self.nwk_s_key, &self.app_s_key, &self.app_key) {
            (Some(addr), Some(nwk), Some(app), None) => Activation::Abp {
                dev_addr: hex("dev_addr", addr, DevAddr::parse, "a DevAddr of 8 hex digits")?,
                nwk_s_key: k128("nwk_s_key", nwk)?,
                app_s_key: k128("app_s_key", app)?,
            },
            (None, None, None, Some(app_key)) => Activation::Otaa {
                join_eui: self
                    .join_eui
                    .as_deref()
                    .map(|j| hex("join_eui", j, JoinEui::parse, "an EUI-64 of 16 hex digits"))
                    .transpose()?,
                app_key: k128("app_key", app_key)?,
            },
            _ => {
                return Err(FieldError {
                    field: "app_key",
                    problem: "a device is either ABP (dev_addr, nwk_s_key and app_s_key) or OTAA (app_key, optionally join_eui)".into(),
                });
            }
        };
        if self.application_id.is_empty()
            || self.application_id.len() > MAX_NAME
            || self.application_id.contains(['/', '+', '#', '\0'])
        {
            return Err(FieldError {
                field: "application_id",
                problem: format!(
                    "missing, over {MAX_NAME} bytes, or contains '/', '+', '#' or NUL (it is a topic level)"
                ),
            });
        }
        if self.name.len() > MAX_NAME {
            return Err(FieldError { field: "name", problem: format!("over {MAX_NAME} bytes") });
        }
        let payload_codec = PayloadCodec::parse(&self.payload_codec).ok_or_else(|| FieldError {
            field: "payload_codec",
            problem: format!(
                "{:?} is not \"none\", \"json\", \"cayenne_lpp\" or the name of a [[payload_codec]]",
                self.payload_codec
            ),
        })?;
        Ok(DeviceSettings {
            dev_eui,
            name: if self.name.is_empty() { dev_eui.to_string() } else { self.name },
            application_id: self.application_id,
            activation,
            payload_codec,
        })
    }
}
