//! `$SYS/brokers/{node}/...`: broker statistics published every `[node] sys_interval`
//! (retained, as Mosquitto does, so a new subscriber sees the latest at once), and client
//! connected/disconnected events (JSON, not retained) for every protocol.
//!
//! Every adapter's declared metric families are published too, under
//! `adapters/{adapter}/{family}[/{label value}...]` (see [`publish_adapters`]).
//!
//! Events come from a core hook through a bounded channel: the hook never blocks the
//! broker; if the publisher falls behind, events are dropped and counted in a log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roost_core::hooks::{Event, EventKind, EventMask, Hook};
use roost_core::{Broker, Message, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Client events waiting to be published at most.
const EVENT_QUEUE: usize = 4096;

/// The hook half: turns connect/disconnect events into JSON for the publisher.
pub struct SysHook {
    tx: mpsc::Sender<(String, String)>,
    dropped: AtomicU64,
}

impl Hook for SysHook {
    fn interests(&self) -> EventMask {
        EventMask::of(&[EventKind::ClientConnected, EventKind::ClientDisconnected])
    }

    fn on_event(&self, event: &Event<'_>) {
        let (client, what, extra) = match event {
            Event::Connected { client, session_present, keep_alive } => {
                (client, "connected", format!(",\"session_present\":{session_present},\"keep_alive\":{keep_alive}"))
            }
            Event::Disconnected { client, reason } => {
                (client, "disconnected", format!(",\"reason\":{}", json_str(&format!("{reason:?}").to_lowercase())))
            }
            _ => return,
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let body = format!(
            "{{\"clientid\":{},\"protocol\":{},\"peer\":{},\"username\":{},\"ts\":{now}{extra}}}",
            json_str(client.client_id.as_str()),
            json_str(client.protocol_name()),
            client.peer.map_or("null".into(), |p| json_str(&p.to_string())),
            client.username.as_deref().map_or("null".into(), json_str),
        );
        let topic_client = client.client_id.as_str().replace(['/', '+', '#'], "_");
        if self.tx.try_send((format!("clients/{topic_client}/{what}"), body)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The hook to register with the broker, and the receiving end for [`spawn`].
pub fn hook() -> (Arc<SysHook>, mpsc::Receiver<(String, String)>) {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    (Arc::new(SysHook { tx, dropped: AtomicU64::new(0) }), rx)
}

/// What the `$SYS` publisher works from.
pub struct SysPublisher {
    pub broker: Broker,
    pub node: String,
    pub interval: Duration,
    pub hook: Arc<SysHook>,
    pub events: mpsc::Receiver<(String, String)>,
    pub bridges: crate::reload::parts::BridgeStatuses,
    /// Every adapter's declared metric families, published under `adapters/{name}/`.
    pub adapters: Arc<roost_adapter::AdapterRegistry>,
    /// This node's cluster, whose state goes to `cluster/state` and `cluster` (JSON).
    pub cluster: Option<roost_cluster::Cluster>,
}

/// Publishes statistics every `interval` and events as they come, until shutdown.
pub fn spawn(publisher: SysPublisher, shutdown: CancellationToken, tracker: &TaskTracker) {
    let SysPublisher { broker, node, interval, hook, mut events, bridges, adapters, cluster } = publisher;
    tracker.spawn(async move {
        let prefix = format!("$SYS/brokers/{node}");
        let started = Instant::now();
        let mut max_connections = 0u64;
        let mut tick = tokio::time::interval(interval);
        let mut reported_drops = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    max_connections = max_connections.max(broker.connection_count());
                    publish_stats(&broker, &prefix, started, max_connections);
                    publish_bridges(&broker, &prefix, &bridges.read());
                    publish_adapters(&broker, &prefix, &adapters);
                    if let Some(c) = &cluster {
                        publish_cluster(&broker, &prefix, c);
                    }
                    let drops = hook.dropped.load(Ordering::Relaxed);
                    if drops > reported_drops {
                        tracing::warn!(dropped = drops - reported_drops, "$SYS client events dropped: publisher behind");
                        reported_drops = drops;
                    }
                }
                Some((topic, body)) = events.recv() => {
                    max_connections = max_connections.max(broker.connection_count());
                    broker.publish(Message::new(format!("{prefix}/{topic}"), body, QoS::AtMostOnce, false));
                }
                _ = shutdown.cancelled() => return,
            }
        }
    });
}

/// `cluster/state` (`up` or `degraded`) and `cluster` (the `/api/v1/cluster` JSON),
/// retained; per node like all of `$SYS` (it is never forwarded to other nodes).
fn publish_cluster(broker: &Broker, prefix: &str, cluster: &roost_cluster::Cluster) {
    let status = cluster.status();
    let state = if status.degraded { "degraded" } else { "up" };
    broker.publish(Message::new(format!("{prefix}/cluster/state"), state, QoS::AtMostOnce, true));
    let body = crate::api::cluster::view(&status).to_string();
    broker.publish(Message::new(format!("{prefix}/cluster"), body, QoS::AtMostOnce, true));
}

/// `bridges/{name}/connected|queue|forwarded/out|forwarded/in|last_error`, retained.
fn publish_bridges(
    broker: &Broker,
    prefix: &str,
    bridges: &[(String, Arc<parking_lot::Mutex<roost_bridge::BridgeStatus>>)],
) {
    for (name, status) in bridges {
        let s = status.lock().clone();
        let queue = broker.queue_len(&roost_core::ClientId::new(format!("$bridge/{name}"))).unwrap_or(0);
        let items = [
            ("connected", s.connected.to_string()),
            ("queue", queue.to_string()),
            ("forwarded/out", s.forwarded_out.to_string()),
            ("forwarded/in", s.forwarded_in.to_string()),
            ("last_error", s.last_error.unwrap_or_default()),
        ];
        for (topic, value) in items {
            broker.publish(Message::new(format!("{prefix}/bridges/{name}/{topic}"), value, QoS::AtMostOnce, true));
        }
    }
}

/// `adapters/{adapter}/{family}[/{label value}...]`, retained: every family each adapter
/// declared, e.g. `adapters/mqttsn/mqttsn_events/malformed`; and
/// `adapters/{adapter}/listeners` (`udp 127.0.0.1:1884, ...`).
fn publish_adapters(broker: &Broker, prefix: &str, adapters: &roost_adapter::AdapterRegistry) {
    for entry in adapters.entries() {
        let base = format!("{prefix}/adapters/{}", entry.name);
        let listeners: Vec<String> = entry.listeners.iter().map(|l| format!("{} {}", l.transport, l.addr)).collect();
        broker.publish(Message::new(format!("{base}/listeners"), listeners.join(", "), QoS::AtMostOnce, true));
        for family in &entry.metrics {
            for sample in family.samples() {
                let mut topic = format!("{base}/{}", family.name);
                for value in &sample.labels {
                    topic.push('/');
                    topic.push_str(value);
                }
                broker.publish(Message::new(topic, sample.value.to_string(), QoS::AtMostOnce, true));
            }
        }
    }
}

fn publish_stats(broker: &Broker, prefix: &str, started: Instant, max_connections: u64) {
    let m = broker.metrics().snapshot();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut items: Vec<(String, String)> = vec![
        ("version".into(), format!("roost {}", env!("CARGO_PKG_VERSION"))),
        ("uptime".into(), format!("{} seconds", started.elapsed().as_secs())),
        ("datetime".into(), now.to_string()),
        ("stats/connections/count".into(), m.connections.to_string()),
        ("stats/connections/max".into(), max_connections.to_string()),
        ("stats/sessions/count".into(), broker.session_count().to_string()),
        ("stats/subscriptions/count".into(), broker.subscription_count().to_string()),
        ("stats/topics/count".into(), broker.subscription_filter_count().to_string()),
        ("stats/retained/count".into(), broker.retained_count().to_string()),
        ("metrics/messages/received".into(), m.messages_received.to_string()),
        ("metrics/messages/sent".into(), m.messages_sent.to_string()),
        ("metrics/messages/dropped".into(), m.messages_dropped.to_string()),
        ("metrics/bytes/received".into(), m.bytes_received.to_string()),
        ("metrics/bytes/sent".into(), m.bytes_sent.to_string()),
    ];
    for (protocol, connections, messages_in, messages_out) in &m.by_protocol {
        items.push((format!("stats/protocols/{protocol}/connections/count"), connections.to_string()));
        items.push((format!("metrics/protocols/{protocol}/messages/received"), messages_in.to_string()));
        items.push((format!("metrics/protocols/{protocol}/messages/sent"), messages_out.to_string()));
    }
    for (reason, n) in &m.dropped_by_reason {
        items.push((format!("metrics/messages/dropped/{reason}"), n.to_string()));
    }
    for (topic, value) in items {
        broker.publish(Message::new(format!("{prefix}/{topic}"), value, QoS::AtMostOnce, true));
    }
}
