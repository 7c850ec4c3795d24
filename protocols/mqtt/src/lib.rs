//! roost-mqtt: MQTT 3.1.1 and 5.0 for Roost, in the house layers:
//!
//! - [`codec`]: packets <-> bytes (our own; see its docs for why and how to fuzz it)
//! - [`connect`]: CONNECT validation into a core connect request
//! - [`session`]: the per-connection protocol state machine (QoS flows, aliases, keep alive)
//! - [`driver`]: TCP listener and connection tasks
//! - [`settings`]: typed `[mqtt]` settings
//! - [`pem`]: certificate, key and CA files for every TLS endpoint (listeners, bridge)

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
pub mod connect;
pub mod driver;
/// The TLS file loader (moved to roost-core so every rustls endpoint shares it).
pub use roost_core::pem;
pub mod properties;
pub mod proxy;
pub mod session;
pub mod settings;
pub mod transport;
