//! roost-coap: CoAP (RFC 7252) for Roost, EMQX-compatible resources, in the house layers:
//!
//! - [`codec`]: datagrams <-> `coap_lite::Packet` with the checks it leaves out (fuzzed)
//! - [`message`]: the sans-IO message layer (dedup, retransmission, NSTART, RST)
//! - [`block`]: blockwise transfers (RFC 7959), Block1 reassembly and Block2 slicing
//! - [`resource`]: requests to `/ps`, `/mqtt/connection`, `/.well-known/core` as typed routes
//! - [`session`]: one device (keyed by identity, not address): core connection, observers
//!   with RFC 7641 §4.5 flow control
//! - [`driver`]: one UDP socket per bound address, demultiplexing every device on it
//! - [`dtls`]: DTLS 1.2 on its own sockets, our per-peer dispatch over a backend trait
//! - [`settings`]: typed `[coap]` settings
//! - [`sim`]: simulated CoAP devices for load tests (`roost-sim coap`)
//!
//! `coap-lite` gives message parsing only; the message layer, observe (server side) and
//! blockwise are ours.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod block;
pub mod codec;
pub mod driver;
pub mod dtls;
pub mod message;
pub mod resource;
pub mod session;
pub mod settings;
#[cfg(feature = "sim")]
pub mod sim;
