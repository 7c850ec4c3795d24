//! Typed settings of the MQTT listener(s), filled from `[mqtt]` by the server crate.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// TCP listeners; empty disables plain MQTT.
    pub bind: Vec<SocketAddr>,
    /// Largest packet accepted from a client (and announced as v5 Maximum Packet Size).
    pub max_packet_size: u32,
    /// A connection that sends no CONNECT within this time is closed.
    pub connect_timeout: Duration,
    /// Topic aliases a v5 client may use towards us (Topic Alias Maximum in CONNACK).
    pub topic_alias_maximum: u16,
    /// Incoming QoS 1/2 publishes in flight at once (v5 Receive Maximum in CONNACK).
    pub receive_maximum: u16,
    /// Largest keep alive accepted; a client asking for more (or 0) is told this value in
    /// v5 Server Keep Alive. 0: accept whatever the client asks.
    pub max_keep_alive: u16,
    /// Accept an empty client id (3.1.1 with clean session, any v5 connect) and assign one.
    pub allow_empty_client_id: bool,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], 1883)), SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 1883))],
            max_packet_size: 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            topic_alias_maximum: 64,
            receive_maximum: 64,
            max_keep_alive: 0,
            allow_empty_client_id: true,
        }
    }
}
