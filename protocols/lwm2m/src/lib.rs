//! roost-lwm2m: an OMA LwM2M (1.0.2 and 1.1) server for Roost, in the house layers, reusing
//! roost-coap's codec and message layer:
//!
//! - [`types`]: paths (`/3/0/1`), typed values, content-format numbers
//! - [`server`]: the LwM2M server and its EMQX-compatible MQTT mapping
//! - [`content`]: payloads <-> typed records (plain text, opaque, TLV, LwM2M JSON, SenML
//!   JSON and CBOR); never panics (fuzzed)
//! - [`objects`]: object definitions from OMA XML (built-in 0-7, 3303, 3304, 3311 + `xml_dir`)
//!
//! The simulated LwM2M clients (devices) live in `roost-sim` (`roost_sim::lwm2m_client`),
//! built on this crate's public [`types`], [`content`] and [`objects`].
//!
//! Each registered endpoint becomes a client of the shared core (protocol `lwm2m`, client
//! id = endpoint name); MQTT applications manage devices with EMQX-compatible JSON commands.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod content;
pub mod objects;
pub mod server;
pub mod types;
