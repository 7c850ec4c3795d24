//! The HTTP listener (`[http]`, 18083 by default): `GET /metrics` in the Prometheus text
//! format (values read from the broker's counters at each scrape; nothing is kept twice),
//! the management API under `/api/v1` (see [`crate::api`]) and the web page at `/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use roost_core::Broker;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Binds every `[http] bind` address.
pub async fn bind(addrs: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for a in addrs {
        out.push(TcpListener::bind(a).await.with_context(|| format!("http.bind {a}"))?);
    }
    Ok(out)
}

/// Every route of the HTTP listener: `/metrics` (no key: Prometheus scrapers), `/` (the
/// page; its data comes from the API, which needs the key), `/api/v1/...`.
pub fn app(api: crate::api::ApiState, extra_api: Vec<Router>) -> Router {
    #[cfg(feature = "web")]
    let extra_api = {
        let mut e = extra_api;
        e.push(crate::web::api_routes(&api.broker));
        e
    };
    let mut registry = Registry::with_prefix("roost");
    registry
        .register_collector(Box::new(BrokerCollector { broker: api.broker.clone(), webhooks: api.webhooks.clone() }));
    registry.register_collector(Box::new(roost_rules::metrics::RulesCollector(api.rules.clone())));
    registry.register_collector(Box::new(AdapterFamilies(api.adapters.clone())));
    if let Some(cluster) = &api.cluster {
        registry.register_collector(Box::new(ClusterCollector(cluster.clone())));
    }
    #[cfg(feature = "codec")]
    registry.register_collector(Box::new(crate::plugins::Collector(api.plugins.clone())));
    let app = Router::new().route("/metrics", get(metrics)).with_state(Arc::new(registry));
    #[cfg(feature = "web")]
    let app = app.merge(crate::web::routes());
    app.nest("/api/v1", crate::api::router(api, extra_api))
}

/// Serves `app` on `listener` until `shutdown`.
pub fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken, tracker: &TaskTracker) {
    tracker.spawn(async move {
        let result = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "http listener stopped");
        }
    });
}

async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        ),
        Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], "encoding failed".to_string())
        }
    }
}

struct BrokerCollector {
    broker: Broker,
    webhooks: Arc<crate::webhook_set::WebhookSet>,
}

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerCollector")
    }
}

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// Resident memory (bytes) and CPU time (seconds) of this process, from /proc on Linux.
pub(crate) fn process_stats() -> Option<(u64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // Linux reports in clock ticks of 1/100 s (USER_HZ) on every common platform.
    Some((rss_pages * 4096, ticks as f64 / 100.0))
}

/// A counter family with one label: `(label value, count)` for each member.
fn counter_family<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    members: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(0u64);
    let mut family = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    for (value, n) in members {
        ConstCounter::new(n).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

impl BrokerCollector {
    /// What each `[[webhook]]` sent and dropped, by URL (nothing without webhooks).
    fn encode_webhooks(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let webhooks = self.webhooks.list();
        if webhooks.is_empty() {
            return Ok(());
        }
        let sent = webhooks.iter().map(|w| (w.settings.url.as_str(), w.counters.sent.load(Relaxed)));
        counter_family(encoder, "webhook_events_sent", "Events a webhook endpoint accepted", "url", sent)?;
        let c = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "webhook_events_dropped",
            "Events a webhook dropped: queue full, or every retry failed",
            None,
            c.metric_type(),
        )?;
        for w in &webhooks {
            let url = w.settings.url.clone();
            let full = w.counters.dropped_queue_full.load(Relaxed);
            let failed = w.counters.dropped_failed.load(Relaxed);
            ConstCounter::new(full)
                .encode(family.encode_family(&[("url", url.as_str()), ("reason", "queue_full")])?)?;
            ConstCounter::new(failed).encode(family.encode_family(&[("url", url.as_str()), ("reason", "failed")])?)?;
        }
        Ok(())
    }
}

