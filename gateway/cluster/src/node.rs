//! One node's cluster runtime: the NATS connection, the KV buckets, and the tasks that
//! keep them and the core in step.
//!
//! - `roost_routes`: key `{node}.p.{filter}` or `{node}.s.{group}.{filter}` -> count
//! - `roost_nodes`: key `{node}` -> the node's heartbeat (JSON)
//! - `roost_clients`: key `{client id}` -> the node that owns it
//! - `roost_retained`: key `{topic}` -> the retained message (history 1; deleted to clear)
//! - subjects `roost.node.{node}` (forwarded publishes) and `roost.ctl.{node}` (takeover)
//!
//! Names in keys are escaped (`escape`). The core is never blocked by NATS: forwarding and
//! KV writes go through bounded queues that tasks drain; a full queue drops and counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use roost_core::cluster::GroupKey;
use roost_core::{Broker, ClientId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::escape::{escape, unescape};
use crate::settings::ClusterSettings;
use crate::table::Table;
use crate::wire;

/// A publish on its way to another node.
pub(crate) struct Outgoing {
    /// The destination node.
    pub node: String,
    pub subject: String,
    pub payload: Bytes,
}

/// A KV write the core asked for.
pub(crate) enum KvOp {
    /// Write this local route's current count (0: delete it).
    Route((Option<String>, String)),
    /// Set (Some) or clear (None) the retained message of a topic.
    Retain(String, Option<Vec<u8>>),
    /// The session of this client id ended here.
    SessionEnded(ClientId),
    /// Write the record of this client id's persistent session (its shape now).
    Session(ClientId),
}

pub(crate) struct Buckets {
    pub routes: kv::Store,
    pub nodes: kv::Store,
    pub clients: kv::Store,
    pub retained: kv::Store,
    /// Persistent sessions: `{client id}` -> node and shape (`wire::encode_session_record`).
    pub sessions: kv::Store,
}

/// Counters behind `roost_cluster_*` and `/api/v1/cluster`.
#[derive(Default)]
pub struct ClusterMetrics {
    pub messages_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub dropped: AtomicU64,
    pub bad_frames: AtomicU64,
    pub takeovers: AtomicU64,
    pub handoffs: AtomicU64,
    /// Round trip of the last heartbeat write (a JetStream-acknowledged KV put), in µs.
    pub rtt_micros: AtomicU64,
    /// Messages stored in persistent sessions' streams, and stores that failed.
    pub stored: AtomicU64,
    pub store_failures: AtomicU64,
    /// Messages taken from sessions' streams into sessions here.
    pub session_in: AtomicU64,
    /// Persistent sessions resumed from the registry (their node did not hand them over).
    pub resumed: AtomicU64,
}

pub(crate) struct Shared {
    pub settings: ClusterSettings,
    pub broker: Broker,
    pub client: async_nats::Client,
    pub buckets: OnceLock<Buckets>,
    pub table: RwLock<Table>,
    /// This node's own routes: (group, filter) -> subscriptions.
    pub local: Mutex<HashMap<(Option<String>, String), u32>>,
    /// Round-robin position per shared group.
    pub rr: Mutex<HashMap<GroupKey, u64>>,
    pub out: mpsc::Sender<Outgoing>,
    pub kv: mpsc::Sender<KvOp>,
    /// NATS is away: routing is local only, messages for other nodes wait.
    pub degraded: Arc<AtomicBool>,
    pub reconnects: Arc<AtomicU64>,
    /// When the connection to NATS last came back.
    pub back_at: Arc<Mutex<Option<Instant>>>,
    /// The addresses this node serves (heartbeat record).
    pub addresses: Mutex<Vec<String>>,
    pub metrics: ClusterMetrics,
    pub started: std::time::SystemTime,
    /// Start time in ns: with the node name, makes JetStream message ids unique per run.
    pub started_nanos: u128,
    pub next_store: AtomicU64,
    /// Stores for persistent sessions' streams, waiting for NATS (the bounded buffer).
    pub stores: mpsc::Sender<crate::persist::Store>,
    pub acks: mpsc::UnboundedSender<crate::persist::Ack>,
    pub consumers: crate::persist::Consumers,
    pub shutdown: CancellationToken,
}

impl Shared {
    /// Queues a publish for another node; false (counted) if the queue is full.
    pub(crate) fn send(&self, o: Outgoing) -> bool {
        match self.out.try_send(o) {
            Ok(()) => true,
            Err(_) => {
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub(crate) fn kv_op(&self, op: KvOp) {
        if self.kv.try_send(op).is_err() {
            self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("cluster: KV write queue full, a route or retained update was dropped");
        }
    }

    /// Messages waiting for NATS: forwards and session stores.
    pub(crate) fn buffered(&self) -> usize {
        self.out.max_capacity() - self.out.capacity() + self.stores.max_capacity() - self.stores.capacity()
    }
}

/// Connects to NATS (bounded by `connect_timeout`), then runs the node's tasks under
/// `shutdown`. Start-up fails if NATS cannot be reached at all: a node that silently ran
/// alone would split the cluster.
pub(crate) async fn start(
    settings: ClusterSettings,
    broker: Broker,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<Arc<Shared>, crate::ClusterError> {
    let degraded = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicU64::new(0));
    let back_at = Arc::new(Mutex::new(None));
    let client = connect(&settings, degraded.clone(), reconnects.clone(), back_at.clone()).await?;
    // Created once and kept: the node's own record must survive its reconnects.
    let js = async_nats::jetstream::new(client.clone());
    let buckets = Buckets {
        routes: bucket(&js, "roost_routes", 1).await?,
        nodes: bucket(&js, "roost_nodes", 1).await?,
        clients: bucket(&js, "roost_clients", 1).await?,
        retained: bucket(&js, "roost_retained", 1).await?,
        sessions: bucket(&js, "roost_sessions", 1).await?,
    };
    crate::persist::ensure_stream(&js, &settings).await?;
    let (out_tx, out_rx) = mpsc::channel(settings.buffer.max(1));
    let settings_addresses = settings.addresses.clone();
    let (kv_tx, kv_rx) = mpsc::channel(settings.buffer.max(1));
    let (stores_tx, stores_rx) = mpsc::channel(settings.buffer.max(1));
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    let started = std::time::SystemTime::now();
    let shared = Arc::new(Shared {
        settings,
        broker: broker.clone(),
        client: client.clone(),
        buckets: OnceLock::new(),
        table: RwLock::new(Table::default()),
        local: Mutex::new(HashMap::new()),
        rr: Mutex::new(HashMap::new()),
        out: out_tx,
        kv: kv_tx,
        degraded,
        reconnects,
        back_at,
        addresses: Mutex::new(settings_addresses),
        metrics: ClusterMetrics::default(),
        started,
        started_nanos: started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        next_store: AtomicU64::new(0),
        stores: stores_tx,
        acks: acks_tx,
        consumers: crate::persist::Consumers::default(),
        shutdown: shutdown.clone(),
    });
    let _ = shared.buckets.set(buckets);
    let buckets = shared.buckets.get().ok_or(crate::ClusterError::Nats("buckets".into()))?;
    purge_own_routes(&shared, &buckets.routes).await?;
    // Attach, then write what the node already holds (restored persistent sessions).
    for (group, filter, n) in broker.attach_cluster(Arc::new(crate::link::Link(shared.clone()))) {
        shared.local.lock().insert((group.clone(), filter.clone()), u32::try_from(n).unwrap_or(u32::MAX));
        shared.kv_op(KvOp::Route((group, filter)));
    }
    heartbeat_once(&shared).await;
    let inbox = client.subscribe(format!("roost.node.{}", shared.settings.node)).await.map_err(nats)?;
    let ctl = client.subscribe(format!("roost.ctl.{}", shared.settings.node)).await.map_err(nats)?;
    let routes = buckets.routes.watch_with_history(">").await.map_err(nats)?;
    let nodes = buckets.nodes.watch_with_history(">").await.map_err(nats)?;
    let retained = buckets.retained.watch_with_history(">").await.map_err(nats)?;
    let sessions = buckets.sessions.watch_with_history(">").await.map_err(nats)?;
    let spawn = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        let token = shutdown.clone();
        tracker.spawn(async move {
            tokio::select! { _ = token.cancelled() => {}, _ = f => {} }
        });
    };
    spawn(Box::pin(crate::tasks::forwarder(shared.clone(), out_rx)));
    spawn(Box::pin(crate::tasks::kv_writer(shared.clone(), kv_rx)));
    spawn(Box::pin(crate::tasks::inbox(shared.clone(), inbox)));
    spawn(Box::pin(crate::tasks::control(shared.clone(), ctl)));
    spawn(Box::pin(crate::tasks::watch_routes(shared.clone(), routes)));
    spawn(Box::pin(crate::tasks::watch_nodes(shared.clone(), nodes)));
    spawn(Box::pin(crate::tasks::watch_retained(shared.clone(), retained)));
    spawn(Box::pin(crate::tasks::heartbeat(shared.clone())));
    spawn(Box::pin(crate::tasks::watch_sessions(shared.clone(), sessions)));
    spawn(Box::pin(crate::persist::storer(shared.clone(), stores_rx)));
    spawn(Box::pin(crate::persist::acker(shared.clone(), acks_rx)));
    let leaving = shared.clone();
    tracker.spawn(async move {
        shutdown.cancelled().await;
        leave(&leaving).await;
    });
    Ok(shared)
}

fn nats(e: impl std::fmt::Display) -> crate::ClusterError {
    crate::ClusterError::Nats(e.to_string())
}

async fn connect(
    s: &ClusterSettings,
    degraded: Arc<AtomicBool>,
    reconnects: Arc<AtomicU64>,
    back_at: Arc<Mutex<Option<Instant>>>,
) -> Result<async_nats::Client, crate::ClusterError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("roost-{}", s.node))
        .connection_timeout(s.connect_timeout)
        .request_timeout(Some(s.request_timeout))
        // Reconnect forever with a short, capped delay: a node outlives NATS restarts.
        .max_reconnects(None)
        .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(1000)))
        .event_callback(move |event| {
            let (degraded, reconnects, back_at) = (degraded.clone(), reconnects.clone(), back_at.clone());
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        degraded.store(true, Ordering::Relaxed);
                        tracing::warn!("cluster: NATS connection lost; routing locally, buffering for other nodes");
                    }
                    async_nats::Event::Connected => {
                        if degraded.load(Ordering::Relaxed) {
                            *back_at.lock() = Some(Instant::now());
                            degraded.store(false, Ordering::Relaxed);
                            reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::info!("cluster: NATS connection back");
                        }
                    }
                    other => tracing::info!(event = %other, "cluster: NATS event"),
                }
            }
        });
    if let (Some(u), Some(p)) = (&s.user, &s.password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &s.token {
        opts = opts.token(t.clone());
    }
    if let Some(f) = &s.creds_file {
        opts = opts.credentials_file(f).await.map_err(|e| crate::ClusterError::Config(format!("creds_file: {e}")))?;
    }
    if let Some(ca) = &s.tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let urls = s.nats.join(",");
    let connecting = opts.connect(urls.as_str());
    match tokio::time::timeout(s.connect_timeout, connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(crate::ClusterError::Nats(format!("connecting to {urls}: {e}"))),
        Err(_) => Err(crate::ClusterError::Nats(format!("connecting to {urls}: no answer in {:?}", s.connect_timeout))),
    }
}

