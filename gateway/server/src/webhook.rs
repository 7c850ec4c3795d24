//! Webhooks (`[[webhook]]`): broker events as JSON, POSTed in batches to an HTTP endpoint.
//!
//! The hook half runs inline in the broker: it turns an event it wants into JSON and hands
//! it to a bounded queue with `try_send`, so the broker never waits on a webhook. The
//! sender task takes up to `batch_size` events (waiting at most `batch_delay` for more after
//! the first), POSTs them as one JSON array, and retries a failed POST `retries` times with
//! a backoff doubling from `retry_backoff`. What the queue cannot take, and batches that
//! failed every retry, are counted as dropped (`roost_webhook_events_dropped_total`).
//! POSTs go through roost-rules' hyper + rustls client: `http://` and `https://` (the web
//! roots, plus the webhook's `ca_file`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roost_core::hooks::{Event, EventMask, Hook};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One `[[webhook]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `http://` or `https://` (checked by the config loader).
    pub url: String,
    /// PEM CA certificates trusted besides the web roots, for `https://`.
    pub ca_file: Option<std::path::PathBuf>,
    pub events: EventMask,
    /// Events per POST at most.
    pub batch_size: usize,
    /// After the first event of a batch, how long to wait for more.
    pub batch_delay: Duration,
    /// Events waiting to be sent at most; beyond it new events are dropped (counted).
    pub queue: usize,
    /// Further attempts after a failed POST.
    pub retries: u32,
    /// Wait before the first retry, doubled for each next one.
    pub retry_backoff: Duration,
    /// Per POST.
    pub timeout: Duration,
}

impl WebhookSettings {
    pub fn defaults(url: String) -> WebhookSettings {
        WebhookSettings {
            url,
            ca_file: None,
            events: EventMask::ALL,
            batch_size: 100,
            batch_delay: Duration::from_millis(100),
            queue: 10_000,
            retries: 3,
            retry_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        }
    }
}

/// What one webhook did, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// Events delivered (the endpoint answered 2xx).
    pub sent: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Events dropped because their POST failed every retry.
    pub dropped_failed: AtomicU64,
    /// POST attempts that failed (each retry counts).
    pub failed_posts: AtomicU64,
}

impl WebhookCounters {
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full.load(Relaxed) + self.dropped_failed.load(Relaxed)
    }
}

/// The broker-side half.
pub struct WebhookHook {
    node: Arc<str>,
    events: EventMask,
    tx: mpsc::Sender<Value>,
    counters: Arc<WebhookCounters>,
}

impl Hook for WebhookHook {
    fn interests(&self) -> EventMask {
        self.events
    }

    fn on_event(&self, event: &Event<'_>) {
        let v = event_json(&self.node, event);
        if self.tx.try_send(v).is_err() {
            self.counters.dropped_queue_full.fetch_add(1, Relaxed);
        }
    }
}

/// A running webhook: its settings and counters.
#[derive(Clone)]
pub struct Webhook {
    pub settings: WebhookSettings,
    pub counters: Arc<WebhookCounters>,
}

/// The hook to register with the broker, and the sender to [`spawn`] once the runtime runs.
pub fn hook(node: &str, settings: WebhookSettings) -> (Arc<WebhookHook>, Webhook, mpsc::Receiver<Value>) {
    let (tx, rx) = mpsc::channel(settings.queue);
    let counters = Arc::new(WebhookCounters::default());
    let hook = Arc::new(WebhookHook { node: node.into(), events: settings.events, tx, counters: counters.clone() });
    (hook, Webhook { settings, counters }, rx)
}

/// Sends what the hook queues, until shutdown.
pub fn spawn(webhook: Webhook, mut rx: mpsc::Receiver<Value>, shutdown: CancellationToken, tracker: &TaskTracker) {
    tracker.spawn(async move {
        let Webhook { settings, counters } = webhook;
        let client = match roost_rules::action::http::HttpClient::new(&settings.url, settings.ca_file.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(url = %settings.url, error = %e, "webhook not started");
                return;
            }
        };
        loop {
            let first = tokio::select! {
                v = rx.recv() => match v { Some(v) => v, None => return },
                _ = shutdown.cancelled() => return,
            };
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + settings.batch_delay;
            while batch.len() < settings.batch_size {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(v)) => batch.push(v),
                    Ok(None) | Err(_) => break,
                }
            }
            let n = batch.len() as u64;
            let body = Value::Array(batch).to_string();
            let sent = tokio::select! {
                ok = post_with_retries(&settings, &client, &counters, body.as_bytes()) => ok,
                _ = shutdown.cancelled() => return,
            };
            if sent {
                counters.sent.fetch_add(n, Relaxed);
            } else {
                counters.dropped_failed.fetch_add(n, Relaxed);
                tracing::warn!(url = %settings.url, events = n, "webhook: POST failed every retry; events dropped");
            }
        }
    });
}

