//! `roost_auth_backend_total{source,result}`: every answer (or failure) of a database or
//! directory source, read at each scrape. `source` is the backend (`postgresql`, `mysql`,
//! `redis`, `ldap`; `postgresql_acl`... for ACL lookups); `result` is what came of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What came of one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Result {
    /// Admitted.
    Allow,
    /// Refused: a wrong password.
    Deny,
    /// Not this source's client (passed on).
    Ignore,
    /// Answered from the cache.
    Cached,
    /// ACL rows loaded.
    Loaded,
    /// The backend failed (connection refused, query error).
    Error,
    /// No answer within `timeout`.
    Timeout,
}

impl Result {
    pub fn as_str(self) -> &'static str {
        match self {
            Result::Allow => "allow",
            Result::Deny => "deny",
            Result::Ignore => "ignore",
            Result::Cached => "cached",
            Result::Loaded => "loaded",
            Result::Error => "error",
            Result::Timeout => "timeout",
        }
    }
}

/// The counters of every source; shared by the sources and the `/metrics` reader.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<BTreeMap<(&'static str, Result), u64>>,
}

impl Metrics {
    pub fn count(&self, source: &'static str, result: Result) {
        *self.counts.lock().entry((source, result)).or_default() += 1;
    }

    /// (source, result, count) for every pair seen so far.
    pub fn samples(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.counts.lock().iter().map(|((s, r), n)| (*s, r.as_str(), *n)).collect()
    }
}

/// How often a failing backend's error is logged: once per interval, with the number of
/// failures since, so a dead database does not flood the log at every connect attempt.
pub const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rate-limits one source's error log.
#[derive(Debug, Default)]
pub struct ErrorLog {
    state: Mutex<(Option<Instant>, u64)>,
}

impl ErrorLog {
    /// Logs `error` unless the last log was within [`ERROR_LOG_INTERVAL`].
    pub fn error(&self, source: &str, error: &dyn std::fmt::Display) {
        let mut st = self.state.lock();
        let now = Instant::now();
        if st.0.is_some_and(|last| now.duration_since(last) < ERROR_LOG_INTERVAL) {
            st.1 += 1;
            return;
        }
        let suppressed = std::mem::take(&mut st.1);
        st.0 = Some(now);
        drop(st);
        tracing::warn!(source, %error, suppressed, "auth backend failed (logged once per {ERROR_LOG_INTERVAL:?}; `suppressed`: failures since the last log)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_source_and_result_and_logs_once_per_interval() {
        let m = Metrics::default();
        m.count("redis", Result::Timeout);
        m.count("redis", Result::Timeout);
        m.count("ldap", Result::Allow);
        assert_eq!(m.samples(), vec![("ldap", "allow", 1), ("redis", "timeout", 2)]);
        let log = ErrorLog::default();
        log.error("redis", &"refused");
        log.error("redis", &"refused");
        log.error("redis", &"refused");
        // The first was logged; the two after it within the interval were only counted.
        assert_eq!(log.state.lock().1, 2);
    }
}