async fn bucket(
    js: &async_nats::jetstream::Context,
    name: &str,
    history: i64,
) -> Result<kv::Store, crate::ClusterError> {
    // The KV stream is created here as `create_key_value` would (same name, subjects and
    // limits), because that call first reads the account info, whose nats-server 2.9 form
    // async-nats 0.42 cannot parse.
    let config = async_nats::jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: history,
        max_message_size: -1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    if let Err(create) = js.get_or_create_stream(config).await {
        return Err(nats(format!("KV bucket {name}: cannot create it: {create}")));
    }
    js.get_key_value(name).await.map_err(|e| nats(format!("KV bucket {name}: {e}")))
}

/// Deletes routes a previous run of this node left (it may have died with them).
async fn purge_own_routes(shared: &Shared, routes: &kv::Store) -> Result<(), crate::ClusterError> {
    let prefix = format!("{}.", shared.settings.node);
    let mut keys = routes.keys().await.map_err(nats)?;
    let mut stale = Vec::new();
    while let Some(k) = keys.next().await {
        if let Ok(k) = k
            && k.starts_with(&prefix)
        {
            stale.push(k);
        }
    }
    for k in stale {
        routes.delete(&k).await.map_err(nats)?;
    }
    Ok(())
}

/// The route key of this node's (group, filter).
pub(crate) fn route_key(node: &str, group: Option<&str>, filter: &str) -> String {
    match group {
        None => format!("{node}.p.{}", escape(filter)),
        Some(g) => format!("{node}.s.{}.{}", escape(g), escape(filter)),
    }
}

