//! `roost-sim mqtt-sn --mqtt ADDR [--roost-pid PID]`: what the MQTT side of the gateway got
//! from the simulated MQTT-SN fleet (`roost_mqttsn::sim`). A subscriber on `{prefix}/#`
//! counts distinct payloads and the delay from each device's send time (in its payload) to
//! arrival; with a PID, the gateway's resident memory before and after the fleet connected.
//! This is the run of the "MQTT-SN: 20,000 devices" section of docs/benchmarks.md.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use anyhow::Context as _;
use bytes::Bytes;
use parking_lot::Mutex;
use roost_mqtt::codec::{Packet, QoS};
use roost_mqttsn::sim::{sent_micros, unix_micros};

use crate::client::{Client, ConnectOptions};

/// What the subscriber has seen so far.
#[derive(Debug, Default)]
pub struct Collected {
    /// Distinct payloads received (a duplicate delivery is not counted twice).
    pub distinct: AtomicU64,
    /// Device send -> arrival here, in microseconds, one per delivery.
    pub latencies_us: Mutex<Vec<u64>>,
}

impl Collected {
    /// The `q` quantile (0..=1) of the latencies, if any arrived.
    pub fn latency_quantile(&self, q: f64) -> Option<u64> {
        let mut lat = self.latencies_us.lock().clone();
        lat.sort_unstable();
        let last = lat.len().checked_sub(1)?;
        lat.get((last as f64 * q.clamp(0.0, 1.0)) as usize).copied()
    }
}

/// Connects a subscriber to `mqtt` on `{prefix}/#` (QoS 0) and counts what arrives in a
/// task, until the connection ends.
pub async fn collect(mqtt: &str, prefix: &str) -> anyhow::Result<Arc<Collected>> {
    let opts = ConnectOptions { keep_alive: 0, ..ConnectOptions::default() };
    let mut client = Client::connect(mqtt, &format!("{prefix}-collector"), &opts).await?;
    client.subscribe(&format!("{prefix}/#"), QoS::AtMostOnce).await.context("subscribing the collector")?;
    let (mut reader, _writer) = client.split();
    let collected = Arc::new(Collected::default());
    let out = collected.clone();
    tokio::spawn(async move {
        // The writer half stays alive with the reader: dropping it would close the socket.
        let _writer = _writer;
        let mut seen: HashSet<Bytes> = HashSet::new();
        loop {
            match reader.next().await {
                Ok(Some(Packet::Publish(p))) => {
                    if let Some(sent) = sent_micros(&p.payload) {
                        out.latencies_us.lock().push(unix_micros().saturating_sub(sent));
                    }
                    if seen.insert(p.payload) {
                        out.distinct.fetch_add(1, Relaxed);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    eprintln!("collector: {e}");
                    break;
                }
            }
        }
    });
    Ok(collected)
}

/// A process's resident memory (Linux `/proc/PID/status` VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_rss() {
        let c = Collected::default();
        assert_eq!(c.latency_quantile(0.5), None);
        c.latencies_us.lock().extend([30, 10, 20]);
        assert_eq!(c.latency_quantile(0.5), Some(20));
        assert_eq!(c.latency_quantile(1.0), Some(30));
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
