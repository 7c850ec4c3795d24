//! End-to-end tests of Roost's MQTT broker: a broker per test on a free loopback port, real
//! clients over real sockets.
//!
//! - [`backend`]: the broker under test ([`TestBroker`]); the only broker-specific module.
//! - [`mqtt311`], [`mqtt5`]: rumqttc clients that wait (bounded) for acks and collect PUBLISHes.
//! - [`raw`]: a byte-level client for flows a well-behaved library will not produce.
//! - [`cli`]: `mosquitto_pub` / `mosquitto_sub` runs that always end.
//! - [`cluster`]: a NATS JetStream server and `roost` processes joined as a cluster
//! - [`metrics`]: `/metrics` scraped and parsed.
//! - [`postgres`], [`mariadb`], [`redis`], [`slapd`]: real database and directory servers
//! - [`roost_bin`]: the path of the `roost` binary, for tests of the process itself.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing

use std::time::Duration;

pub mod api;
pub mod backend;
pub mod cli;
pub mod cluster;
pub mod coap;
pub mod flood;
pub mod lwm2m;
pub mod lwm2m_peer;
pub mod mariadb;
pub mod metrics;
pub mod mosquitto;
pub mod mqtt311;
pub mod mqtt5;
pub mod postgres;
pub mod raw;
pub mod redis;
pub mod roost_bin;
pub mod sinks;
pub mod slapd;
pub mod sn_peer;

pub use backend::TestBroker;

/// How long to wait for something that should happen (a packet, an ack, a close).
pub const WAIT: Duration = Duration::from_secs(3);

/// How long to watch for something that should NOT happen. Absence cannot be awaited, so
/// tests that prove it wait this short, bounded time and say so.
pub const QUIET: Duration = Duration::from_millis(300);
