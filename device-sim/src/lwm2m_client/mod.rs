//! Simulated LwM2M clients (`roost-sim lwm2m`, the end-to-end tests): each device registers
//! with objects 1 (Server), 3 (Device), 5 (Firmware Update) and 3303 (Temperature) over UDP
//! CoAP, keeps its registration up with Updates, answers the server's Read / Discover /
//! Write / Write-Attributes / Execute / Create / Delete / Observe (large requests and
//! responses in blocks), sends notifications (or, with `send`, reports with the 1.1 Send
//! operation), optionally in queue mode, and de-registers at the end.
//!
//! - [`store`]: the object tree, values held typed
//! - [`device`]: the sans-IO client state machine (time as a parameter)
//! - [`observe`]: observations and notifications
//! - [`serve`]: the answers to the server's requests
//! - [`blockwise`]: Block1 requests and Block2 responses (RFC 7959), within a small buffer
//! - [`fleet`]: the socket loop, a fleet at a connect rate, one device for tests

pub mod blockwise;
pub mod device;
pub mod fleet;
pub mod observe;
pub mod serve;
pub mod store;

pub use device::{Device, DeviceConfig, Event};
pub use fleet::{CancellationToken, Control, DeviceHandle, SimConfig, SimStats, run_until, run_with, spawn_device};

#[cfg(test)]
mod tests;
