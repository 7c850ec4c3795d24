//! Per-plugin counters (calls, errors, traps, timeouts, time in the guest), shared by every
//! version and instance of one plugin; read by `/metrics` and the API.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How one call into a plugin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The guest said no (a negative return, a thrown error, `errors` in a TS013 result).
    Error,
    /// A trap or a malformed result: the instance is closed.
    Trap,
    /// The fuel or time limit of the call ran out.
    Timeout,
}

#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    errors: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    nanos: AtomicU64,
    reloads: AtomicU64,
    refused_reloads: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub calls: u64,
    pub errors: u64,
    pub traps: u64,
    pub timeouts: u64,
    /// Total time spent in the guest, in nanoseconds.
    pub nanos: u64,
    pub reloads: u64,
    pub refused_reloads: u64,
}

impl PluginStats {
    /// Counts one call (an `Error` outcome with 0 ns counts a refusal found after the call).
    pub fn count(&self, outcome: Outcome, nanos: u64) {
        if nanos > 0 || outcome == Outcome::Ok {
            self.calls.fetch_add(1, Relaxed);
            self.nanos.fetch_add(nanos, Relaxed);
        }
        match outcome {
            Outcome::Ok => {}
            Outcome::Error => _ = self.errors.fetch_add(1, Relaxed),
            Outcome::Trap => _ = self.traps.fetch_add(1, Relaxed),
            Outcome::Timeout => _ = self.timeouts.fetch_add(1, Relaxed),
        }
    }

    pub fn reloaded(&self, accepted: bool) {
        if accepted { &self.reloads } else { &self.refused_reloads }.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            calls: self.calls.load(Relaxed),
            errors: self.errors.load(Relaxed),
            traps: self.traps.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            nanos: self.nanos.load(Relaxed),
            reloads: self.reloads.load(Relaxed),
            refused_reloads: self.refused_reloads.load(Relaxed),
        }
    }
}
