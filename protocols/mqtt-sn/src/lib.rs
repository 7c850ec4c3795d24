//! roost-mqttsn: MQTT-SN 1.2 for Roost, in the house layers:
//!
//! - [`codec`]: messages <-> datagrams (our own, fuzzed)
//! - [`topics`]: predefined ids, per-client registrations, short names, mountpoint
//! - [`session`]: the per-client sans-IO state machine (connect and will handshake, QoS
//!   flows, topic registration, keep alive, sleeping clients, retransmission)
//! - [`driver`]: one UDP socket per bound address, demultiplexing every client on it
//! - [`settings`]: typed `[mqttsn]` settings
//! - [`sim`]: simulated MQTT-SN devices for load tests

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
pub mod driver;
pub mod session;
pub mod settings;
pub mod sim;
pub mod topics;
