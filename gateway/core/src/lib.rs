//! roost-core: the broker every protocol adapter connects devices to.
//!
//! - [`broker`]: the session table, routing, takeover, wills, expiry; [`Broker::connect`]
//! - [`connection`]: the adapter API, one [`Connection`] per device
//! - [`session`]: per-client state (queue, in-flight, QoS 2 ids) and [`Delivery`]
//! - [`router`]: the topic trie with shared subscriptions
//! - [`retained`], [`topic`], [`auth`], [`hooks`], [`metrics`], [`store`], [`settings`]
//! - [`cluster`]: the extension point a cluster of nodes (roost-cluster) plugs into
//! - [`admin`]: listings for the HTTP API; [`trace`]: per-client / per-topic trace files
//! - [`peerlog`]: peer-caused log lines, rate-limited per reason and source ([`peer_log!`])

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod auth;
pub mod broker;
pub mod cluster;
pub mod connection;
pub mod datagram;
pub mod hooks;
pub mod limit;
pub mod metrics;
pub mod peerlog;
mod restore;
mod retained;
pub mod router;
pub mod session;
pub mod settings;
pub mod store;
pub mod topic;
pub mod trace;
pub mod types;
pub mod udp;

pub use broker::{Broker, ConnectContext, ConnectError, ConnectRequest};
pub use connection::{Connection, PublishError, Published, SubscribeError};
pub use router::SubOptions;
pub use session::{Delivery, DisconnectReason, Pending, Will};
pub use types::{ClientId, ClientInfo, Message, MessageProperties, Protocol, QoS};
