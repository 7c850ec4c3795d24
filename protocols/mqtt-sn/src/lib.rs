//! roost-mqttsn: MQTT-SN 1.2 for Roost, in the house layers:
//!
//! - [`codec`]: messages <-> datagrams (our own, fuzzed)

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
