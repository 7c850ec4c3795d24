//! Typed `[[bridge]]` settings, filled by the server crate.

use std::time::Duration;

use roost_core::QoS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local -> upstream.
    Out,
    /// Upstream -> local.
    In,
    Both,
}

/// One topic rule, as Mosquitto writes it: `topic pattern direction qos local-prefix
/// remote-prefix`. Locally the filter is `local_prefix + pattern`, upstream
/// `remote_prefix + pattern`; a message's topic keeps its part below the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRule {
    pub pattern: String,
    pub direction: Direction,
    pub qos: QoS,
    pub local_prefix: String,
    pub remote_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    V311,
    V5,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    pub name: String,
    /// `host:port` of the upstream broker.
    pub address: String,
    pub version: MqttVersion,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    /// Upstream clean start (a persistent upstream session also keeps `in` messages).
    pub clean_start: bool,
    /// Upstream session expiry (MQTT 5); `None`: never.
    pub session_expiry: Option<Duration>,
    pub topics: Vec<TopicRule>,
    /// Outgoing QoS 1/2 messages unacknowledged upstream at once.
    pub max_inflight: u16,
    /// Messages per second sent upstream at most (0: unlimited), so a backlog drains
    /// without flooding the link.
    pub rate: u32,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub connect_timeout: Duration,
    /// Outgoing messages queued while the upstream is unreachable; beyond it the oldest
    /// are dropped (QoS 0 first) and counted as `queue_full`.
    pub max_queued: usize,
    /// TLS to the upstream; `None`: plain TCP.
    pub tls: Option<crate::tls::TlsSettings>,
}

impl BridgeSettings {
    /// The local session's client id.
    pub fn local_client_id(&self) -> String {
        format!("$bridge/{}", self.name)
    }
}
