//! roost-codec: custom device protocols for Roost, written as a [`Codec`] — bytes in,
//! frames out; frames in, bytes out — and run by a generic adapter that gives them
//! everything else: connections, sessions, keep alive, auth, ACL, routing, retained
//! messages, hooks and metrics. No extra process, no extra hop (EMQX's ExProto is a
//! separate gRPC service; this is a Rust trait).
//!
//! - [`frame`]: what a device can say ([`Uplink`]) and what Roost says back ([`Downlink`])
//! - [`codec`]: the [`Codec`] trait a protocol implements, and [`CodecFactory`]
//! - [`registry`]: codecs by name, so `[[codec]] codec = "..."` finds them; codec options
//! - [`tester`]: [`CodecTester`], for unit tests of a codec without sockets
//! - [`settings`]: one `[[codec]]` listener, typed
//! - [`session`]: one device's state between its codec and the broker (session layer)
//! - [`driver`]: the TCP and UDP listeners (driver layer)
//! - [`codecs`]: two example codecs that ship: `tlv-sensor` (binary, UDP) and `line` (text, TCP)
//! - [`sim`]: simulated `tlv-sensor` devices, for `roost-sim codec`
//!
//! How to write, register, configure and test a codec from zero: `docs/custom-codec.md`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
pub mod codecs;
pub mod driver;
pub mod frame;
mod guard;
pub mod registry;
pub mod session;
pub mod settings;
pub mod sim;
pub mod tester;

pub use codec::{Codec, CodecError, CodecFactory, DeviceKey};
pub use frame::{CloseReason, ConnectFrame, Downlink, Refused, Uplink, WillFrame};
pub use registry::{Options, OptionsError, Registry};
pub use settings::{CodecLimits, CodecListenerSettings, Transport};
pub use tester::CodecTester;

/// Re-exported so a codec crate needs no direct dependency on `roost-core` for QoS.
pub use roost_core::QoS;
