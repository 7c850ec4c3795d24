//! Core vocabulary shared by every adapter: client identities, protocols, QoS and the
//! application message that the router carries (one `Arc` per publish, never copied per
//! subscriber), with the [`Receipt`] a cluster may attach to it.
//!
//! A leaf: it imports nothing else of the crate, so every other module may use it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// A client identifier, unique per broker across all protocols.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        ClientId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ClientId {
    fn from(s: &str) -> Self {
        ClientId::new(s)
    }
}

/// The protocol a device speaks; shown in `$SYS`, metrics, hooks and the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Mqtt,
    MqttSn,
    Coap,
    Lwm2m,
    Lorawan,
    /// A custom protocol run through `roost-codec`.
    Codec,
}

impl Protocol {
    pub const ALL: [Protocol; 6] =
        [Protocol::Mqtt, Protocol::MqttSn, Protocol::Coap, Protocol::Lwm2m, Protocol::Lorawan, Protocol::Codec];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::MqttSn => "mqtt-sn",
            Protocol::Coap => "coap",
            Protocol::Lwm2m => "lwm2m",
            Protocol::Lorawan => "lorawan",
            Protocol::Codec => "codec",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of service of a message or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// MQTT 5 publish properties that travel with a message from publisher to subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageProperties {
    pub payload_format_indicator: Option<u8>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
}

/// A boxed future, as the core's extension points (auth sources, the cluster) return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A delivery the cluster must hear the end of: a message taken from a persistent session's
/// JetStream stream is acknowledged there only once the client has it (PUBACK, PUBREC), or
/// the session dropped it by its own rules (expired, queue full, delivered at QoS 0).
pub trait Receipt: Send + Sync {
    /// The delivery is over: sends the acknowledgement at once (repeats are ignored). With
    /// `confirm`, the first call returns what resolves once the stream has it (the client
    /// may then forget a QoS 2 packet id: a redelivery can no longer happen).
    fn done(&self, confirm: bool) -> Option<BoxFuture<'static, ()>>;
    /// The packet id to deliver it with: the same on every node that delivers it, so that a
    /// client still holding the id of a QoS 2 message it received recognises the redelivery.
    fn packet_id(&self) -> Option<u16>;
}

/// A [`Receipt`] as a message carries it.
#[derive(Clone)]
pub struct ReceiptRef(pub Arc<dyn Receipt>);

impl fmt::Debug for ReceiptRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt").field("packet_id", &self.0.packet_id()).finish()
    }
}

/// An application message as routed by the core.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: MessageProperties,
    /// The publishing client (for No Local and hash-by-client-id shared selection).
    pub publisher: Option<ClientId>,
    /// When the message entered the broker.
    pub created: Instant,
    /// MQTT 5 Message Expiry Interval, counted from `created`.
    pub expiry: Option<Duration>,
    /// Set on a message a cluster node took from a persistent session's JetStream stream:
    /// told when the delivery is over (never stored or forwarded).
    pub receipt: Option<ReceiptRef>,
}

impl Message {
    pub fn new(topic: impl Into<Arc<str>>, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            properties: MessageProperties::default(),
            publisher: None,
            created: Instant::now(),
            expiry: None,
            receipt: None,
        }
    }

    /// True when the message expiry interval has passed at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        match self.expiry {
            Some(e) => now.saturating_duration_since(self.created) >= e,
            None => false,
        }
    }

    /// Remaining expiry in whole seconds (rounded up so a live message never says 0), for
    /// forwarding the Message Expiry Interval as MQTT 5 §3.3.2.3.3 requires.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expiry.map(|e| {
            let left = e.saturating_sub(now.saturating_duration_since(self.created));
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
        })
    }
}

/// Options of one subscription (MQTT 5.0 §3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained on subscribe; 1: only if new; 2: never.
    pub retain_handling: u8,
    /// MQTT 5 subscription identifier.
    pub subscription_id: Option<u32>,
}

/// Why a connection ended, as the adapter or the broker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client said goodbye (MQTT DISCONNECT 0x00): no will.
    Normal,
    /// The client said goodbye but asked for its will (MQTT 5 DISCONNECT 0x04).
    NormalWithWill,
    /// Network error, keep alive timeout, protocol violation: the will is published.
    Abnormal,
    /// Another connection took the client id over (MQTT 5 0x8E).
    TakenOver,
    /// An administrator kicked the client (MQTT 5 0x98).
    Kicked,
    /// The broker is shutting down (MQTT 5 0x8B).
    Shutdown,
}

impl DisconnectReason {
    pub(crate) fn publishes_will(self) -> bool {
        !matches!(self, DisconnectReason::Normal)
    }
}

/// One message waiting for, or in flight to, a client.
#[derive(Debug, Clone)]
pub struct Pending {
    pub message: Arc<Message>,
    /// Delivery QoS: the lower of the publish QoS and the subscription's.
    pub qos: QoS,
    /// The RETAIN flag to send (set for retained messages sent at subscribe time; otherwise
    /// the published flag where Retain As Published asks for it).
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
}
