//! `[[bridge]]`: MQTT bridges to upstream brokers, as read and as validated.

use std::time::Duration;

use roost_bridge::settings::{BridgeSettings, Direction, MqttVersion, TopicRule};
use roost_core::QoS;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::{ConfigDuration, DurationOrNever};
use super::schema::Int;

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct BridgeSection {
    pub name: String,
    pub address: String,
    pub version: String,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: ConfigDuration,
    pub clean_start: bool,
    pub session_expiry: DurationOrNever,
    pub max_inflight: Int,
    pub max_queued: Int,
    pub rate: Int,
    pub reconnect_min: ConfigDuration,
    pub reconnect_max: ConfigDuration,
    pub connect_timeout: ConfigDuration,
    pub topic: Vec<TopicSection>,
    pub tls: Option<TlsSection>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct TlsSection {
    pub ca_file: String,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
}

impl Default for BridgeSection {
    fn default() -> Self {
        BridgeSection {
            name: String::new(),
            address: String::new(),
            version: "5".into(),
            client_id: String::new(),
            username: None,
            password: None,
            keep_alive: ConfigDuration(Duration::from_secs(60)),
            clean_start: false,
            session_expiry: DurationOrNever(Some(Duration::from_secs(3600))),
            max_inflight: Int(32),
            max_queued: Int(100_000),
            rate: Int(0),
            reconnect_min: ConfigDuration(Duration::from_secs(1)),
            reconnect_max: ConfigDuration(Duration::from_secs(60)),
            connect_timeout: ConfigDuration(Duration::from_secs(10)),
            topic: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct TopicSection {
    pub pattern: String,
    pub direction: String,
    pub qos: Int,
    pub local_prefix: String,
    pub remote_prefix: String,
}

impl Default for TopicSection {
    fn default() -> Self {
        TopicSection {
            pattern: String::new(),
            direction: "out".into(),
            qos: Int(1),
            local_prefix: String::new(),
            remote_prefix: String::new(),
        }
    }
}

fn invalid(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

pub(super) fn bridges(sections: Vec<BridgeSection>) -> Result<Vec<BridgeSettings>, ConfigError> {
    let mut out: Vec<BridgeSettings> = Vec::new();
    for (i, b) in sections.into_iter().enumerate() {
        let bridge = bridge(i, b, &out)?;
        out.push(bridge);
    }
    Ok(out)
}

/// `[[bridge]]` number `i`, whose name none of the bridges before it (`taken`) has.
fn bridge(i: usize, b: BridgeSection, taken: &[BridgeSettings]) -> Result<BridgeSettings, ConfigError> {
    let key = |k: &str| format!("bridge[{i}].{k}");
    if b.name.is_empty() || b.name.contains(['/', '+', '#']) {
        return Err(invalid(key("name"), "missing, or contains '/', '+' or '#'"));
    }
    if taken.iter().any(|o| o.name == b.name) {
        return Err(invalid(key("name"), format!("{:?} names two bridges", b.name)));
    }
    if b.address.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
        return Err(invalid(key("address"), format!("{:?} is not \"host:port\"", b.address)));
    }
    let version = match b.version.as_str() {
        "3.1.1" | "4" => MqttVersion::V311,
        "5" | "5.0" => MqttVersion::V5,
        v => return Err(invalid(key("version"), format!("{v:?} is not \"3.1.1\" or \"5\""))),
    };
    let max_inflight = match b.max_inflight.0 {
        n @ 1..=65_535 => n as u16,
        n => return Err(invalid(key("max_inflight"), format!("{n} is out of range (1..=65535)"))),
    };
    let max_queued = usize::try_from(b.max_queued.0)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| invalid(key("max_queued"), format!("{} is out of range (at least 1)", b.max_queued.0)))?;
    let rate =
        u32::try_from(b.rate.0).map_err(|_| invalid(key("rate"), format!("{} is out of range (0..)", b.rate.0)))?;
    if b.reconnect_min.0.is_zero() || b.reconnect_max.0 < b.reconnect_min.0 {
        return Err(invalid(key("reconnect_max"), "reconnect_min must be > 0 and <= reconnect_max"));
    }
    if b.topic.is_empty() {
        return Err(invalid(key("topic"), "no [[bridge.topic]] rule: the bridge would carry nothing"));
    }
    let mut topics = Vec::new();
    for (j, t) in b.topic.into_iter().enumerate() {
        topics.push(topic_rule(i, j, t)?);
    }
    let tls = match b.tls {
        None => None,
        Some(t) => Some(bridge_tls(&key, t)?),
    };
    Ok(BridgeSettings {
        tls,
        client_id: if b.client_id.is_empty() { format!("roost-bridge-{}", b.name) } else { b.client_id },
        name: b.name,
        address: b.address,
        version,
        username: b.username,
        password: b.password,
        keep_alive: b.keep_alive.0,
        clean_start: b.clean_start,
        session_expiry: b.session_expiry.0,
        topics,
        max_inflight,
        max_queued,
        rate,
        reconnect_min: b.reconnect_min.0,
        reconnect_max: b.reconnect_max.0,
        connect_timeout: b.connect_timeout.0,
    })
}

/// `[[bridge.topic]]` number `j` of bridge `i`.
fn topic_rule(i: usize, j: usize, t: TopicSection) -> Result<TopicRule, ConfigError> {
    let tkey = |k: &str| format!("bridge[{i}].topic[{j}].{k}");
    let limits = roost_core::settings::BrokerSettings::default();
    if roost_core::topic::validate_filter(&t.pattern, &limits).is_err() {
        return Err(invalid(tkey("pattern"), format!("{:?} is not a topic filter", t.pattern)));
    }
    let direction = match t.direction.as_str() {
        "out" => Direction::Out,
        "in" => Direction::In,
        "both" => Direction::Both,
        d => return Err(invalid(tkey("direction"), format!("{d:?} is not \"out\", \"in\" or \"both\""))),
    };
    let qos = u8::try_from(t.qos.0)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| invalid(tkey("qos"), format!("{} is not 0, 1 or 2", t.qos.0)))?;
    for (k, p) in [("local_prefix", &t.local_prefix), ("remote_prefix", &t.remote_prefix)] {
        if p.contains(['+', '#']) {
            return Err(invalid(tkey(k), "contains a wildcard"));
        }
    }
    Ok(TopicRule { pattern: t.pattern, direction, qos, local_prefix: t.local_prefix, remote_prefix: t.remote_prefix })
}

/// `[bridge.tls]` of the bridge whose keys `key` names: the CA is required; a client
/// certificate comes with its key.
fn bridge_tls(key: &dyn Fn(&str) -> String, t: TlsSection) -> Result<roost_bridge::tls::TlsSettings, ConfigError> {
    if t.ca_file.is_empty() {
        return Err(invalid(key("tls.ca_file"), "missing: the CA file the upstream's certificate must chain to"));
    }
    if t.cert_file.is_some() != t.key_file.is_some() {
        return Err(invalid(key("tls.key_file"), "cert_file and key_file go together"));
    }
    Ok(roost_bridge::tls::TlsSettings {
        ca_file: t.ca_file.into(),
        cert_file: t.cert_file.map(Into::into),
        key_file: t.key_file.map(Into::into),
        server_name: t.server_name,
    })
}
