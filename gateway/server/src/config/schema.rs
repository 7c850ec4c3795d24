//! The TOML schema of `roost.toml`, as read: one struct per section, every key optional
//! (`default`) and every unknown key an error (`deny_unknown_fields`). Values are kept close
//! to their TOML form (integers as `i64`, addresses as strings) so that range and format
//! checks happen in one place, [`super::validate`], with one style of message.
//!
//! Defaults come from the typed settings' `Default` impls, so the code has one source of
//! truth; `config/roost.toml` is tested against it.

use std::fmt;

use roost_codec::settings::{CodecLimits, Transport};
use roost_core::settings::{BrokerSettings, OverflowPolicy, SharedStrategy};
use roost_mqtt::settings::MqttSettings;
use roost_mqttsn::settings::MqttSnSettings;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::duration::{ConfigDuration, DurationOrNever};

pub(super) const DEFAULT_LOG_LEVEL: &str = "info";
pub(super) const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table of sections")]
pub(super) struct ConfigFile {
    pub node: NodeSection,
    pub log: LogSection,
    pub mqtt: MqttSection,
    pub mqttsn: MqttSnSection,
    pub coap: super::coap::CoapSection,
    pub lorawan: super::lorawan::LorawanSection,
    pub lwm2m: super::lwm2m::Lwm2mSection,
    pub limits: LimitsSection,
    pub auth: AuthSection,
    pub acl: super::security::AclSection,
    pub storage: StorageSection,
    pub http: HttpSection,
    /// `[[bridge]]`: none by default (and then not written out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bridge: Vec<super::bridge::BridgeSection>,
    /// `[[codec]]`: custom-protocol listeners. None by default (and then not written out,
    /// so the default file need not say `codec = []`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codec: Vec<CodecSection>,
    /// `[[webhook]]`: none by default (and then not written out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook: Vec<super::webhook::WebhookSection>,
    /// `[cluster]`: none by default (and then not written out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::cluster::ClusterSection>,
    /// `[[rule]]`: SQL rules and their actions (roost-rules). None by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule: Vec<roost_rules::RuleConfig>,
    /// `[[payload_codec]]`: TS013 JavaScript payload codecs (roost-plugins). None by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub payload_codec: Vec<roost_plugins::payload::PayloadCodecConfig>,
    /// `[adapter.NAME]`: sections of third-party adapters, read by the adapter registered
    /// under that name (`gateway::Builder::adapter`). None by default.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub adapter: std::collections::BTreeMap<String, toml::Table>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct NodeSection {
    pub name: String,
    pub shutdown_grace: ConfigDuration,
    pub sys_interval: ConfigDuration,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            name: BrokerSettings::default().node_name,
            shutdown_grace: ConfigDuration(DEFAULT_SHUTDOWN_GRACE),
            sys_interval: ConfigDuration(super::DEFAULT_SYS_INTERVAL),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct LogSection {
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { level: DEFAULT_LOG_LEVEL.to_string() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct MqttSection {
    pub bind: AddrList,
    pub max_packet_size: Int,
    pub connect_timeout: ConfigDuration,
    pub topic_alias_maximum: Int,
    pub receive_maximum: Int,
    pub max_keep_alive: Int,
    pub allow_empty_client_id: bool,
    pub retain_available: bool,
    pub shared_subscription_strategy: SharedStrategyName,
    pub tls_bind: AddrList,
    pub ws_bind: AddrList,
    pub wss_bind: AddrList,
    pub ws_path: String,
    /// PROXY protocol v1/v2 headers from `proxy_trusted` balancers (addresses or CIDRs).
    pub proxy_protocol: bool,
    pub proxy_trusted: Vec<String>,
    pub max_connections: Int,
    pub max_conn_rate: Int,
    pub rate_limit: String,
    pub messages_rate: String,
    pub rate_limit_action: String,
    pub tls: super::security::MqttTlsSection,
}

impl Default for MqttSection {
    fn default() -> Self {
        let mqtt = MqttSettings::default();
        let broker = BrokerSettings::default();
        MqttSection {
            bind: AddrList(mqtt.bind.iter().map(|addr| addr.to_string()).collect()),
            max_packet_size: Int::from(mqtt.max_packet_size),
            connect_timeout: ConfigDuration(mqtt.connect_timeout),
            topic_alias_maximum: Int::from(mqtt.topic_alias_maximum),
            receive_maximum: Int::from(mqtt.receive_maximum),
            max_keep_alive: Int::from(mqtt.max_keep_alive),
            allow_empty_client_id: mqtt.allow_empty_client_id,
            retain_available: broker.retain_available,
            shared_subscription_strategy: broker.shared_strategy.into(),
            tls_bind: AddrList(Vec::new()),
            ws_bind: AddrList(Vec::new()),
            wss_bind: AddrList(Vec::new()),
            ws_path: mqtt.ws_path,
            proxy_protocol: false,
            proxy_trusted: Vec::new(),
            max_connections: Int(0),
            max_conn_rate: Int(0),
            rate_limit: String::new(),
            messages_rate: String::new(),
            rate_limit_action: "throttle".into(),
            tls: Default::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct MqttSnSection {
    pub bind: AddrList,
    pub recv_buffer: Int,
    pub gateway_id: Int,
    pub advertise_interval: ConfigDuration,
    pub advertise_address: String,
    pub mountpoint: String,
    pub max_clients: Int,
    pub max_topics_per_client: Int,
    pub max_sleep_buffer: Int,
    pub retry_interval: ConfigDuration,
    pub max_retries: Int,
    pub max_inflight: Int,
    pub allow_qos_minus_one: bool,
    pub subs_resume: bool,
    pub peer_packet_rate: Int,
    pub new_peers_rate: Int,
    pub predefined: Vec<PredefinedTopic>,
}

/// One `[[mqttsn.predefined]]` entry.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table with `id` and `topic`")]
pub(super) struct PredefinedTopic {
    pub id: Int,
    pub topic: String,
}

impl Default for MqttSnSection {
    fn default() -> Self {
        let sn = MqttSnSettings::default();
        MqttSnSection {
            bind: AddrList(sn.bind.iter().map(|addr| addr.to_string()).collect()),
            recv_buffer: Int::from(sn.recv_buffer),
            gateway_id: Int(i64::from(sn.gateway_id)),
            advertise_interval: ConfigDuration(sn.advertise_interval.unwrap_or_default()),
            advertise_address: sn.advertise_address.to_string(),
            mountpoint: sn.mountpoint,
            max_clients: Int::from(sn.max_clients),
            max_topics_per_client: Int::from(sn.max_topics_per_client),
            max_sleep_buffer: Int::from(sn.max_sleep_buffer),
            retry_interval: ConfigDuration(sn.retry_interval),
            max_retries: Int::from(sn.max_retries),
            max_inflight: Int::from(sn.max_inflight),
            allow_qos_minus_one: sn.allow_qos_minus_one,
            subs_resume: sn.subs_resume,
            peer_packet_rate: Int::from(sn.peer_packet_rate),
            new_peers_rate: Int::from(sn.new_peers_rate),
            predefined: sn
                .predefined
                .into_iter()
                .map(|(id, topic)| PredefinedTopic { id: Int::from(id), topic })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct LimitsSection {
    pub max_connections: Int,
    pub max_inflight: Int,
    pub max_queued_messages: Int,
    pub overflow_policy: OverflowPolicyName,
    pub queue_qos0_offline: bool,
    pub max_awaiting_rel: Int,
    pub max_topic_length: Int,
    pub max_topic_levels: Int,
    pub max_subscriptions_per_client: Int,
    pub max_session_expiry: DurationOrNever,
    pub max_retained_messages: Int,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let broker = BrokerSettings::default();
        LimitsSection {
            max_connections: Int::from(broker.max_connections),
            max_inflight: Int::from(broker.max_inflight),
            max_queued_messages: Int::from(broker.max_queued_messages),
            overflow_policy: broker.overflow_policy.into(),
            queue_qos0_offline: broker.queue_qos0_offline,
            max_awaiting_rel: Int::from(broker.max_awaiting_rel),
            max_topic_length: Int::from(broker.max_topic_length),
            max_topic_levels: Int::from(broker.max_topic_levels),
            max_subscriptions_per_client: Int::from(broker.max_subscriptions_per_client),
            max_session_expiry: DurationOrNever(broker.max_session_expiry),
            max_retained_messages: Int::from(broker.max_retained_messages),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct AuthSection {
    pub allow_anonymous: AnonymousName,
    pub chain: Vec<String>,
    pub password_file: String,
    pub client_ids: Vec<String>,
    pub slow_after_failures: Int,
    pub http: super::security::AuthHttpSection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<super::authdb::SqlSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mysql: Option<super::authdb::SqlSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<super::authdb::RedisSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ldap: Option<super::authdb::LdapSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<super::jwt::JwtSection>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            allow_anonymous: AnonymousName::Word("loopback".into()),
            chain: Vec::new(),
            password_file: String::new(),
            client_ids: Vec::new(),
            slow_after_failures: Int::from(BrokerSettings::default().auth_failures_free),
            http: Default::default(),
            postgresql: None,
            mysql: None,
            redis: None,
            ldap: None,
            jwt: None,
        }
    }
}

/// `auth.allow_anonymous`: `true`, `false`, or `"loopback"` (the default: anonymous
/// clients while every listener binds loopback only; start-up refuses otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged, expecting = "true, false or \"loopback\"")]
pub(super) enum AnonymousName {
    Bool(bool),
    Word(String),
}

/// One `[[codec]]` listener. `codec` and `bind` must be given; the rest have defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct CodecSection {
    /// The listener's name; defaults to the codec's name.
    pub name: String,
    pub codec: String,
    /// A WebAssembly codec file (`docs/plugins.md`) instead of a registered `codec`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub plugin: String,
    pub transport: TransportName,
    pub bind: String,
    pub mountpoint: String,
    pub options: toml::Table,
    pub limits: CodecLimitsSection,
}

impl Default for CodecSection {
    fn default() -> Self {
        CodecSection {
            name: String::new(),
            codec: String::new(),
            plugin: String::new(),
            transport: TransportName::Tcp,
            bind: String::new(),
            mountpoint: String::new(),
            options: toml::Table::new(),
            limits: CodecLimitsSection::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct CodecLimitsSection {
    pub max_connections: Int,
    pub max_frame_size: Int,
    pub connect_timeout: ConfigDuration,
    pub idle_timeout: ConfigDuration,
    pub max_pending_datagrams: Int,
}

impl Default for CodecLimitsSection {
    fn default() -> Self {
        let limits = CodecLimits::default();
        CodecLimitsSection {
            max_connections: Int::from(limits.max_connections),
            max_frame_size: Int::from(limits.max_frame_size),
            connect_timeout: ConfigDuration(limits.connect_timeout),
            idle_timeout: ConfigDuration(limits.idle_timeout),
            max_pending_datagrams: Int::from(limits.max_pending_datagrams),
        }
    }
}

/// `codec[N].transport` as spelled in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub(super) enum TransportName {
    #[serde(rename = "tcp")]
    Tcp,
    #[serde(rename = "udp")]
    Udp,
}

impl From<TransportName> for Transport {
    fn from(name: TransportName) -> Self {
        match name {
            TransportName::Tcp => Transport::Tcp,
            TransportName::Udp => Transport::Udp,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct HttpSection {
    pub bind: AddrList,
    pub api_keys: Vec<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            bind: AddrList(super::default_http_bind().iter().map(|a| a.to_string()).collect()),
            api_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct StorageSection {
    pub backend: StorageBackendName,
    pub data_dir: String,
    pub sync: SyncName,
    pub batch_interval: ConfigDuration,
    pub max_size: Int,
}

impl Default for StorageSection {
    fn default() -> Self {
        let d = super::StorageSettings::default();
        StorageSection {
            backend: if d.disk { StorageBackendName::Disk } else { StorageBackendName::Memory },
            data_dir: d.data_dir.display().to_string(),
            sync: d.sync.into(),
            batch_interval: ConfigDuration(match d.sync {
                roost_core::store::SyncMode::Batch(w) => w,
                _ => super::DEFAULT_BATCH_INTERVAL,
            }),
            max_size: Int(d.max_size.map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX))),
        }
    }
}

/// `storage.backend` as spelled in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub(super) enum StorageBackendName {
    #[serde(rename = "disk")]
    Disk,
    #[serde(rename = "memory")]
    Memory,
}

/// `storage.sync` as spelled in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub(super) enum SyncName {
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "batch")]
    Batch,
    #[serde(rename = "none")]
    None,
}

impl From<roost_core::store::SyncMode> for SyncName {
    fn from(m: roost_core::store::SyncMode) -> Self {
        match m {
            roost_core::store::SyncMode::Always => SyncName::Always,
            roost_core::store::SyncMode::Batch(_) => SyncName::Batch,
            roost_core::store::SyncMode::None => SyncName::None,
        }
    }
}

/// `mqtt.shared_subscription_strategy` as spelled in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub(super) enum SharedStrategyName {
    #[serde(rename = "round_robin")]
    RoundRobin,
    #[serde(rename = "random")]
    Random,
    #[serde(rename = "hash_clientid")]
    HashClientId,
}

impl From<SharedStrategy> for SharedStrategyName {
    fn from(strategy: SharedStrategy) -> Self {
        match strategy {
            SharedStrategy::RoundRobin => SharedStrategyName::RoundRobin,
            SharedStrategy::Random => SharedStrategyName::Random,
            SharedStrategy::HashClientId => SharedStrategyName::HashClientId,
        }
    }
}

impl From<SharedStrategyName> for SharedStrategy {
    fn from(name: SharedStrategyName) -> Self {
        match name {
            SharedStrategyName::RoundRobin => SharedStrategy::RoundRobin,
            SharedStrategyName::Random => SharedStrategy::Random,
            SharedStrategyName::HashClientId => SharedStrategy::HashClientId,
        }
    }
}

/// `limits.overflow_policy` as spelled in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub(super) enum OverflowPolicyName {
    #[serde(rename = "drop_oldest_qos0_first")]
    DropOldestQos0First,
    #[serde(rename = "drop_new")]
    DropNew,
}

impl From<OverflowPolicy> for OverflowPolicyName {
    fn from(policy: OverflowPolicy) -> Self {
        match policy {
            OverflowPolicy::DropOldestQos0First => OverflowPolicyName::DropOldestQos0First,
            OverflowPolicy::DropNew => OverflowPolicyName::DropNew,
        }
    }
}

impl From<OverflowPolicyName> for OverflowPolicy {
    fn from(name: OverflowPolicyName) -> Self {
        match name {
            OverflowPolicyName::DropOldestQos0First => OverflowPolicy::DropOldestQos0First,
            OverflowPolicyName::DropNew => OverflowPolicy::DropNew,
        }
    }
}

/// A TOML integer, range-checked later. Its own type only so that a wrong type reads
/// "expected an integer" rather than "expected i64".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(super) struct Int(pub i64);

impl From<u16> for Int {
    fn from(value: u16) -> Self {
        Int(i64::from(value))
    }
}

impl From<u32> for Int {
    fn from(value: u32) -> Self {
        Int(i64::from(value))
    }
}

impl From<usize> for Int {
    fn from(value: usize) -> Self {
        // Only defaults come through here; none is near i64::MAX.
        Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_i64(IntVisitor)
    }
}

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = Int;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Int, E> {
        Ok(Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Int, E> {
        i64::try_from(value).map(Int).map_err(|_| E::custom(format!("{value} is out of range")))
    }

    // toml hands integers beyond i64 over as 128-bit ones.
    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Int, E> {
        i64::try_from(value).map(Int).map_err(|_| E::custom(format!("{value} is out of range")))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Int, E> {
        i64::try_from(value).map(Int).map_err(|_| E::custom(format!("{value} is out of range")))
    }
}

/// A list of `"ip:port"` strings, parsed later. Its own type only so that a wrong type reads
/// "expected an array of "ip:port" strings" rather than "expected a sequence".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(super) struct AddrList(pub Vec<String>);

impl<'de> Deserialize<'de> for AddrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(AddrListVisitor)
    }
}

struct AddrListVisitor;

impl<'de> Visitor<'de> for AddrListVisitor {
    type Value = AddrList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an array of "ip:port" strings"#)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<AddrList, A::Error> {
        let mut addrs = Vec::new();
        while let Some(addr) = seq.next_element::<String>()? {
            addrs.push(addr);
        }
        Ok(AddrList(addrs))
    }
}
