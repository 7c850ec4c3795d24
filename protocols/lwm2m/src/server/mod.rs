//! The LwM2M server side of Roost:
//!
//! - [`engine`]: sans-IO registration table, device management requests, notifications,
//!   queue mode (time as a parameter)
//! - [`driver`]: the UDP socket and the core connections of the registered devices
//! - [`mqtt`]: EMQX-compatible JSON commands and results
//! - [`link`]: CoRE link format (object lists, Discover bodies)
//! - [`settings`]: `[lwm2m]` as typed settings

pub mod driver;
pub mod engine;
pub mod link;
pub mod mqtt;
pub mod settings;

pub use engine::{Counters, Output, Refusal, Server};
pub use settings::Lwm2mSettings;
