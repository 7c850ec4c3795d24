//! roost-lorawan: LoRaWAN for Roost through Semtech UDP packet forwarders, in the house layers:
//!
//! - [`semtech`]: the packet-forwarder protocol v2 (PUSH/PULL/TX_ACK datagrams and their JSON)
//! - [`phy`]: LoRaWAN 1.0.x PHYPayloads and their crypto (through the `lorawan` crate)
//! - [`region`]: EU868 and US915 channel and data-rate tables, as data
//! - [`bridge`]: bridge mode's ChirpStack Gateway Bridge v4 messages (canonical JSON)
//! - [`gwpb`]: the same messages as protobuf (`marshaler = "protobuf"`, prost derives)
//! - [`driver`]: the UDP sockets, the gateway table, downlinks awaiting TX_ACK, core connections
//! - [`manage`]: what the HTTP management API asks of the driver (gateways, devices, downlinks)
//! - [`ns`]: network-server mode, a sans-IO LoRaWAN 1.0.x class A network server
//! - [`settings`]: typed `[lorawan]` settings

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bridge;
pub mod driver;
pub mod gwpb;
pub mod hex;
pub mod lpp;
pub mod manage;
pub mod ns;
pub mod phy;
pub mod region;
pub mod semtech;
pub mod settings;
pub mod types;
