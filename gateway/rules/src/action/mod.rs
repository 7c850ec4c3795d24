//! Actions: where a rule's output goes. Each action of each rule has its own bounded
//! queue and worker task, so the publish path only ever does a `try_send`: a full queue
//! drops the output and counts it (`dropped`), a slow or dead sink never slows publishing.
//! The worker writes batches through a [`Sink`], retrying a failed batch with a doubling
//! backoff (capped at 5 s) before dropping it (`failed`).
//!
//! A sink is one `async` method over a batch of outputs, so another store (Kafka, MongoDB)
//! is one more file and one more [`crate::config::ActionKind`] variant: it connects lazily,
//! reconnects on the next write after an error, and never holds the queue's lock.

pub mod amqp;
pub mod http;
pub mod influxdb;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod republish;
pub mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ActionConfig, ActionKind};

/// One output of a rule.
pub type Output = Map<String, Value>;

/// A failed write (the worker retries it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

impl SinkError {
    pub fn new(e: impl std::fmt::Display) -> SinkError {
        SinkError(e.to_string())
    }
}

/// Where an action writes.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Writes the whole batch, or fails as a whole (the batch is retried).
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError>;
}

/// An action's counters, for `/metrics` and the API.
#[derive(Debug, Default)]
pub struct ActionMetrics {
    /// Outputs written.
    pub success: AtomicU64,
    /// Outputs dropped after their batch failed every retry.
    pub failed: AtomicU64,
    /// Outputs dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Write attempts that failed (each retry counts).
    pub retried: AtomicU64,
}

/// The publish-path end of a running action.
pub struct ActionHandle {
    pub kind: &'static str,
    pub metrics: Arc<ActionMetrics>,
    tx: mpsc::Sender<Output>,
}

impl ActionHandle {
    /// Hands an output to the worker; counts it as dropped when the queue is full.
    pub fn offer(&self, out: Output) {
        if self.tx.try_send(out).is_err() {
            self.metrics.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Outputs waiting now.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// What actions need from the gateway.
#[derive(Clone)]
pub struct Env {
    pub broker: roost_core::Broker,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl ActionKind {
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::Republish { .. } => "republish",
            ActionKind::Log {} => "log",
            ActionKind::Http { .. } => "http",
            ActionKind::Sqlite { .. } => "sqlite",
            ActionKind::Postgres { .. } => "postgres",
            ActionKind::Mysql { .. } => "mysql",
            ActionKind::Redis { .. } => "redis",
            ActionKind::Rabbitmq { .. } => "rabbitmq",
            ActionKind::Influxdb { .. } => "influxdb",
        }
    }
}

/// Starts an action's worker (the config was validated). `rule` names it in logs.
pub fn start(rule: &str, cfg: &ActionConfig, env: &Env) -> Result<ActionHandle, SinkError> {
    let sink: Box<dyn Sink> = match &cfg.kind {
        ActionKind::Republish { .. } => Box::new(republish::Republish::new(&cfg.kind, env.broker.clone())?),
        ActionKind::Log {} => Box::new(LogSink { rule: rule.to_string() }),
        ActionKind::Http { .. } => Box::new(http::HttpSink::new(&cfg.kind)?),
        ActionKind::Sqlite { .. } => Box::new(sqlite::SqliteSink::new(&cfg.kind)?),
        ActionKind::Postgres { .. } => Box::new(postgres::PostgresSink::new(&cfg.kind)?),
        ActionKind::Mysql { .. } => Box::new(mysql::MysqlSink::new(&cfg.kind)?),
        ActionKind::Redis { .. } => Box::new(redis::RedisSink::new(&cfg.kind)?),
        ActionKind::Rabbitmq { .. } => Box::new(amqp::AmqpSink::new(&cfg.kind)?),
        ActionKind::Influxdb { .. } => Box::new(influxdb::InfluxSink::new(&cfg.kind)?),
    };
    let (tx, rx) = mpsc::channel(cfg.queue);
    let metrics = Arc::new(ActionMetrics::default());
    let worker = Worker {
        rule: rule.to_string(),
        kind: cfg.kind.name(),
        sink,
        rx,
        metrics: metrics.clone(),
        batch: cfg.batch_size,
        retries: cfg.retries,
        backoff: Duration::from_millis(cfg.retry_backoff_ms),
    };
    env.tracker.spawn(worker.run(env.shutdown.clone()));
    Ok(ActionHandle { kind: cfg.kind.name(), metrics, tx })
}

struct Worker {
    rule: String,
    kind: &'static str,
    sink: Box<dyn Sink>,
    rx: mpsc::Receiver<Output>,
    metrics: Arc<ActionMetrics>,
    batch: usize,
    retries: u32,
    backoff: Duration,
}

impl Worker {
    /// Until shutdown, or until the rule is replaced or deleted (its senders dropped, the
    /// queue drained).
    async fn run(mut self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(self.batch);
        loop {
            let n = tokio::select! {
                n = self.rx.recv_many(&mut batch, self.batch) => n,
                _ = shutdown.cancelled() => return,
            };
            if n == 0 {
                return;
            }
            tokio::select! {
                _ = self.write(&batch) => {}
                _ = shutdown.cancelled() => return,
            }
            batch.clear();
        }
    }

    async fn write(&mut self, batch: &[Output]) {
        let mut wait = self.backoff;
        for attempt in 0..=self.retries {
            match self.sink.write(batch).await {
                Ok(()) => {
                    self.metrics.success.fetch_add(batch.len() as u64, Relaxed);
                    return;
                }
                Err(e) => {
                    self.metrics.retried.fetch_add(1, Relaxed);
                    tracing::debug!(rule = %self.rule, action = self.kind, attempt, error = %e, "rule action failed");
                    if attempt == self.retries {
                        tracing::warn!(rule = %self.rule, action = self.kind, outputs = batch.len(), error = %e, "rule action failed every retry; outputs dropped");
                        self.metrics.failed.fetch_add(batch.len() as u64, Relaxed);
                        return;
                    }
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

struct LogSink {
    rule: String,
}

#[async_trait::async_trait]
impl Sink for LogSink {
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError> {
        for out in batch {
            tracing::info!(rule = %self.rule, output = %serde_json::Value::Object(out.clone()), "rule output");
        }
        Ok(())
    }
}
