//! Configuration: `roost.toml` -> validated, typed [`Settings`].
//!
//! - `schema`: the file's sections as serde structs (every key optional, unknown keys refused)
//! - `validate`: ranges, addresses and filters, to the settings types of each crate
//! - `duration`: `"10s"`-style durations
//! - `error`: [`ConfigError`], which always names the dotted key at fault
//!
//! The annotated default file is [`crate::DEFAULT_CONFIG`]; the tests below keep it equal to
//! the code defaults.

mod authdb;
mod bridge;
mod cluster;
mod coap;
mod duration;
mod effective;
mod error;
mod jwt;
mod lorawan;
mod lwm2m;
mod plugins;
mod rules;
mod schema;
mod security;
mod validate;
mod webhook;

use std::path::Path;
use std::time::Duration;

use roost_codec::CodecListenerSettings;
use roost_core::settings::BrokerSettings;
use roost_mqtt::settings::MqttSettings;
use roost_mqttsn::settings::MqttSnSettings;
use serde::Deserialize;

pub use authdb::{AclSourceSettings, DbAuthSettings};
pub use duration::{DurationError, format_duration, parse_duration};
pub use effective::{EffectiveConfig, REDACTED};
pub use error::ConfigError;
pub use security::{AuthSettings, AuthSourceKind, HttpAuthSettings};

/// `[storage]`: where the durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// The embedded file store (`backend = "disk"`); otherwise state lives in memory only.
    pub disk: bool,
    /// Directory of `roost.redb` (relative paths are relative to the working directory).
    pub data_dir: std::path::PathBuf,
    pub sync: roost_core::store::SyncMode,
    /// Live data past which new messages for persistent sessions stay in memory only.
    pub max_size: Option<u64>,
}

pub(crate) const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(2);

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            disk: true,
            data_dir: std::path::PathBuf::from("data"),
            // Measured: commits started as soon as work exists group-commit by themselves
            // under load and beat a fixed window (docs/storage.md).
            sync: roost_core::store::SyncMode::Always,
            max_size: Some(1 << 30),
        }
    }
}

impl StorageSettings {
    /// The store file.
    pub fn file(&self) -> std::path::PathBuf {
        self.data_dir.join("roost.redb")
    }
}

/// Everything the gateway needs from the config file, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub storage: StorageSettings,
    /// `[http]`: where `/metrics` is served (empty: no HTTP listener).
    pub http_bind: Vec<std::net::SocketAddr>,
    /// `[http] api_keys`: keys the management API accepts. Empty: one is generated at first
    /// start and kept in `data_dir/api_key`.
    pub api_keys: Vec<String>,
    /// `[[webhook]]` event sinks (none by default).
    pub webhooks: Vec<crate::webhook::WebhookSettings>,
    /// `[[rule]]`s (none by default); more can be added through `/api/v1/rules`.
    pub rules: Vec<roost_rules::RuleConfig>,
    /// `[[payload_codec]]`s: TS013 JavaScript payload codecs (none by default).
    pub payload_codecs: Vec<roost_plugins::payload::PayloadCodecConfig>,
    /// `[[bridge]]`s to upstream brokers (none by default).
    pub bridges: Vec<roost_bridge::BridgeSettings>,
    /// `[cluster]`: this node in a cluster over NATS JetStream; `None`: a single node.
    pub cluster: Option<roost_cluster::ClusterSettings>,
    pub broker: BrokerSettings,
    pub mqtt: MqttSettings,
    /// `[[codec]]` listeners (none by default). Their codecs are looked up by name in the
    /// registry the gateway starts with (`gateway::Gateway::builder`).
    pub codecs: Vec<CodecListenerSettings>,
    pub mqttsn: MqttSnSettings,
    /// `[auth]` sources (`allow_anonymous` is in `broker`).
    pub auth: AuthSettings,
    /// `[acl]` rules; `None`: everything allowed.
    pub acl: Option<roost_core::auth::Acl>,
    pub coap: roost_coap::settings::CoapSettings,
    /// `[lorawan]`: Semtech UDP packet forwarders, bridge or network-server mode.
    pub lorawan: roost_lorawan::settings::LorawanSettings,
    /// `[lwm2m]`: the LwM2M server (registration interface, EMQX-compatible MQTT mapping).
    pub lwm2m: roost_lwm2m::server::Lwm2mSettings,
    /// A level (`"info"`) or an `EnvFilter` directive; `RUST_LOG` overrides it at start-up.
    pub log_level: String,
    /// How long shutdown waits for connections to close before it drops them.
    pub shutdown_grace: Duration,
    /// How often `$SYS/brokers/{node}/...` statistics are published; `None`: never.
    pub sys_interval: Option<Duration>,
    /// `[adapter.NAME]` sections, as written: each is handed to the adapter registered under
    /// `NAME`, which checks it (a section no adapter claims is an error at start).
    pub adapters: std::collections::BTreeMap<String, AdapterSection>,
    /// The file as read with its defaults, secrets redacted: what `GET /api/v1/config` and
    /// the dashboard show.
    pub effective: EffectiveConfig,
}

/// One `[adapter.NAME]` table, unchecked until its adapter reads it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdapterSection(pub toml::Table);

// TOML tables hold floats, so `PartialEq` is derived but not `Eq`; a NaN in a third-party
// section only makes two `Settings` compare unequal, which is harmless.
impl Eq for AdapterSection {}

/// Loopback only, like every default listener.
pub(crate) fn default_http_bind() -> Vec<std::net::SocketAddr> {
    vec![std::net::SocketAddr::from(([127, 0, 0, 1], 18083))]
}

pub(crate) const DEFAULT_SYS_INTERVAL: Duration = Duration::from_secs(10);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            storage: StorageSettings::default(),
            http_bind: default_http_bind(),
            api_keys: Vec::new(),
            webhooks: Vec::new(),
            rules: Vec::new(),
            payload_codecs: Vec::new(),
            bridges: Vec::new(),
            cluster: None,
            broker: BrokerSettings::default(),
            mqtt: MqttSettings::default(),
            codecs: Vec::new(),
            mqttsn: MqttSnSettings::default(),
            auth: AuthSettings::default(),
            acl: None,
            coap: roost_coap::settings::CoapSettings::default(),
            lorawan: roost_lorawan::settings::LorawanSettings::default(),
            lwm2m: roost_lwm2m::server::Lwm2mSettings::default(),
            log_level: schema::DEFAULT_LOG_LEVEL.to_string(),
            shutdown_grace: schema::DEFAULT_SHUTDOWN_GRACE,
            sys_interval: Some(DEFAULT_SYS_INTERVAL),
            adapters: Default::default(),
            effective: EffectiveConfig::of(&schema::ConfigFile::default()),
        }
    }
}

/// Reads and validates the config file at `path`; with no path, the defaults (which bind
/// loopback only).
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text)
}

/// Parses and validates config text. An empty text gives the defaults.
pub fn parse(text: &str) -> Result<Settings, ConfigError> {
    let deserializer = toml::de::Deserializer::parse(text).map_err(|e| ConfigError::from_toml(text, &e))?;
    let file = schema::ConfigFile::deserialize(deserializer).map_err(|e| ConfigError::from_toml(text, &e))?;
    let effective = EffectiveConfig::of(&file);
    Ok(Settings { effective, ..validate::settings(file)? })
}

#[cfg(test)]
mod tests;
