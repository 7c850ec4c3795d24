//! The node's long-running tasks: forwarding publishes to other nodes, writing KV, serving
//! the inbox and control subjects, watching the route, node and retained buckets, and the
//! heartbeat. Each ends when the node shuts down (its caller selects on the token).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use async_nats::jetstream::kv::{Operation, Watch};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::escape::{escape, unescape};
use crate::node::{KvOp, Outgoing, Shared, hand_off, heartbeat_once, parse_route_key, route_key};
use crate::wire;

/// Most publishes one batch carries, and its size bound (well under NATS's default
/// `max_payload` of 1 MB).
const BATCH_MESSAGES: usize = 512;
const BATCH_BYTES: usize = 256 * 1024;

/// Sends queued publishes in order on the one NATS connection (so per-publisher order is
/// kept), batched per destination node: whatever is queued when the task wakes goes out
/// together, so a batch grows only under load and a lone publish is not delayed. While
/// NATS is away they wait here, in the bounded queue (a full queue drops and counts); when
/// it is back, each waits until its destination has been heard from since (its
/// subscriptions are then back too: NATS core drops a message nobody is subscribed to), or
/// `node_timeout` has passed.
pub(crate) async fn forwarder(shared: Arc<Shared>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut queued: Vec<Outgoing> = Vec::with_capacity(BATCH_MESSAGES);
    while rx.recv_many(&mut queued, BATCH_MESSAGES).await > 0 {
        // Per destination, in the order queued.
        let mut per_node: Vec<(String, String, Vec<Bytes>)> = Vec::new();
        for o in queued.drain(..) {
            match per_node.iter_mut().find(|(node, ..)| *node == o.node) {
                Some((.., frames)) => frames.push(o.payload),
                None => per_node.push((o.node, o.subject, vec![o.payload])),
            }
        }
        for (node, subject, frames) in per_node {
            wait_until_deliverable(&shared, &node).await;
            let mut start = 0;
            while start < frames.len() {
                let mut end = start + 1;
                let mut size = frames[start].len();
                while end < frames.len() && size + frames[end].len() <= BATCH_BYTES {
                    size += frames[end].len();
                    end += 1;
                }
                let batch = wire::encode_batch(&frames[start..end]);
                let count = (end - start) as u64;
                match shared.client.publish(subject.clone(), batch.into()).await {
                    Ok(()) => {
                        shared.metrics.messages_out.fetch_add(count, Ordering::Relaxed);
                    }
                    Err(e) => {
                        shared.metrics.dropped.fetch_add(count, Ordering::Relaxed);
                        tracing::warn!(error = %e, "cluster: forwarded messages could not be sent");
                    }
                }
                start = end;
            }
        }
    }
}

async fn wait_until_deliverable(shared: &Shared, node: &str) {
    const POLL: std::time::Duration = std::time::Duration::from_millis(20);
    while shared.degraded.load(Ordering::Relaxed) {
        tokio::time::sleep(POLL).await;
    }
    let Some(back) = *shared.back_at.lock() else { return };
    let limit = shared.settings.node_timeout;
    while back.elapsed() < limit {
        let heard = shared.table.read().peers().any(|(n, p)| n == node && p.last_seen > back);
        if heard || shared.degraded.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Writes routes, retained messages and client id releases to KV, in the order asked.
pub(crate) async fn kv_writer(shared: Arc<Shared>, mut rx: mpsc::Receiver<KvOp>) {
    let Some(b) = shared.buckets.get() else { return };
    while let Some(op) = rx.recv().await {
        // Held while NATS is away, and tried again a few times if a write fails on the way
        // (a route lost here would leave other nodes blind to a subscription).
        let mut result = Ok(());
        for attempt in 0..5u32 {
            while shared.degraded.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            result = kv_write(&shared, b, &op).await;
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "cluster: KV write failed");
        }
    }
}

async fn kv_write(shared: &Shared, b: &crate::node::Buckets, op: &KvOp) -> Result<(), String> {
    match op {
        KvOp::Route(route) => {
            let key = route_key(&shared.settings.node, route.0.as_deref(), &route.1);
            let count = shared.local.lock().get(route).copied().unwrap_or(0);
            if count == 0 {
                b.routes.delete(&key).await.map_err(|e| e.to_string())
            } else {
                b.routes.put(&key, Bytes::from(count.to_string())).await.map(drop).map_err(|e| e.to_string())
            }
        }
        KvOp::Retain(topic, Some(v)) => {
            b.retained.put(escape(topic), Bytes::from(v.clone())).await.map(drop).map_err(|e| e.to_string())
        }
        KvOp::Retain(topic, None) => b.retained.delete(escape(topic)).await.map_err(|e| e.to_string()),
        KvOp::SessionEnded(cid) => {
            // Released only if this node still owns it and holds no new session of it.
            let key = escape(cid.as_str());
            match b.clients.get(key.clone()).await {
                Ok(Some(v)) if v == shared.settings.node.as_bytes() && !shared.broker.has_session(cid) => {
                    b.clients.delete(&key).await.map_err(|e| e.to_string())?;
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
            session_ended(shared, b, cid).await
        }
        KvOp::Session(cid) => {
            // The shape as it is now (several changes in a row write once each, the last
            // one last); nothing if the session left meanwhile.
            let Some(meta) = shared.broker.session_meta(cid) else { return Ok(()) };
            let value = wire::encode_session_record(&shared.settings.node, &meta);
            b.sessions.put(escape(cid.as_str()), value.into()).await.map(drop).map_err(|e| e.to_string())
        }
    }
}

/// A persistent session ended here for good (expired, or cleaned): its record, stream
/// messages and consumer go, if no other node took it meanwhile.
async fn session_ended(shared: &Shared, b: &crate::node::Buckets, cid: &roost_core::ClientId) -> Result<(), String> {
    let key = escape(cid.as_str());
    let owner = match b.sessions.get(key.clone()).await.map_err(|e| e.to_string())? {
        Some(v) => wire::decode_session_record(&v).map(|(o, _)| o).ok(),
        None => None,
    };
    // A new session of the same id may be here already (a clean start): it keeps its
    // consumer, record and stream.
    if shared.broker.has_session(cid) {
        return Ok(());
    }
    shared.consumers.stop(cid);
    if owner.as_deref() != Some(shared.settings.node.as_str()) {
        return Ok(());
    }
    b.sessions.delete(&key).await.map_err(|e| e.to_string())?;
    crate::persist::discard(shared, cid).await
}

/// Publishes other nodes forwarded here: routed locally, never forwarded again.
pub(crate) async fn inbox(shared: Arc<Shared>, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        let frames = match wire::decode_batch(&m.payload) {
            Ok(frames) => frames,
            Err(e) => {
                shared.metrics.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, subject = %m.subject, "cluster: bad batch refused");
                continue;
            }
        };
        for frame in frames {
            match wire::decode_publish(frame) {
                Ok((msg, groups, stored_for)) => {
                    shared.metrics.messages_in.fetch_add(1, Ordering::Relaxed);
                    shared.broker.route_remote_except(msg, groups, &stored_for);
                }
                Err(e) => {
                    shared.metrics.bad_frames.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, subject = %m.subject, "cluster: bad frame refused");
                }
            }
        }
    }
}

