//! `conn`: open N idle MQTT connections at a rate, hold them, close them.
//!
//! Each connection, once CONNACK is in, is kept as a bare `TcpStream` (keep alive 0, so the
//! broker expects no PINGREQ). With the broker's pid, its resident set size (VmRSS) is read
//! before the first connection and after the last one has settled: the difference over the
//! connection count is the broker's own memory per idle connection (socket buffers live in
//! the kernel and are not in it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use roost_mqtt::codec::ProtocolVersion;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::{Client, ConnectOptions};

/// Handshakes in progress at once.
const CONCURRENT_HANDSHAKES: usize = 256;
/// Wait after the last CONNACK before reading the broker's memory.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub target: String,
    pub connections: u32,
    /// New connections per second.
    pub rate: f64,
    pub hold: Duration,
    pub pid: Option<u32>,
    pub version: ProtocolVersion,
    pub run_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnReport {
    pub scenario: &'static str,
    pub target: String,
    pub connections: u32,
    pub connected: u64,
    pub failures: u64,
    /// Connections established per second (first attempt to last CONNACK).
    pub connect_rate: f64,
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub bytes_per_connection: Option<f64>,
}

impl ConnReport {
    pub fn summary(&self) -> String {
        let mem = match (self.rss_before_bytes, self.rss_after_bytes, self.bytes_per_connection) {
            (Some(b), Some(a), Some(per)) => {
                format!(", broker RSS {:.1} MiB -> {:.1} MiB = {per:.0} bytes/connection", mib(b), mib(a))
            }
            _ => String::new(),
        };
        format!(
            "conn: {}/{} connected, {} failures, {:.0} connections/s{mem}",
            self.connected, self.connections, self.failures, self.connect_rate
        )
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Resident set size of a process, from /proc/PID/status.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs the scenario on a fresh single-threaded runtime (blocks the calling thread).
pub fn run(cfg: &ConnConfig) -> anyhow::Result<ConnReport> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run_async(cfg.clone()))
}

async fn run_async(cfg: ConnConfig) -> anyhow::Result<ConnReport> {
    let before = cfg.pid.and_then(rss_bytes);
    let failures = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
    let opts = ConnectOptions { version: cfg.version, ..ConnectOptions::default() };
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / cfg.rate.max(0.001));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(cfg.connections as usize);
    let deadline = start + Duration::from_secs(120);
    for n in 0..cfg.connections {
        tick.tick().await;
        if Instant::now() > deadline {
            break; // bounded even when the broker stalls
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (target, opts, failures) = (cfg.target.clone(), opts.clone(), failures.clone());
        let id = format!("bench-{}-conn-{n}", cfg.run_id);
        tasks.push(tokio::spawn(async move {
            let r = Client::connect(&target, &id, &opts).await;
            drop(permit);
            match r {
                Ok(c) => Some(c.into_parts().0),
                Err(_) => {
                    failures.fetch_add(1, Relaxed);
                    None
                }
            }
        }));
    }
    let mut held = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(Some(stream)) = t.await {
            held.push(stream);
        }
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = cfg.pid.and_then(rss_bytes);
    tokio::time::sleep(cfg.hold.saturating_sub(SETTLE)).await;
    let connected = held.len() as u64;
    drop(held);
    let per = match (before, after) {
        (Some(b), Some(a)) if connected > 0 => Some((a as f64 - b as f64) / connected as f64),
        _ => None,
    };
    Ok(ConnReport {
        scenario: "conn",
        target: cfg.target,
        connections: cfg.connections,
        connected,
        failures: failures.load(Relaxed),
        connect_rate: connected as f64 / elapsed.as_secs_f64().max(1e-9),
        rss_before_bytes: before,
        rss_after_bytes: after,
        bytes_per_connection: per,
    })
}
