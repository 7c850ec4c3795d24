//! `roost-sim bench`: load and latency scenarios against any MQTT broker.
//!
//! - `conn`: N idle connections at a rate, held for a while; connect rate, failures and,
//!   given the broker's pid, its resident memory per connection.
//! - `fan-in` (P publishers -> 1 wildcard subscriber), `fan-out` (1 -> S on one topic),
//!   `pairs` (P publisher/subscriber pairs on distinct topics).
//! - `line` ([`line`]): `line` codec devices over TCP on `[[codec]]` listeners (e.g. native
//!   vs WebAssembly plugin) -> 1 MQTT subscriber, messages/s delivered.
//!
//! Every payload carries the publisher's index, a sequence number and the send time, so the
//! subscribers measure latency (HDR histogram), loss and duplicates ([`track`]). Publishers
//! share one single-threaded runtime and subscribers another, each on its own OS thread.
//! Every run is bounded by its duration (and optionally a message count) plus a drain period.

pub mod conn;
pub mod flow;
pub mod line;
pub mod track;
pub mod wire;

use std::time::Duration;

use roost_mqtt::codec::{ProtocolVersion, QoS};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    FanIn,
    FanOut,
    Pairs,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::FanIn => "fan-in",
            Shape::FanOut => "fan-out",
            Shape::Pairs => "pairs",
        }
    }
}

/// One message-flow run.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    pub target: String,
    pub shape: Shape,
    pub publishers: u32,
    pub subscribers: u32,
    pub qos: QoS,
    pub version: ProtocolVersion,
    pub payload: usize,
    /// Messages per second per publisher; `None` is as fast as the broker takes them.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Upper bound on messages per publisher.
    pub count: Option<u64>,
    /// QoS 1 messages a publisher keeps in flight.
    pub window: usize,
    /// Longest wait after the publishers stop for the last deliveries.
    pub drain: Duration,
    /// Makes client ids and topics unique to this run.
    pub run_id: String,
    /// Subscribers keep their session (clean start off): on a broker with a store, every
    /// message to them goes through it (persistence cost).
    pub persistent_subscribers: bool,
    /// Where subscribers connect, round robin (empty: `target`). With a cluster: publishers
    /// on one node and subscribers on others measure the cross-node path.
    pub sub_targets: Vec<String>,
    /// Wait between the subscribers' SUBACKs and the first publish, for routes to reach the
    /// publishers' node (a cluster's route table is replicated asynchronously).
    pub settle: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowReport {
    pub scenario: &'static str,
    pub target: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_targets: Vec<String>,
    pub qos: u8,
    pub mqtt_version: u8,
    pub publishers: u32,
    pub subscribers: u32,
    pub payload_bytes: usize,
    /// Offered rate, all publishers together, if limited.
    pub offered_rate: Option<f64>,
    pub duration_s: f64,
    pub sent: u64,
    /// Deliveries the subscribers should have seen (sent x matching subscribers).
    pub expected: u64,
    /// Distinct deliveries seen.
    pub delivered: u64,
    /// Distinct deliveries per second while the publishers ran.
    pub delivered_per_sec: f64,
    pub lost: u64,
    pub duplicates: u64,
    pub errors: u64,
    pub latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub scenario: &'static str,
    pub criteria: &'static str,
    pub steps: Vec<FlowReport>,
    /// The highest offered rate that passed, if any did.
    pub max_zero_loss_rate: Option<f64>,
}

/// Largest p99 a passing step may have.
pub const STEP_MAX_P99_MS: f64 = 50.0;

impl FlowReport {
    /// A step passes with no loss, no duplicates, no errors, p99 within bound, and the offered
    /// rate actually delivered (within 5 %).
    pub fn passes_step(&self) -> bool {
        let offered = self.offered_rate.unwrap_or(0.0) * f64::from(self.expected_per_sent());
        self.lost == 0
            && self.duplicates == 0
            && self.errors == 0
            && self.latency.p99_ms <= STEP_MAX_P99_MS
            && self.delivered_per_sec >= 0.95 * offered
    }

    fn expected_per_sent(&self) -> u32 {
        match self.scenario {
            "fan-out" => self.subscribers,
            _ => 1,
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{}{} qos{} {}->{} {}B{}: sent {}, delivered {} of {} ({:.0}/s), lost {}, duplicates {}, errors {}, \
             latency ms p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            self.scenario,
            if self.sub_targets.is_empty() { String::new() } else { format!(" ->[{}]", self.sub_targets.join(",")) },
            self.qos,
            self.publishers,
            self.subscribers,
            self.payload_bytes,
            self.offered_rate.map(|r| format!(" @{r:.0}/s")).unwrap_or_default(),
            self.sent,
            self.delivered,
            self.expected,
            self.delivered_per_sec,
            self.lost,
            self.duplicates,
            self.errors,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.latency.p999_ms,
            self.latency.max_ms,
        )
    }
}

/// Steps the total offered rate up through `rates` until a step fails (see
/// [`FlowReport::passes_step`]); `rate` in `cfg` is replaced per step.
pub fn run_steps(cfg: &FlowConfig, rates: &[f64], mut on_step: impl FnMut(&FlowReport)) -> anyhow::Result<StepReport> {
    let mut steps = Vec::new();
    let mut max = None;
    for (i, &total) in rates.iter().enumerate() {
        let mut c = cfg.clone();
        c.rate = Some(total / f64::from(cfg.publishers.max(1)));
        c.run_id = format!("{}s{i}", cfg.run_id);
        let r = flow::run(&c)?;
        on_step(&r);
        let pass = r.passes_step();
        steps.push(r);
        if !pass {
            break;
        }
        max = Some(total);
    }
    Ok(StepReport {
        scenario: "step",
        criteria: "no loss, no duplicates, no errors, p99 <= 50 ms, >= 95% of the offered rate delivered",
        steps,
        max_zero_loss_rate: max,
    })
}

/// Parses "10s", "500ms", "2m" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}
