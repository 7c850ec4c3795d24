//! [`ClusterLink`] for the core: what a node does, on its routing path, when a message is
//! published, a subscription changes or a client connects. Nothing here waits on NATS but
//! the client id claim at CONNECT, which is bounded by `request_timeout`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use roost_core::cluster::{BoxFuture, ClusterLink, Forwarded, GroupKey, LocalShare, SessionHandoff};
use roost_core::store::SessionMeta;
use roost_core::{ClientId, Message, QoS};

use crate::escape::escape;
use crate::node::{KvOp, Outgoing, Shared};
use crate::wire;

/// The link the core holds.
pub(crate) struct Link(pub Arc<Shared>);

impl ClusterLink for Link {
    fn forward(&self, msg: &Arc<Message>) -> Forwarded {
        let s = &self.0;
        if msg.retain {
            let value = (!msg.payload.is_empty()).then(|| roost_core::store::wire::encode_message(msg));
            s.kv_op(KvOp::Retain(msg.topic.to_string(), value));
        }
        let (stored_for, stored) = self.0.store_for_sessions(msg);
        let now = Instant::now();
        // While NATS is away no heartbeat arrives from anyone: the routes last known stay in
        // force, so that messages wait in the buffer instead of being judged undeliverable.
        let timeout = if s.degraded.load(Ordering::Relaxed) { Duration::MAX } else { s.settings.node_timeout };
        let matched = s.table.read().matches(&msg.topic, now, timeout);
        if matched.nodes.is_empty() && matched.groups.is_empty() {
            return Forwarded { stored_for, stored, ..Default::default() };
        }
        // One frame per destination node: the plain-route nodes, plus the node picked for
        // each shared group (which may be this one).
        let mut dest: BTreeMap<String, Vec<GroupKey>> = matched.nodes.into_iter().map(|n| (n, Vec::new())).collect();
        let mut local_groups = Vec::new();
        for (key, members) in matched.groups {
            match s.pick(&key, &members) {
                None => local_groups.push(key),
                Some(node) => dest.entry(node).or_default().push(key),
            }
        }
        let mut sent = 0;
        for (node, groups) in &dest {
            let payload = wire::encode_publish(msg, groups, &stored_for);
            let subject = format!("roost.node.{node}");
            if s.send(Outgoing { node: node.clone(), subject, payload: payload.into() }) {
                sent += 1;
            }
        }
        // Groups with members only here were not in `matched` (it lists other nodes): this
        // node keeps them unless another node was picked for them.
        let picked_elsewhere: Vec<&GroupKey> = dest.values().flatten().collect();
        let share = if picked_elsewhere.is_empty() {
            LocalShare::All
        } else {
            let mut keep: Vec<GroupKey> = s.local_groups_matching(&msg.topic);
            keep.retain(|k| !picked_elsewhere.contains(&k));
            keep.extend(local_groups);
            LocalShare::Only(keep)
        };
        Forwarded { nodes: sent, share, stored_for, stored }
    }

    fn route_added(&self, group: Option<&str>, filter: &str) {
        self.0.local_route(group, filter, 1);
    }

    fn route_removed(&self, group: Option<&str>, filter: &str) {
        self.0.local_route(group, filter, -1);
    }

    fn claim<'a>(&'a self, client_id: &'a ClientId, clean_start: bool) -> BoxFuture<'a, Option<SessionHandoff>> {
        Box::pin(self.0.clone().claim(client_id.clone(), clean_start))
    }

    fn session_ended(&self, client_id: &ClientId) {
        self.0.kv_op(KvOp::SessionEnded(client_id.clone()));
    }

    fn session_here(&self, meta: &SessionMeta) {
        self.0.kv_op(KvOp::Session(meta.client_id.clone()));
        crate::persist::ensure_consumer(&self.0, &meta.client_id);
    }
}

