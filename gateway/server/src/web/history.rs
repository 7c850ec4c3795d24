//! The dashboard's chart history: one sample of the broker's counters every
//! [`INTERVAL`], kept for the last hour in a ring of [`CAPACITY`] samples, so watching the
//! charts never grows the gateway's memory. Rates (messages per second) are computed when a
//! sample is taken, from the difference to the previous one.
//!
//! The sampler task holds only a weak reference: it ends at the next tick after the HTTP
//! router (and with it the history) is dropped, so it needs no shutdown wiring of its own.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use roost_core::Broker;
use serde_json::{Value, json};

/// Time between two samples.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// One hour of samples.
pub const CAPACITY: usize = 720;

/// One point of the charts.
#[derive(Debug, Clone)]
struct Sample {
    /// Unix time, seconds.
    time: u64,
    /// (protocol, connections, messages in per second, messages out per second).
    protocols: Vec<(&'static str, u64, f64, f64)>,
    /// Messages dropped per second, all reasons.
    dropped: f64,
    rss: u64,
    /// CPU use of the process since the previous sample, percent of one core.
    cpu: f64,
}

/// The counters a rate is computed from.
struct Previous {
    at: Instant,
    by_protocol: Vec<(&'static str, u64, u64, u64)>,
    dropped: u64,
    cpu_seconds: f64,
}

/// The bounded history, shared by the sampler and the API handler.
pub struct History {
    broker: Broker,
    samples: Mutex<VecDeque<Sample>>,
    previous: Mutex<Option<Previous>>,
}

impl History {
    /// A history of `broker`, with its sampler task started (the first sample now).
    pub fn start(broker: Broker) -> Arc<History> {
        let h = Arc::new(History {
            broker,
            samples: Mutex::new(VecDeque::with_capacity(CAPACITY)),
            previous: Mutex::new(None),
        });
        let weak: Weak<History> = Arc::downgrade(&h);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(h) => h.sample(Instant::now()),
                    None => break,
                }
            }
        });
        h
    }

    /// Takes one sample; the oldest is dropped when the ring is full.
    pub fn sample(&self, now: Instant) {
        let m = self.broker.metrics().snapshot();
        let (rss, cpu_seconds) = crate::web::process_stats().unwrap_or((0, 0.0));
        let dropped_total = m.messages_dropped;
        let mut prev = self.previous.lock();
        let elapsed = prev.as_ref().map_or(0.0, |p| now.duration_since(p.at).as_secs_f64());
        let rate = |new: u64, old: u64| if elapsed > 0.0 { new.saturating_sub(old) as f64 / elapsed } else { 0.0 };
        let protocols = m
            .by_protocol
            .iter()
            .map(|&(name, conns, rin, rout)| {
                let old = prev.as_ref().and_then(|p| p.by_protocol.iter().find(|o| o.0 == name));
                let (oin, oout) = old.map_or((rin, rout), |o| (o.2, o.3));
                (name, conns, rate(rin, oin), rate(rout, oout))
            })
            .collect();
        let dropped = rate(dropped_total, prev.as_ref().map_or(dropped_total, |p| p.dropped));
        let cpu = match prev.as_ref() {
            Some(p) if elapsed > 0.0 => ((cpu_seconds - p.cpu_seconds).max(0.0) / elapsed) * 100.0,
            _ => 0.0,
        };
        *prev = Some(Previous { at: now, by_protocol: m.by_protocol, dropped: dropped_total, cpu_seconds });
        drop(prev);
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut samples = self.samples.lock();
        if samples.len() >= CAPACITY {
            samples.pop_front();
        }
        samples.push_back(Sample { time, protocols, dropped, rss, cpu });
    }

    /// How many samples are held (at most [`CAPACITY`]).
    pub fn len(&self) -> usize {
        self.samples.lock().len()
    }

    /// Whether no sample was taken yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The history as columns (one array per series), the shape a chart draws from.
    pub fn to_json(&self) -> Value {
        let samples = self.samples.lock();
        let names: Vec<&'static str> =
            samples.back().map(|s| s.protocols.iter().map(|p| p.0).collect()).unwrap_or_default();
        let column = |f: &dyn Fn(&Sample) -> Value| -> Vec<Value> { samples.iter().map(f).collect() };
        let mut protocols = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            let pick = |s: &Sample, k: usize| {
                s.protocols.get(i).map_or(Value::Null, |p| [json!(p.1), json!(p.2), json!(p.3)][k].clone())
            };
            protocols.insert(
                name.to_string(),
                json!({
                    "connections": column(&|s| pick(s, 0)),
                    "messages_in_per_second": column(&|s| pick(s, 1)),
                    "messages_out_per_second": column(&|s| pick(s, 2)),
                }),
            );
        }
        json!({
            "interval": INTERVAL.as_secs(),
            "capacity": CAPACITY,
            "time": column(&|s| json!(s.time)),
            "protocols": protocols,
            "dropped_per_second": column(&|s| json!(s.dropped)),
            "resident_memory_bytes": column(&|s| json!(s.rss)),
            "cpu_percent": column(&|s| json!(s.cpu)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_ring_never_holds_more_than_an_hour() {
        let broker = Broker::new(roost_core::settings::BrokerSettings::default());
        let h = History::start(broker);
        let t0 = Instant::now();
        for i in 0..(CAPACITY as u64 + 50) {
            h.sample(t0 + Duration::from_secs(5 * (i + 1)));
        }
        assert_eq!(h.len(), CAPACITY);
        let v = h.to_json();
        assert_eq!(v["time"].as_array().map(Vec::len), Some(CAPACITY));
        assert_eq!(v["protocols"]["mqtt"]["connections"].as_array().map(Vec::len), Some(CAPACITY));
    }
}
