//! roost-bridge: carries local messages to an upstream MQTT broker and brings its messages
//! back (Mosquitto's and EMQX's bridge), losing nothing across link outages and restarts.
//!
//! A bridge is a client of the core like any device: its local side is a persistent session
//! (`$bridge/{name}`) subscribed to the `out` topics. While the upstream is unreachable that
//! session is offline, so the core queues the outgoing messages, bounded and counted, and
//! the store keeps them across restarts. When the link is up, each message is sent upstream
//! and acknowledged locally only when the upstream acknowledged it (QoS 1/2 end to end); the
//! local packet id doubles as the upstream one, so a resumed session resends exactly what the
//! upstream had not confirmed, in order.
//!
//! - [`settings`]: `[[bridge]]` typed settings
//! - [`mapping`]: topic rules (Mosquitto's `topic pattern direction qos local remote`)
//! - [`driver`]: the task per bridge: connect, forward, keep alive, reconnect with backoff

pub mod driver;
pub mod mapping;
pub mod settings;
pub mod tls;

pub use driver::{BridgeStatus, spawn};
pub use settings::{BridgeSettings, Direction, TopicRule};
