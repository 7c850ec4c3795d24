//! roost-sim: simulated devices and the benchmark harness for Roost (and any MQTT broker).
//!
//! - [`client`]: a lean MQTT client on roost-mqtt's own codec (one socket, two buffers)
//! - [`devices`]: `roost-sim mqtt`, N simulated devices sending telemetry and answering commands
//! - [`lorawan`]: `roost-sim lorawan`, packet forwarders carrying simulated LoRaWAN devices
//! - [`lwm2m`]: `roost-sim bench lwm2m` and the arguments of `roost-sim lwm2m`
//! - [`lwm2m_client`]: the simulated LwM2M clients themselves (also used by the end-to-end tests)
//! - [`mqttsn`]: the MQTT side of `roost-sim mqtt-sn` (subscriber counts, gateway memory)
//! - [`payload`]: the telemetry template with randomised fields
//! - [`bench`]: `roost-sim bench` scenarios (conn, fan-in, fan-out, pairs) and their report
//! - [`compare`]: `roost-sim compare`, Roost and mosquitto side by side in one run
//!
//! The load generator is deliberately lean: it needs about as much CPU as the broker it
//! loads, so publishers run on one single-threaded runtime and subscribers on another, and
//! the client is our codec over a plain `TcpStream` rather than a general-purpose library.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bench;
pub mod client;
pub mod compare;
pub mod devices;
pub mod lorawan;
pub mod lwm2m;
pub mod lwm2m_client;
pub mod mqttsn;
pub mod payload;