impl Shared {
    /// Stores a QoS 1/2 message in the JetStream stream of every persistent session that
    /// takes it at QoS 1/2, on whatever node it is (this one too) and whatever that node's
    /// state: the sessions it was stored for, and what resolves once JetStream has them all.
    /// While NATS is away, sessions held here are served locally instead, and stores for
    /// the others wait in the bounded buffer (acknowledged to the publisher at once: see
    /// docs/cluster.md, failure semantics).
    fn store_for_sessions(
        &self,
        msg: &Message,
    ) -> (Vec<ClientId>, Option<roost_core::cluster::BoxFuture<'static, Result<(), String>>>) {
        if msg.qos == QoS::AtMostOnce || msg.receipt.is_some() {
            return (Vec::new(), None);
        }
        let matched = self.table.read().match_sessions(&msg.topic);
        if matched.is_empty() {
            return (Vec::new(), None);
        }
        let degraded = self.degraded.load(Ordering::Relaxed);
        let mut payload = None;
        let mut stored_for = Vec::new();
        let mut waits = Vec::new();
        for m in matched {
            let own = m.no_local && msg.publisher.as_ref().map(ClientId::as_str) == Some(&*m.client_id);
            if m.qos == QoS::AtMostOnce || own || (degraded && m.owner == self.settings.node) {
                continue;
            }
            let payload =
                payload.get_or_insert_with(|| Bytes::from(roost_core::store::wire::encode_message(msg))).clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            // Unique across this node's runs: name, start time, count.
            let n = self.next_store.fetch_add(1, Ordering::Relaxed);
            let store = crate::persist::Store {
                subject: crate::persist::subject(&m.client_id),
                id: format!("{}-{}-{n}", self.settings.node, self.started_nanos),
                payload,
                stored: (!degraded).then_some(tx),
            };
            if self.stores.try_send(store).is_err() {
                // The buffer is full: this session is served the direct way (counted).
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if !degraded {
                waits.push(rx);
            }
            stored_for.push(ClientId::new(&*m.client_id));
        }
        if waits.is_empty() {
            return (stored_for, None);
        }
        let limit = self.settings.request_timeout * 2;
        let wait = async move {
            let all = futures::future::join_all(waits);
            match tokio::time::timeout(limit, all).await {
                Err(_) => Err(format!("cluster: JetStream did not store the message in {limit:?}")),
                Ok(results) => results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|_| Err("cluster: store abandoned".into())))
                    .collect::<Result<Vec<()>, String>>()
                    .map(drop),
            }
        };
        (stored_for, Some(Box::pin(wait)))
    }

    /// The shape the cluster kept of `client_id`'s persistent session (its node died, or
    /// held nothing): resumed here with no message, which its stream delivers.
    async fn kept_session(&self, client_id: &ClientId) -> Option<SessionHandoff> {
        let buckets = self.buckets.get()?;
        let get = buckets.sessions.get(escape(client_id.as_str()));
        let value = match tokio::time::timeout(self.settings.request_timeout, get).await {
            Ok(Ok(v)) => v?,
            _ => {
                tracing::warn!(%client_id, "cluster: session registry unreachable; connecting without the kept session");
                return None;
            }
        };
        match wire::decode_session_record(&value) {
            Ok((owner, meta)) => {
                tracing::info!(%client_id, %owner, "cluster: resuming a persistent session its node did not hand over");
                self.metrics.resumed.fetch_add(1, Ordering::Relaxed);
                Some(SessionHandoff { meta, messages: Vec::new(), awaiting_rel: Vec::new() })
            }
            Err(e) => {
                tracing::warn!(%client_id, error = %e, "cluster: kept session unreadable");
                None
            }
        }
    }

    /// A clean start: the messages and record of the persistent session `client_id` had
    /// are dropped cluster-wide (bounded by `request_timeout`).
    async fn forget_session(&self, client_id: &ClientId) {
        self.consumers.stop(client_id);
        let Some(buckets) = self.buckets.get() else { return };
        let limit = self.settings.request_timeout;
        let work = async {
            crate::persist::discard(self, client_id).await?;
            buckets.sessions.delete(escape(client_id.as_str())).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(limit, work).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%client_id, error = %e, "cluster: old session not discarded"),
            Err(_) => tracing::warn!(%client_id, "cluster: old session not discarded in time"),
        }
    }

    /// Picks the node that serves shared group `key` for one message: round robin over
    /// every member in the cluster (so a node with more members gets more messages).
    /// `None`: this node.
    fn pick(&self, key: &GroupKey, remote: &[(String, u32)]) -> Option<String> {
        let local = self.local.lock().get(&(Some(key.0.to_string()), key.1.to_string())).copied().unwrap_or(0);
        let total: u64 = u64::from(local) + remote.iter().map(|(_, c)| u64::from(*c)).sum::<u64>();
        if total == 0 {
            return None;
        }
        let turn = {
            let mut rr = self.rr.lock();
            let n = rr.entry(key.clone()).or_insert(0);
            *n = n.wrapping_add(1);
            *n % total
        };
        if turn < u64::from(local) {
            return None;
        }
        let mut left = turn - u64::from(local);
        for (node, c) in remote {
            if left < u64::from(*c) {
                return Some(node.clone());
            }
            left -= u64::from(*c);
        }
        None
    }

    /// Local shared groups whose filter matches `topic` (a message picked elsewhere for
    /// some groups still needs this node for its other groups).
    fn local_groups_matching(&self, topic: &str) -> Vec<GroupKey> {
        self.local
            .lock()
            .iter()
            .filter_map(|((g, f), n)| match g {
                Some(g) if *n > 0 && roost_core::topic::matches(f, topic) => {
                    Some((g.as_str().into(), f.as_str().into()))
                }
                _ => None,
            })
            .collect()
    }

    /// Counts a local subscription change and schedules the KV write of its route.
    pub(crate) fn local_route(&self, group: Option<&str>, filter: &str, delta: i64) {
        let key = (group.map(str::to_string), filter.to_string());
        {
            let mut local = self.local.lock();
            let n = local.entry(key.clone()).or_insert(0);
            *n = u32::try_from((i64::from(*n) + delta).max(0)).unwrap_or(u32::MAX);
            if *n == 0 {
                local.remove(&key);
            }
        }
        self.kv_op(KvOp::Route(key));
    }

    /// Makes this node the owner of `client_id`; returns the session its previous owner
    /// handed over (see [`ClusterLink::claim`]).
    async fn claim(self: Arc<Self>, client_id: ClientId, clean_start: bool) -> Option<SessionHandoff> {
        let buckets = self.buckets.get()?;
        if self.degraded.load(Ordering::Relaxed) {
            return None;
        }
        let limit = self.settings.request_timeout;
        let key = escape(client_id.as_str());
        let owner = match tokio::time::timeout(limit, buckets.clients.get(key.clone())).await {
            Ok(Ok(v)) => v.and_then(|b| String::from_utf8(b.to_vec()).ok()),
            _ => {
                tracing::warn!(%client_id, "cluster: client id registry unreachable; connecting without a claim");
                return None;
            }
        };
        let mut handoff = None;
        if let Some(owner) = owner.filter(|o| *o != self.settings.node) {
            let mut req = vec![1u8, u8::from(clean_start)];
            req.extend_from_slice(client_id.as_str().as_bytes());
            let subject = format!("roost.ctl.{owner}");
            match tokio::time::timeout(limit, self.client.request(subject, req.into())).await {
                Ok(Ok(reply)) if !reply.payload.is_empty() => match wire::decode_handoff(&reply.payload) {
                    Ok(h) => handoff = Some(h),
                    Err(e) => tracing::warn!(%client_id, %owner, error = %e, "cluster: session handoff unreadable"),
                },
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::info!(%client_id, %owner, error = %e, "cluster: previous owner did not answer"),
                Err(_) => tracing::info!(%client_id, %owner, "cluster: previous owner did not answer in time"),
            }
            self.metrics.takeovers.fetch_add(1, Ordering::Relaxed);
        }
        if clean_start {
            if self.table.read().session(client_id.as_str()).is_some() {
                self.forget_session(&client_id).await;
            }
        } else if handoff.is_none() && !self.broker.has_session(&client_id) {
            handoff = self.kept_session(&client_id).await;
        }
        let node = bytes::Bytes::from(self.settings.node.clone().into_bytes());
        if tokio::time::timeout(limit, buckets.clients.put(key, node)).await.is_err() {
            tracing::warn!(%client_id, "cluster: client id registry write timed out");
        }
        handoff.filter(|_| !clean_start)
    }
}