/// Takeover requests of other nodes.
pub(crate) async fn control(shared: Arc<Shared>, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        let reply = hand_off(&shared, &m.payload);
        if let Some(to) = m.reply
            && let Err(e) = shared.client.publish(to, reply).await
        {
            tracing::warn!(error = %e, "cluster: takeover reply not sent");
        }
    }
}

/// Keeps the route table in step with `roost_routes` (other nodes' entries only: this
/// node's own routes are known locally, synchronously).
pub(crate) async fn watch_routes(shared: Arc<Shared>, mut w: Watch) {
    while let Some(e) = w.next().await {
        let Ok(e) = e else { continue };
        let Some((node, group, filter)) = parse_route_key(&e.key) else { continue };
        if node == shared.settings.node {
            continue;
        }
        let count = match e.operation {
            Operation::Put => std::str::from_utf8(&e.value).ok().and_then(|v| v.parse().ok()).unwrap_or(0),
            Operation::Delete | Operation::Purge => 0,
        };
        shared.table.write().set(&node, group.as_deref(), &filter, count);
    }
}

/// Which nodes are alive: their heartbeats in `roost_nodes`.
pub(crate) async fn watch_nodes(shared: Arc<Shared>, mut w: Watch) {
    while let Some(e) = w.next().await {
        let Ok(e) = e else { continue };
        match e.operation {
            Operation::Put => {
                let info = String::from_utf8_lossy(&e.value).into_owned();
                // A stale record read at start-up is not a sign of life.
                let age = age(e.created.unix_timestamp_nanos());
                let seen = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                shared.table.write().heard(&e.key, info, seen);
            }
            Operation::Delete | Operation::Purge => shared.table.write().left(&e.key),
        }
    }
}

/// How long ago a KV entry was written (clocks of one machine or NTP-synchronised ones).
fn age(created_unix_nanos: i128) -> std::time::Duration {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let nanos = (i128::try_from(now).unwrap_or(i128::MAX) - created_unix_nanos).max(0);
    std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Cluster-wide retained messages into this node's retained store.
pub(crate) async fn watch_retained(shared: Arc<Shared>, mut w: Watch) {
    while let Some(e) = w.next().await {
        let Ok(e) = e else { continue };
        let Some(topic) = unescape(&e.key) else { continue };
        match e.operation {
            Operation::Put => match roost_core::store::wire::decode_message(&e.value) {
                Ok(m) => shared.broker.set_retained_remote(&topic, Some(m)),
                Err(err) => tracing::warn!(%topic, error = %err, "cluster: bad retained record"),
            },
            Operation::Delete | Operation::Purge => shared.broker.set_retained_remote(&topic, None),
        }
    }
}

/// The cluster's persistent sessions (`roost_sessions`) into the route table.
pub(crate) async fn watch_sessions(shared: Arc<Shared>, mut w: Watch) {
    while let Some(e) = w.next().await {
        let Ok(e) = e else { continue };
        let Some(cid) = unescape(&e.key) else { continue };
        let route = match e.operation {
            Operation::Put => match wire::decode_session_record(&e.value) {
                Ok((owner, meta)) => Some(session_route(owner, &meta)),
                Err(err) => {
                    tracing::warn!(client_id = %cid, error = %err, "cluster: bad session record");
                    continue;
                }
            },
            Operation::Delete | Operation::Purge => None,
        };
        shared.table.write().set_session(&cid, route);
    }
}

/// The filters of a session record as the table matches them (shared ones left out: they
/// take the route table's path).
fn session_route(owner: String, meta: &roost_core::store::SessionMeta) -> crate::table::SessionRoute {
    let filters = meta
        .subscriptions
        .iter()
        .filter(|(f, _)| !f.starts_with("$share/"))
        .map(|(f, o)| (f.clone(), o.qos, o.no_local))
        .collect();
    crate::table::SessionRoute { owner, filters }
}

/// Says this node is alive, every `heartbeat`.
pub(crate) async fn heartbeat(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.settings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        heartbeat_once(&shared).await;
    }
}
