//! Typed, validated settings of the broker core. The server crate parses `roost.toml` into
//! these; every field has a default so the core runs with none given.

use std::time::Duration;

/// How a message for a shared subscription `$share/{group}/{filter}` picks its member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharedStrategy {
    /// Each member in turn (the default, as in EMQX).
    #[default]
    RoundRobin,
    /// A member chosen at random.
    Random,
    /// The same publisher's messages always go to the same member (hash of its client id).
    HashClientId,
}

/// What a full session queue drops to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Drop the oldest QoS 0 message if there is one, else the oldest message (EMQX's default).
    #[default]
    DropOldestQos0First,
    /// Refuse the new message.
    DropNew,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    /// Node name, used in `$SYS` topics and logs.
    pub node_name: String,
    /// Connections of all protocols at once; further connects are refused (server busy).
    pub max_connections: usize,
    /// Outgoing QoS 1/2 messages awaiting acknowledgement per session (the client's v5
    /// Receive Maximum lowers it further).
    pub max_inflight: u16,
    /// Messages queued per session, online or offline, beyond the inflight window.
    pub max_queued_messages: usize,
    /// What a full queue drops.
    pub overflow_policy: OverflowPolicy,
    /// Queue QoS 0 messages for offline persistent sessions (EMQX does; Mosquitto does not
    /// by default).
    pub queue_qos0_offline: bool,
    /// Incoming QoS 2 messages received but not yet released (PUBREL) per session.
    pub max_awaiting_rel: u16,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length: usize,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: usize,
    /// Most subscriptions one session holds.
    pub max_subscriptions_per_client: usize,
    /// Upper bound on any session expiry interval a client asks for. `None`: no bound
    /// (a 3.1.1 persistent session then never expires, as in Mosquitto).
    pub max_session_expiry: Option<Duration>,
    /// Retained messages are stored and delivered.
    pub retain_available: bool,
    /// Most retained messages kept; a new topic beyond it is not retained (counted).
    pub max_retained_messages: usize,
    /// Shared subscription member selection.
    pub shared_strategy: SharedStrategy,
    /// Connect without username accepted.
    pub allow_anonymous: bool,
    /// Failed logins from one IP address (within a minute) before further connects from
    /// it are answered slowly; 0: never slowed.
    pub auth_failures_free: u32,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            node_name: "roost@127.0.0.1".to_string(),
            max_connections: 100_000,
            max_inflight: 32,
            max_queued_messages: 1000,
            overflow_policy: OverflowPolicy::default(),
            queue_qos0_offline: true,
            max_awaiting_rel: 100,
            max_topic_length: 65_535,
            max_topic_levels: 128,
            max_subscriptions_per_client: 10_000,
            max_session_expiry: None,
            retain_available: true,
            max_retained_messages: 1_000_000,
            shared_strategy: SharedStrategy::default(),
            allow_anonymous: true,
            auth_failures_free: 5,
        }
    }
}
