//! roost-core: the broker every protocol adapter connects devices to.
//!
//! - [`broker`]: the session table and [`Broker::connect`]; its files: `connect` (auth,
//!   takeover), `connection` (the adapter API, one [`Connection`] per device, also at
//!   [`connection`]), `publish` (the one publish pipeline and routing), `end` (wills, expiry),
//!   `cluster` (what a cluster link calls), `restore` (state back from the store)
//! - [`session`]: per-client state (queue, in-flight, QoS 2 ids) and [`Delivery`]
//! - [`router`]: the topic trie with shared subscriptions
//! - `retained`, [`topic`], [`auth`], [`hooks`], [`metrics`], [`store`], [`settings`]
//! - [`cluster`]: the extension point a cluster of nodes (roost-cluster) plugs into
//! - [`admin`]: listings for the HTTP API; [`trace`]: per-client / per-topic trace files
//! - [`peerlog`]: peer-caused log lines, rate-limited per reason and source ([`peer_log!`])
//! - [`pem`]: the TLS file loader every rustls endpoint of Roost uses
//! - [`datagram`]: the engine every UDP protocol runs its devices on
//!
//! Modules import only those below them, so none imports another that imports it back:
//! [`types`], [`settings`] and [`pem`] (leaves) <- [`topic`] <- [`auth`], [`metrics`], `retained`,
//! [`store`] <- [`hooks`], [`trace`] <- [`session`] <- [`cluster`] <- [`router`] <-
//! [`broker`] <- [`admin`], [`datagram`]. A broker method lives in a `broker/` file; what
//! a lower module must call back (the cluster, the store) is a trait it declares.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod auth;
pub mod broker;
pub mod cluster;
pub mod datagram;
pub mod hooks;
pub mod limit;
pub mod metrics;
pub mod peerlog;
pub mod pem;
mod retained;
pub mod router;
pub mod session;
pub mod settings;
pub mod store;
pub mod topic;
pub mod trace;
pub mod types;
pub mod udp;

/// The adapter API lives beside the broker it drives; this keeps its public path.
pub use broker::connection;

pub use auth::ClientInfo;
pub use broker::{Broker, ConnectContext, ConnectError, ConnectRequest};
pub use connection::{Connection, PublishError, Published, SubscribeError};
pub use session::{Delivery, DisconnectReason, Pending, Will};
pub use types::SubOptions;
pub use types::{ClientId, Message, MessageProperties, Protocol, QoS};
