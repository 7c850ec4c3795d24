//! roost-mqtt: MQTT 3.1.1 and 5.0 for Roost.
//!
//! - [`codec`]: packets <-> bytes
//! - [`settings`]: typed `[mqtt]` settings

pub mod codec;
pub mod settings;