/// (node, group, filter) of a route key; `None` if it is not one.
pub(crate) fn parse_route_key(key: &str) -> Option<(String, Option<String>, String)> {
    let mut parts = key.split('.');
    let node = parts.next()?.to_string();
    let out = match parts.next()? {
        "p" => (node, None, unescape(parts.next()?)?),
        "s" => {
            let g = unescape(parts.next()?)?;
            (node, Some(g), unescape(parts.next()?)?)
        }
        _ => return None,
    };
    parts.next().is_none().then_some(out)
}

/// This node's heartbeat value.
pub(crate) fn node_info(shared: &Shared) -> String {
    let started = shared.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let addresses: Vec<String> = shared.addresses.lock().iter().map(|a| format!("{a:?}")).collect();
    format!(
        "{{\"started\":{started},\"addresses\":[{}],\"sessions\":{},\"connections\":{},\"routes\":{}}}",
        addresses.join(","),
        shared.broker.session_count(),
        shared.broker.connection_count(),
        shared.local.lock().len()
    )
}

pub(crate) async fn heartbeat_once(shared: &Shared) {
    let Some(b) = shared.buckets.get() else { return };
    let t = Instant::now();
    let value = Bytes::from(node_info(shared));
    match tokio::time::timeout(shared.settings.request_timeout, b.nodes.put(&shared.settings.node, value)).await {
        Ok(Ok(_)) => {
            let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
            shared.metrics.rtt_micros.store(us, Ordering::Relaxed);
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "cluster: heartbeat not written"),
        Err(_) => tracing::debug!("cluster: heartbeat timed out"),
    }
}

