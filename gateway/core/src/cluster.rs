//! The extension point a cluster plugs into (roost-cluster, over NATS JetStream): the core
//! knows no transport, only a [`ClusterLink`] it tells of local routes, local publishes and
//! client ids, and the calls by which the link hands it what other nodes sent.
//!
//! Loops cannot form: a message that came from another node enters through
//! [`Broker::route_remote`], which routes it locally and never calls [`ClusterLink::forward`].
//!
//! The broker's side (the calls a link makes) is in `broker/cluster.rs`; this module only
//! declares the types both sides share.
//!
//! [`Broker::route_remote`]: crate::Broker::route_remote

use std::sync::Arc;

use crate::store::{SessionMeta, StoredSession};
use crate::types::{ClientId, Message};

/// Re-exported where a cluster finds them: [`Receipt`]s travel on a [`Message`], so they
/// are declared with it in [`crate::types`].
pub use crate::types::{BoxFuture, Receipt, ReceiptRef};

/// A shared subscription group as the whole cluster names it: (group, filter).
pub type GroupKey = (Arc<str>, Arc<str>);

/// Which shared groups this node serves for one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalShare {
    /// Every group with members here (no cluster, or no member elsewhere).
    #[default]
    All,
    /// Only these groups: the cluster picked this node for them, another node for the rest.
    Only(Vec<GroupKey>),
}

impl LocalShare {
    pub fn serves(&self, group: &str, filter: &str) -> bool {
        match self {
            LocalShare::All => true,
            LocalShare::Only(list) => list.iter().any(|(g, f)| &**g == group && &**f == filter),
        }
    }
}

/// What [`ClusterLink::forward`] did with a local publish.
#[derive(Default)]
pub struct Forwarded {
    /// Nodes the message was sent to.
    pub nodes: usize,
    pub share: LocalShare,
    /// Persistent sessions the message was stored for in JetStream: no node (this one
    /// included) routes it to them directly, they get it from their stream.
    pub stored_for: Vec<ClientId>,
    /// Resolves once JetStream has acknowledged those stores: a QoS 1/2 publish is
    /// acknowledged to its publisher only then. `None`: nothing to wait for.
    pub stored: Option<BoxFuture<'static, Result<(), String>>>,
}

impl std::fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarded")
            .field("nodes", &self.nodes)
            .field("share", &self.share)
            .field("stored_for", &self.stored_for)
            .field("stored", &self.stored.is_some())
            .finish()
    }
}

/// A session moving between nodes: what [`Broker::hand_off`] exports and
/// [`Broker::adopt`] imports (the store's record shape, so it has one encoding).
///
/// [`Broker::hand_off`]: crate::Broker::hand_off
/// [`Broker::adopt`]: crate::Broker::adopt
pub type SessionHandoff = StoredSession;

/// The cluster as the core sees it. Every method but [`ClusterLink::claim`] is called on the
/// routing path, some under the router's lock: they must only record and return.
pub trait ClusterLink: Send + Sync {
    /// A message published on this node: send it to the nodes with matching routes and say
    /// which shared groups stay here. Not called for `$` topics, which stay per node.
    fn forward(&self, msg: &Arc<Message>) -> Forwarded;
    /// A local subscription was added (`group` for `$share/{group}/{filter}`).
    fn route_added(&self, group: Option<&str>, filter: &str);
    /// A local subscription was removed.
    fn route_removed(&self, group: Option<&str>, filter: &str);
    /// A client is connecting here: make this node the owner of `client_id` cluster-wide,
    /// closing it where it was. Returns the session to resume if another node held one and
    /// `clean_start` is false. Must be bounded in time (the connect waits for it).
    fn claim<'a>(&'a self, client_id: &'a ClientId, clean_start: bool) -> BoxFuture<'a, Option<SessionHandoff>>;
    /// The session of `client_id` ended on this node (expired, or clean and disconnected).
    fn session_ended(&self, client_id: &ClientId);
    /// A persistent session (expiry above 0) is held here, new or resumed, or its
    /// subscriptions changed: `meta` is its shape now.
    fn session_here(&self, _meta: &SessionMeta) {}
}
