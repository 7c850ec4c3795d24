//! Typed settings of the MQTT-SN gateway, filled from `[mqttsn]` by the server crate.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSnSettings {
    /// UDP sockets; empty disables MQTT-SN.
    pub bind: Vec<SocketAddr>,
    /// Kernel receive buffer asked for each socket, bytes (0: the system default).
    pub recv_buffer: usize,
    /// GwId in ADVERTISE and GWINFO.
    pub gateway_id: u8,
    /// ADVERTISE period; `None`: no ADVERTISE (the default).
    pub advertise_interval: Option<Duration>,
    /// Where ADVERTISE goes (a broadcast or multicast address).
    pub advertise_address: SocketAddr,
    /// Prefix put before every topic name and filter a client uses, and taken off the
    /// topics delivered to it.
    pub mountpoint: String,
    /// Predefined topic ids shared by all clients: (id, topic name before the mountpoint).
    pub predefined: Vec<(u16, String)>,
    /// MQTT-SN clients (connected, asleep or in the will handshake) at once; a CONNECT beyond
    /// it is answered with CONNACK "rejected: congestion".
    pub max_clients: usize,
    /// Topic names registered per client (REGISTER in either direction).
    pub max_topics_per_client: usize,
    /// Messages buffered for a sleeping client; beyond it the oldest are dropped (counted).
    pub max_sleep_buffer: usize,
    /// Tretry: how long the gateway waits for a reply before resending (§6.13).
    pub retry_interval: Duration,
    /// Nretry: resends before the client is taken as lost.
    pub max_retries: u32,
    /// Outgoing QoS 1/2 messages in flight to one client at once.
    pub max_inflight: u16,
    /// Accept QoS -1 publishes (to predefined ids and short names) without a connection.
    pub allow_qos_minus_one: bool,
    /// On a resumed session, REGISTER the names of the client's subscriptions again.
    pub subs_resume: bool,
    /// Datagrams per second accepted from one peer (0: no limit); beyond it they are dropped.
    pub peer_packet_rate: u32,
    /// New peers per second the gateway takes on (0: no limit); a datagram from a new peer
    /// beyond it is dropped (the client retries its CONNECT).
    pub new_peers_rate: u32,
}

impl Default for MqttSnSettings {
    fn default() -> Self {
        MqttSnSettings {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], 1884))],
            recv_buffer: 4 * 1024 * 1024,
            gateway_id: 1,
            advertise_interval: None,
            advertise_address: SocketAddr::from(([255, 255, 255, 255], 1884)),
            mountpoint: String::new(),
            predefined: Vec::new(),
            max_clients: 100_000,
            max_topics_per_client: 1000,
            max_sleep_buffer: 1000,
            retry_interval: Duration::from_secs(10),
            max_retries: 5,
            max_inflight: 1,
            allow_qos_minus_one: true,
            subs_resume: false,
            peer_packet_rate: 0,
            new_peers_rate: 0,
        }
    }
}
