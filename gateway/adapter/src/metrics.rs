//! Metric families an adapter declares: name, help, label names, kind, and a function that
//! reads the current values from the adapter's own atomics. Nothing is copied or kept twice:
//! `/metrics`, `$SYS` and the API call [`Family::samples`] when they report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (exposed with the `_total` suffix).
    Counter,
    /// Goes up and down (devices now, peers now).
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One value of a family: label values in the order of [`Family::labels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub labels: Vec<&'static str>,
    pub value: u64,
}

type Reader = Arc<dyn Fn() -> Vec<Sample> + Send + Sync>;

/// A declared metric family. Names are without the `roost_` prefix and unique across the
/// gateway (the registry refuses a second family of the same name).
#[derive(Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Label names; empty for a single unlabelled value.
    pub labels: Vec<&'static str>,
    read: Reader,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Family {
    /// A family read by `read`, which returns one [`Sample`] per label-value combination.
    pub fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: Vec<&'static str>,
        read: impl Fn() -> Vec<Sample> + Send + Sync + 'static,
    ) -> Family {
        Family { name, help, kind, labels, read: Arc::new(read) }
    }

    /// One unlabelled counter.
    pub fn counter(name: &'static str, help: &'static str, read: impl Fn() -> u64 + Send + Sync + 'static) -> Family {
        Family::new(name, help, Kind::Counter, Vec::new(), move || vec![Sample { labels: Vec::new(), value: read() }])
    }

    /// One unlabelled gauge.
    pub fn gauge(name: &'static str, help: &'static str, read: impl Fn() -> u64 + Send + Sync + 'static) -> Family {
        Family::new(name, help, Kind::Gauge, Vec::new(), move || vec![Sample { labels: Vec::new(), value: read() }])
    }

    /// Counters with one label, e.g. `coap_events{event="malformed"}`: `read` returns
    /// (label value, value) pairs.
    pub fn counters(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        read: impl Fn() -> Vec<(&'static str, u64)> + Send + Sync + 'static,
    ) -> Family {
        Family::new(name, help, Kind::Counter, vec![label], move || {
            read().into_iter().map(|(l, value)| Sample { labels: vec![l], value }).collect()
        })
    }

    /// The current values.
    pub fn samples(&self) -> Vec<Sample> {
        (self.read)()
    }
}

/// Reads an atomic counter (the adapters' counters are all `AtomicU64`).
pub fn load(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}