/// Graceful leave: other nodes stop sending here at once instead of after `node_timeout`.
async fn leave(shared: &Shared) {
    if let Some(b) = shared.buckets.get() {
        let _ = tokio::time::timeout(Duration::from_secs(1), b.nodes.delete(&shared.settings.node)).await;
    }
}

/// Hands `client_id`'s session to the node that asked (a `roost.ctl` request).
pub(crate) fn hand_off(shared: &Shared, request: &[u8]) -> Bytes {
    let (Some(&1), Some(&clean)) = (request.first(), request.get(1)) else { return Bytes::new() };
    let Ok(cid) = std::str::from_utf8(&request[2..]) else { return Bytes::new() };
    let cid = ClientId::new(cid);
    shared.metrics.handoffs.fetch_add(1, Ordering::Relaxed);
    // Its stream's messages go to the new node's consumer, not here any more.
    shared.consumers.stop(&cid);
    match shared.broker.hand_off(&cid, clean != 0) {
        Some(h) => wire::encode_handoff(&h).into(),
        None => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_round_trip() {
        for (g, f) in [(None, "a/b"), (Some("g.1"), "x/+/#"), (None, "."), (Some(""), "*/>/ /é")] {
            let k = route_key("n-1", g, f);
            assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || "-_=.".contains(c)), "{k}");
            assert_eq!(parse_route_key(&k), Some(("n-1".into(), g.map(str::to_string), f.to_string())));
        }
        assert_eq!(parse_route_key("n.x.abc"), None);
        assert_eq!(parse_route_key("n.p.abc.def"), None);
    }
}
