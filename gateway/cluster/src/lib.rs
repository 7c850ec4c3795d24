//! roost-cluster: several Roost nodes serving as one gateway, over NATS JetStream.
//!
//! The core knows nothing of NATS: it calls a [`roost_core::cluster::ClusterLink`], which
//! this crate implements. See `docs/cluster.md` for the design and its failure semantics.
//!
//! - [`settings`]: `[cluster]` as validated
//! - `escape`: topics, filters and client ids as NATS tokens and KV keys (reversible)
//! - `table`: the route table of the other nodes, matched like the core's router
//! - `wire`: forwarded publishes and handed-off sessions in bytes
//! - `link`: the [`ClusterLink`](roost_core::cluster::ClusterLink) the core calls
//! - `node`, `tasks`: the NATS connection, KV buckets and the node's tasks
//! - `persist`: persistent sessions' messages in JetStream, so they outlive their node

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod escape;
mod link;
mod node;
mod persist;
pub mod settings;
pub mod table;
mod tasks;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use roost_core::Broker;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use node::ClusterMetrics;
pub use settings::ClusterSettings;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster: {0}")]
    Nats(String),
    #[error("cluster: {0}")]
    Config(String),
}

/// A running cluster node; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<node::Shared>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.shared.settings.node).finish()
    }
}

/// Another node as this one sees it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub name: String,
    pub alive: bool,
    /// Milliseconds since its last heartbeat.
    pub last_seen_ms: u64,
    /// Its heartbeat record (JSON: started, addresses, sessions, connections, routes).
    pub info: String,
}

/// The cluster as this node sees it (for `/api/v1/cluster`, `$SYS` and `/metrics`).
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub node: String,
    pub degraded: bool,
    pub nodes: Vec<NodeStatus>,
    /// Routes (filters) of this node, and of the other nodes as known here.
    pub local_routes: usize,
    pub remote_routes: usize,
    /// Messages waiting to be sent to other nodes.
    pub buffered: usize,
    pub buffer_capacity: usize,
    pub messages_out: u64,
    pub messages_in: u64,
    pub dropped: u64,
    pub bad_frames: u64,
    pub takeovers: u64,
    pub handoffs: u64,
    pub reconnects: u64,
    pub rtt_micros: u64,
    /// Persistent sessions of the whole cluster known here.
    pub persistent_sessions: usize,
    /// Persistent sessions here taking their messages from JetStream.
    pub session_consumers: usize,
    /// Messages stored in persistent sessions' streams by this node, and failed stores.
    pub stored: u64,
    pub store_failures: u64,
    /// Messages taken from sessions' streams into sessions here.
    pub session_in: u64,
    /// Sessions resumed from the registry because their node did not hand them over.
    pub resumed: u64,
}

impl Cluster {
    /// Joins the cluster: connects to NATS (failing if it cannot within
    /// `connect_timeout`), attaches to `broker` and runs until `shutdown`.
    pub async fn start(
        settings: ClusterSettings,
        broker: Broker,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Cluster, ClusterError> {
        settings::check_node_name(&settings.node).map_err(ClusterError::Config)?;
        let shared = node::start(settings, broker, shutdown, tracker).await?;
        tracing::info!(node = %shared.settings.node, nats = ?shared.settings.nats, "cluster joined");
        Ok(Cluster { shared })
    }

    /// The addresses this node serves, shown to the other nodes (known once the listeners
    /// are bound, after the node joined).
    pub fn set_addresses(&self, addresses: Vec<String>) {
        *self.shared.addresses.lock() = addresses;
    }

    pub fn node(&self) -> &str {
        &self.shared.settings.node
    }

    pub fn status(&self) -> ClusterStatus {
        let s = &self.shared;
        let now = Instant::now();
        let timeout = s.settings.node_timeout;
        let table = s.table.read();
        let mut nodes: Vec<NodeStatus> = table
            .peers()
            .map(|(name, p)| NodeStatus {
                name: name.clone(),
                alive: table.is_alive(name, now, timeout),
                last_seen_ms: u64::try_from(now.saturating_duration_since(p.last_seen).as_millis()).unwrap_or(u64::MAX),
                info: p.info.clone(),
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let m = &s.metrics;
        ClusterStatus {
            node: s.settings.node.clone(),
            degraded: s.degraded.load(Ordering::Relaxed),
            nodes,
            local_routes: s.local.lock().len(),
            remote_routes: table.route_count(),
            buffered: s.buffered(),
            buffer_capacity: s.out.max_capacity(),
            messages_out: m.messages_out.load(Ordering::Relaxed),
            messages_in: m.messages_in.load(Ordering::Relaxed),
            dropped: m.dropped.load(Ordering::Relaxed),
            bad_frames: m.bad_frames.load(Ordering::Relaxed),
            takeovers: m.takeovers.load(Ordering::Relaxed),
            handoffs: m.handoffs.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            rtt_micros: m.rtt_micros.load(Ordering::Relaxed),
            persistent_sessions: table.session_count(),
            session_consumers: s.consumers.count(),
            stored: m.stored.load(Ordering::Relaxed),
            store_failures: m.store_failures.load(Ordering::Relaxed),
            session_in: m.session_in.load(Ordering::Relaxed),
            resumed: m.resumed.load(Ordering::Relaxed),
        }
    }
}
