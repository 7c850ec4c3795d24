//! Frames: the protocol-neutral vocabulary between a [`crate::Codec`] and the adapter.
//!
//! [`Uplink`] is what a device can do (connect, publish, subscribe, acknowledge, ping,
//! disconnect) plus what a codec may ask of the adapter (timers). [`Downlink`] is what the
//! adapter asks the codec to tell the device. Every request uplink (connect, publish,
//! subscribe, unsubscribe, ping) gets exactly one answer downlink, in order; a codec whose
//! protocol has no such answer encodes nothing for it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use roost_core::QoS;

/// A device's CONNECT, however its protocol spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFrame {
    /// Unique across all protocols of the broker; a second device with the same id takes
    /// the session over, as in MQTT.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    /// Seconds; the adapter closes the connection after 1.5x without input. 0: the
    /// listener's `limits.idle_timeout` applies instead.
    pub keep_alive: u16,
    /// Start a new session (true) or resume the previous one with its subscriptions and
    /// queued messages (false).
    pub clean_start: bool,
    /// With `clean_start = false`: how long the session outlives the connection
    /// (`None`: forever). Ignored with `clean_start = true` (the session ends with the
    /// connection).
    pub session_expiry: Option<Duration>,
    pub will: Option<WillFrame>,
}

impl ConnectFrame {
    /// A clean-start connect with no credentials and no will.
    pub fn new(client_id: impl Into<String>, keep_alive: u16) -> Self {
        ConnectFrame {
            client_id: client_id.into(),
            username: None,
            password: None,
            keep_alive,
            clean_start: true,
            session_expiry: None,
            will: None,
        }
    }
}

/// A will message: published if the connection ends without a [`Uplink::Disconnect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillFrame {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

/// What a device can do, decoded by its codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uplink {
    /// Must come first; anything before it closes the connection. Answered by
    /// [`Downlink::ConnAck`].
    Connect(ConnectFrame),
    /// A message from the device. `id` is the codec's own correlation id, echoed in the
    /// [`Downlink::PubAck`] that answers it (0 if the protocol has none). QoS 1 and 2 are
    /// acknowledged once the broker has routed the message.
    Publish { id: u16, topic: String, payload: Bytes, qos: QoS, retain: bool },
    /// Answered by [`Downlink::SubAck`] with the granted QoS (at most 1: codec devices
    /// acknowledge deliveries with one [`Uplink::Ack`]).
    Subscribe { id: u16, filter: String, qos: QoS },
    /// Answered by [`Downlink::UnsubAck`].
    Unsubscribe { id: u16, filter: String },
    /// The device has a QoS 1 [`Downlink::Publish`] with this id.
    Ack { id: u16 },
    /// Keep alive; answered by [`Downlink::Pong`]. (Any input resets the keep alive timer.)
    Ping,
    /// The device says goodbye; its will is not published.
    Disconnect,
    /// The codec asks to be woken with [`crate::Codec::on_timer`] after `after`
    /// (e.g. a protocol-level keep alive or a retransmission). Setting a timer with the
    /// same `id` again restarts it.
    SetTimer { id: u32, after: Duration },
    /// Forgets the timer `id` if it is running.
    CancelTimer { id: u32 },
}

/// Why the broker refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    BadCredentials,
    NotAuthorized,
    ServerBusy,
    ShuttingDown,
    /// A topic name or filter the broker does not accept (wildcards in a publish, too
    /// long, too many levels).
    InvalidTopic,
    /// A per-session quota (subscriptions, QoS 2 messages awaiting release) is used up.
    QuotaExceeded,
}

impl Refused {
    /// A short lower-case name, e.g. for a text protocol's error line.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::BadCredentials => "bad credentials",
            Refused::NotAuthorized => "not authorized",
            Refused::ServerBusy => "server busy",
            Refused::ShuttingDown => "shutting down",
            Refused::InvalidTopic => "invalid topic",
            Refused::QuotaExceeded => "quota exceeded",
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why Roost ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No input for 1.5x keep alive (or `idle_timeout`).
    KeepAliveTimeout,
    /// Another connection with the same client id took the session over.
    TakenOver,
    /// An administrator kicked the client.
    Kicked,
    /// The gateway is shutting down.
    Shutdown,
}

/// What Roost tells the device, for its codec to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downlink {
    /// Answer to [`Uplink::Connect`]. After a refusal the connection closes.
    ConnAck { result: Result<(), Refused>, session_present: bool },
    /// Answer to [`Uplink::Publish`].
    PubAck { id: u16, result: Result<(), Refused> },
    /// Answer to [`Uplink::Subscribe`]: the granted QoS.
    SubAck { id: u16, result: Result<QoS, Refused> },
    /// Answer to [`Uplink::Unsubscribe`].
    UnsubAck { id: u16 },
    /// Answer to [`Uplink::Ping`].
    Pong,
    /// A message for the device, topic with the listener's mountpoint removed. `id` is
    /// non-zero for QoS 1: the device answers with [`Uplink::Ack`] (a protocol without
    /// acknowledgements subscribes at QoS 0). `dup` marks a redelivery.
    Publish { id: u16, topic: Arc<str>, payload: Bytes, qos: QoS, retain: bool, dup: bool },
    /// Roost closes the connection; the last thing encoded before it does.
    Disconnect { reason: CloseReason },
}
