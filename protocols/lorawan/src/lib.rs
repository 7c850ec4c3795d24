//! roost-lorawan: LoRaWAN for Roost through Semtech UDP packet forwarders, in the house layers:
//!
//! - [`semtech`]: the packet-forwarder protocol v2 (PUSH/PULL/TX_ACK datagrams and their JSON)
//! - [`phy`]: LoRaWAN 1.0.x PHYPayloads and their crypto (through the `lorawan` crate)
//! - [`region`]: EU868 and US915 channel and data-rate tables, as data
//! - [`ns`]: network-server mode, a sans-IO LoRaWAN 1.0.x class A network server
//! - [`settings`]: typed `[lorawan]` settings

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod hex;
pub mod lpp;
pub mod ns;
pub mod region;
pub mod settings;
pub mod phy;
pub mod semtech;
pub mod types;