async fn post_with_retries(
    settings: &WebhookSettings,
    client: &roost_rules::action::http::HttpClient,
    counters: &WebhookCounters,
    body: &[u8],
) -> bool {
    let mut backoff = settings.retry_backoff;
    for attempt in 0..=settings.retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(Duration::from_secs(60));
        }
        let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        let r =
            tokio::time::timeout(settings.timeout, client.request(hyper::Method::POST, headers, body.to_vec())).await;
        match r {
            Ok(Ok(status)) if status.is_success() => return true,
            Ok(Ok(status)) => tracing::debug!(status = status.as_u16(), attempt, "webhook: endpoint refused the batch"),
            Ok(Err(e)) => tracing::debug!(error = %e, attempt, "webhook: POST failed"),
            Err(_) => tracing::debug!(attempt, "webhook: POST timed out"),
        }
        counters.failed_posts.fetch_add(1, Relaxed);
    }
    false
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn payload_json(payload: &[u8]) -> (Value, &'static str) {
    match std::str::from_utf8(payload) {
        Ok(s) => (Value::from(s), "plain"),
        Err(_) => (Value::from(crate::base64::encode(payload)), "base64"),
    }
}

fn message_json(m: &roost_core::Message, out: &mut serde_json::Map<String, Value>) {
    let (payload, encoding) = payload_json(&m.payload);
    out.insert("topic".into(), Value::from(&*m.topic));
    out.insert("qos".into(), Value::from(m.qos as u8));
    out.insert("retain".into(), Value::from(m.retain));
    out.insert("payload".into(), payload);
    out.insert("payload_encoding".into(), Value::from(encoding));
    out.insert("publisher".into(), m.publisher.as_ref().map_or(Value::Null, |p| Value::from(p.as_str())));
}

fn client_json(c: &roost_core::ClientInfo, out: &mut serde_json::Map<String, Value>) {
    out.insert("clientid".into(), Value::from(c.client_id.as_str()));
    out.insert("protocol".into(), Value::from(c.protocol_name()));
    out.insert("username".into(), c.username.as_deref().map_or(Value::Null, Value::from));
    out.insert("peer".into(), c.peer.map_or(Value::Null, |p| Value::from(p.to_string())));
}

/// An event as JSON, EMQX-style: `{"event": "client.connected", "node": ..., "timestamp":
/// ms, "clientid": ..., ...}`.
pub fn event_json(node: &str, event: &Event<'_>) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("event".into(), Value::from(event.kind().as_str()));
    o.insert("node".into(), Value::from(node));
    o.insert("timestamp".into(), Value::from(now_ms()));
    match event {
        Event::Connected { client, session_present, keep_alive } => {
            client_json(client, &mut o);
            o.insert("session_present".into(), Value::from(*session_present));
            o.insert("keep_alive".into(), Value::from(*keep_alive));
        }
        Event::Disconnected { client, reason } => {
            client_json(client, &mut o);
            o.insert("reason".into(), Value::from(format!("{reason:?}").to_lowercase()));
        }
        Event::Authenticate { client, allowed } => {
            client_json(client, &mut o);
            o.insert("result".into(), Value::from(if *allowed { "allow" } else { "deny" }));
        }
        Event::SessionCreated { client } | Event::SessionResumed { client } => client_json(client, &mut o),
        Event::Subscribed { client, filter } | Event::Unsubscribed { client, filter } => {
            client_json(client, &mut o);
            o.insert("topic".into(), Value::from(*filter));
        }
        Event::SessionTerminated { client_id, reason } => {
            o.insert("clientid".into(), Value::from(client_id.as_str()));
            o.insert("reason".into(), Value::from(*reason));
        }
        Event::Published { client, message } => {
            if let Some(c) = client {
                client_json(c, &mut o);
            }
            message_json(message, &mut o);
        }
        Event::Delivered { client, message, qos } => {
            message_json(message, &mut o);
            client_json(client, &mut o);
            o.insert("qos".into(), Value::from(*qos as u8));
        }
        Event::Acked { client, message } => {
            message_json(message, &mut o);
            client_json(client, &mut o);
        }
        Event::Dropped { client, message, reason } => {
            message_json(message, &mut o);
            o.insert("clientid".into(), client.map_or(Value::Null, |c| Value::from(c.as_str())));
            o.insert("reason".into(), Value::from(reason.as_str()));
        }
    }
    json!(o)
}
