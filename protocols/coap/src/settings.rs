//! Typed settings of the CoAP gateway, filled from `[coap]` by the server crate.

use std::net::SocketAddr;
use std::time::Duration;

use roost_core::QoS;

/// How an MQTT message becomes an Observe notification (EMQX `notify_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyType {
    /// Non-confirmable notifications.
    Non,
    /// Confirmable notifications.
    Con,
    /// NON for QoS 0 messages, CON for QoS 1 and 2.
    Qos,
}

/// RFC 7252 §4.8 transmission parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmission {
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR in percent (150: 1.5).
    pub ack_random_factor_pct: u32,
    pub max_retransmit: u32,
    /// Outstanding confirmable messages to one peer at once (§4.7).
    pub nstart: usize,
}

impl Default for Transmission {
    fn default() -> Self {
        Transmission { ack_timeout: Duration::from_secs(2), ack_random_factor_pct: 150, max_retransmit: 4, nstart: 1 }
    }
}

impl Transmission {
    /// MAX_TRANSMIT_SPAN (§4.8.2).
    pub fn max_transmit_span(&self) -> Duration {
        self.ack_timeout.mul_f64(((1u64 << self.max_retransmit) - 1) as f64 * self.ack_random_factor())
    }

    pub fn ack_random_factor(&self) -> f64 {
        f64::from(self.ack_random_factor_pct) / 100.0
    }

    /// EXCHANGE_LIFETIME (§4.8.2): MAX_TRANSMIT_SPAN + 2 * MAX_LATENCY (100 s) + PROCESSING_DELAY.
    pub fn exchange_lifetime(&self) -> Duration {
        self.max_transmit_span() + Duration::from_secs(200) + self.ack_timeout
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoapSettings {
    /// UDP sockets for plain CoAP; empty disables it.
    pub bind: Vec<SocketAddr>,
    /// Kernel receive buffer asked for each socket, bytes (0: the system default).
    pub recv_buffer: usize,
    /// Every `/ps` request needs `clientid` and `token` from `POST /mqtt/connection`.
    pub connection_required: bool,
    pub notify_type: NotifyType,
    /// QoS of a publish without a `qos` query.
    pub publish_qos: QoS,
    /// QoS of an observe without a `qos` query.
    pub subscribe_qos: QoS,
    /// A connection with no request for this long is closed (its token expires); in
    /// connection-less mode, a peer without observations is forgotten after it.
    pub heartbeat: Duration,
    /// Prefix put before every topic and filter a client uses, taken off what it receives.
    pub mountpoint: String,
    /// Sessions at once; a new one beyond it gets 5.03.
    pub max_sessions: usize,
    pub max_observations_per_session: usize,
    /// Notifications queued per observer while one is in flight; the oldest go first.
    pub notify_queue: usize,
    /// Largest body accepted (Block1 reassembly) or sent (Block2), bytes.
    pub max_body_size: usize,
    /// Block size we use for Block2 and advertise for Block1 (16..=1024, a power of two).
    pub block_size: usize,
    pub transmission: Transmission,
    /// CoAP over DTLS (5684).
    pub dtls: crate::dtls::DtlsSettings,
}

impl Default for CoapSettings {
    fn default() -> Self {
        CoapSettings {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], 5683))],
            recv_buffer: 4 * 1024 * 1024,
            connection_required: false,
            notify_type: NotifyType::Qos,
            publish_qos: QoS::AtMostOnce,
            subscribe_qos: QoS::AtMostOnce,
            heartbeat: Duration::from_secs(30),
            mountpoint: String::new(),
            max_sessions: 100_000,
            max_observations_per_session: 16,
            notify_queue: 16,
            max_body_size: 64 * 1024,
            block_size: 1024,
            transmission: Transmission::default(),
            dtls: crate::dtls::DtlsSettings::default(),
        }
    }
}