/// This process's resident memory and CPU time (Linux only).
fn encode_process(encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let Some((rss, cpu)) = process_stats() else { return Ok(()) };
    gauge(encoder, "process_resident_memory_bytes", "Resident memory of the roost process", rss as i64)?;
    let c = ConstCounter::new(cpu);
    c.encode(encoder.encode_descriptor(
        "process_cpu_seconds",
        "CPU time of the roost process",
        None,
        c.metric_type(),
    )?)
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let b = &self.broker;
        let m = b.metrics().snapshot();
        {
            let g = ConstGauge::new(0i64);
            let mut family =
                encoder.encode_descriptor("connections", "Open connections, by protocol", None, g.metric_type())?;
            for (protocol, connections, _, _) in &m.by_protocol {
                ConstGauge::new(*connections as i64).encode(family.encode_family(&[("protocol", *protocol)])?)?;
            }
        }
        let by_protocol = &m.by_protocol;
        let received = by_protocol.iter().map(|(protocol, _, received, _)| (*protocol, *received));
        counter_family(
            &mut encoder,
            "messages_received",
            "Messages published by clients, by protocol",
            "protocol",
            received,
        )?;
        let sent = by_protocol.iter().map(|(protocol, _, _, sent)| (*protocol, *sent));
        counter_family(&mut encoder, "messages_sent", "Messages delivered to clients, by protocol", "protocol", sent)?;
        let dropped = m.dropped_by_reason.iter().map(|(reason, n)| (*reason, *n));
        counter_family(&mut encoder, "messages_dropped", "Messages not delivered, by reason", "reason", dropped)?;
        let limited = m.limited.iter().map(|(what, n)| (*what, *n));
        let help = "Connections, reads and datagrams held back or refused by flood control";
        counter_family(&mut encoder, "limited", help, "what", limited)?;
        // Every event the log rate-limits (roost_core::peerlog), logged or not.
        let peer = roost_core::peerlog::global();
        let help = "Events peers caused (malformed input, refused connections, failed handshakes), by reason; \
                    all counted, the log rate-limited";
        counter_family(&mut encoder, "peer_events", help, "reason", peer.events())?;
        let help = "Log lines of peer events not written (rate limit per reason and source)";
        counter(&mut encoder, "peer_log_suppressed", help, peer.suppressed())?;
        counter(&mut encoder, "connects", "Connections accepted since start", m.connects_total)?;
        counter(&mut encoder, "received_bytes", "Bytes received from clients", m.bytes_received)?;
        counter(&mut encoder, "sent_bytes", "Bytes sent to clients", m.bytes_sent)?;
        counter(&mut encoder, "auth_failures", "Refused logins", m.auth_failures)?;
        gauge(&mut encoder, "sessions", "Sessions held, online and offline", b.session_count() as i64)?;
        let filters = b.subscription_filter_count() as i64;
        gauge(&mut encoder, "subscription_filters", "Distinct subscribed filters", filters)?;
        gauge(&mut encoder, "retained_messages", "Retained messages", b.retained_count() as i64)?;
        let (queued, inflight) = b.queue_totals();
        gauge(&mut encoder, "queued_messages", "Messages waiting in session queues", queued as i64)?;
        let help = "Outgoing QoS 1/2 messages awaiting acknowledgement";
        gauge(&mut encoder, "inflight_messages", help, inflight as i64)?;
        self.encode_webhooks(&mut encoder)?;
        encode_process(&mut encoder)
    }
}

/// Every family the adapters declared, read at each scrape: a counter declared once by an
/// adapter is here without any code in this file.
struct AdapterFamilies(Arc<roost_adapter::AdapterRegistry>);

impl std::fmt::Debug for AdapterFamilies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdapterFamilies")
    }
}

impl Collector for AdapterFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (_, family) in self.0.families() {
            let samples = family.samples();
            let metric = |value: u64| -> Box<dyn EncodeMetric> {
                match family.kind {
                    roost_adapter::Kind::Counter => Box::new(ConstCounter::new(value)),
                    roost_adapter::Kind::Gauge => Box::new(ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))),
                }
            };
            let kind = metric(0).metric_type();
            let mut enc = encoder.encode_descriptor(family.name, family.help, None, kind)?;
            if family.labels.is_empty() {
                // One unlabelled value: encoded on the descriptor itself.
                if let Some(s) = samples.first() {
                    metric(s.value).encode(enc)?;
                }
                continue;
            }
            for s in samples {
                metric(s.value).encode(enc.encode_family(&labels(&family.labels, &s.labels))?)?;
            }
        }
        Ok(())
    }
}

fn labels<'a>(names: &'a [&'static str], values: &'a [&'static str]) -> Vec<(&'static str, &'static str)> {
    names.iter().copied().zip(values.iter().copied()).collect()
}

/// `roost_cluster_*`: present only on a node of a cluster.
#[derive(Debug)]
struct ClusterCollector(roost_cluster::Cluster);

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.status();
        let e = &mut encoder;
        counter(e, "cluster_messages_out", "Publishes forwarded to other nodes", s.messages_out)?;
        counter(e, "cluster_messages_in", "Publishes received from other nodes", s.messages_in)?;
        counter(e, "cluster_dropped", "Messages for other nodes dropped (buffer full or NATS error)", s.dropped)?;
        counter(e, "cluster_bad_frames", "Frames from other nodes refused as malformed", s.bad_frames)?;
        counter(e, "cluster_takeovers", "Client ids taken over from another node", s.takeovers)?;
        counter(e, "cluster_handoffs", "Sessions handed to another node", s.handoffs)?;
        counter(e, "cluster_reconnects", "Reconnections to NATS", s.reconnects)?;
        gauge(e, "cluster_buffer_depth", "Messages waiting to be sent to other nodes", s.buffered as i64)?;
        gauge(e, "cluster_degraded", "1 while NATS is unreachable (local routing only)", i64::from(s.degraded))?;
        let up = s.nodes.iter().filter(|n| n.alive).count();
        gauge(e, "cluster_nodes_up", "Nodes heard from within node_timeout (this one included)", up as i64)?;
        gauge(e, "cluster_routes_local", "Filters of this node in the route table", s.local_routes as i64)?;
        gauge(e, "cluster_routes_remote", "Filters of other nodes known here", s.remote_routes as i64)?;
        gauge(e, "cluster_nats_rtt_microseconds", "Round trip of the last heartbeat KV write", s.rtt_micros as i64)?;
        gauge(
            e,
            "cluster_sessions_persistent",
            "Persistent sessions of the cluster known here",
            s.persistent_sessions as i64,
        )?;
        gauge(
            e,
            "cluster_session_consumers",
            "Persistent sessions here taking their JetStream messages",
            s.session_consumers as i64,
        )?;
        counter(e, "cluster_session_stored", "Messages stored in persistent sessions' JetStream streams", s.stored)?;
        counter(e, "cluster_session_store_failures", "Session stores JetStream did not acknowledge", s.store_failures)?;
        counter(e, "cluster_session_in", "Messages taken from JetStream into sessions here", s.session_in)?;
        counter(
            e,
            "cluster_sessions_resumed",
            "Persistent sessions resumed after their node did not hand them over",
            s.resumed,
        )?;
        Ok(())
    }
}
