//! Log lines that peers cause — a malformed or refused datagram or packet, a failed
//! handshake, an unknown gateway — rate-limited per reason and source, so that a flood of
//! them cannot fill an edge box's flash (issue 31: three minutes of structured-random
//! datagrams once wrote 700 MB of log).
//!
//! For each (reason, source) the first event is logged; further events within
//! [`INTERVAL`] are counted, and the first event after it is logged with `suppressed = N`,
//! the events not logged since the last line. A source is a peer's /24 (IPv4) or /64 (IPv6):
//! an attacker cycling addresses in one subnet is one source. At most [`MAX_SOURCES`]
//! (reason, source) pairs are tracked; beyond that, sources whose interval has ended are
//! forgotten, and if none has, the new source shares one line per reason with every other
//! untracked one (`source = "others"`). So the log holds at most about
//! `MAX_SOURCES + reasons` lines per interval, whatever the flood.
//!
//! Every event, logged or not, is counted by reason ([`PeerLog::events`]): `/metrics`
//! serves them as `roost_peer_events_total{reason}`.
//!
//! The limiter is process-wide ([`global`]), as the log it protects is: one `tracing`
//! subscriber per process. Call sites use [`peer_log!`](crate::peer_log).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use tracing as __tracing;

/// One line per (reason, source) per this long at most.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// (reason, source) pairs tracked at most.
pub const MAX_SOURCES: usize = 128;

/// Where a peer event came from, as coarse as rate limiting needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 /24.
    V4([u8; 3]),
    /// An IPv6 /64.
    V6([u8; 8]),
    /// No address (the event names a device, not a peer), or every untracked source.
    Others,
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Source::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => {
                let mut net = [0; 8];
                net.copy_from_slice(&v6.octets()[..8]);
                Source::V6(net)
            }
        }
    }
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Source {
        Source::of(ip)
    }
}

impl From<SocketAddr> for Source {
    fn from(addr: SocketAddr) -> Source {
        Source::of(addr.ip())
    }
}

impl From<&SocketAddr> for Source {
    fn from(addr: &SocketAddr) -> Source {
        Source::of(addr.ip())
    }
}

impl From<Option<SocketAddr>> for Source {
    fn from(addr: Option<SocketAddr>) -> Source {
        addr.map_or(Source::Others, Source::from)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Source::V6(n) => {
                let g = |i: usize| u16::from_be_bytes([n[i], n[i + 1]]);
                write!(f, "{:x}:{:x}:{:x}:{:x}::/64", g(0), g(2), g(4), g(6))
            }
            Source::Others => f.write_str("others"),
        }
    }
}

struct Window {
    started: Instant,
    suppressed: u64,
}

#[derive(Default)]
struct Inner {
    windows: HashMap<(&'static str, Source), Window>,
    /// Events by reason, logged or not.
    events: BTreeMap<&'static str, u64>,
    suppressed: u64,
}

/// The rate limiter of peer-caused log lines. See the module docs.
pub struct PeerLog {
    inner: parking_lot::Mutex<Inner>,
    interval: Duration,
    max_sources: usize,
}

impl PeerLog {
    pub fn new(interval: Duration, max_sources: usize) -> PeerLog {
        PeerLog { inner: parking_lot::Mutex::default(), interval, max_sources: max_sources.max(1) }
    }

    /// Counts one event of `reason` from `source` at `now`; `Some(n)` if it is to be logged,
    /// `n` being the events of this reason and source not logged since its last line.
    pub fn admit_at(&self, now: Instant, reason: &'static str, source: Source) -> Option<(Source, u64)> {
        let mut inner = self.inner.lock();
        *inner.events.entry(reason).or_default() += 1;
        let mut key = (reason, source);
        if !inner.windows.contains_key(&key) && inner.windows.len() >= self.max_sources {
            let interval = self.interval;
            inner
                .windows
                .retain(|(_, s), w| *s == Source::Others || now.saturating_duration_since(w.started) < interval);
            if inner.windows.len() >= self.max_sources {
                key = (reason, Source::Others);
            }
        }
        let verdict = match inner.windows.get_mut(&key) {
            Some(w) if now.saturating_duration_since(w.started) < self.interval => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                let n = std::mem::take(&mut w.suppressed);
                w.started = now;
                Some((key.1, n))
            }
            None => {
                inner.windows.insert(key, Window { started: now, suppressed: 0 });
                Some((key.1, 0))
            }
        };
        if verdict.is_none() {
            inner.suppressed += 1;
        }
        verdict
    }

    /// [`PeerLog::admit_at`] now.
    pub fn admit(&self, reason: &'static str, source: impl Into<Source>) -> Option<(Source, u64)> {
        self.admit_at(Instant::now(), reason, source.into())
    }

    /// Every event so far by reason, logged or not.
    pub fn events(&self) -> Vec<(&'static str, u64)> {
        self.inner.lock().events.iter().map(|(r, n)| (*r, *n)).collect()
    }

    /// Lines not written so far (events counted but not logged).
    pub fn suppressed(&self) -> u64 {
        self.inner.lock().suppressed
    }

    /// (reason, source) pairs tracked now.
    pub fn tracked(&self) -> usize {
        self.inner.lock().windows.len()
    }
}

/// The process's limiter: one line per reason and source per [`INTERVAL`].
pub fn global() -> &'static PeerLog {
    static GLOBAL: LazyLock<PeerLog> = LazyLock::new(|| PeerLog::new(INTERVAL, MAX_SOURCES));
    &GLOBAL
}

/// Logs a peer-caused event through the [`global`] limiter:
/// `peer_log!(INFO, "coap.malformed", addr, peer = %addr, "malformed CoAP datagram: {e}")`.
/// The level is a `tracing::Level` constant, the reason a short dotted `&'static str` (also
/// the `reason` label of `roost_peer_events_total`), the source anything that converts to a
/// [`Source`] (a `SocketAddr`, an `IpAddr`, an `Option<SocketAddr>`, or `Source::Others`),
/// then the fields and message as for `tracing::event!`. Lines carry `reason`, `source` and,
/// after a quiet spell, `suppressed`.
#[macro_export]
macro_rules! peer_log {
    ($level:ident, $reason:expr, $source:expr, $($arg:tt)+) => {{
        if let ::std::option::Option::Some((source, suppressed)) = $crate::peerlog::global().admit($reason, $source) {
            if suppressed == 0 {
                $crate::peerlog::__tracing::event!(
                    $crate::peerlog::__tracing::Level::$level, reason = $reason, %source, $($arg)+
                );
            } else {
                $crate::peerlog::__tracing::event!(
                    $crate::peerlog::__tracing::Level::$level, reason = $reason, %source, suppressed, $($arg)+
                );
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Source {
        Source::of(IpAddr::from([a, b, c, d]))
    }

    #[test]
    fn first_line_then_one_per_interval_with_the_count_suppressed() {
        let log = PeerLog::new(Duration::from_secs(10), 16);
        let t0 = Instant::now();
        let src = v4(192, 0, 2, 1);
        assert_eq!(log.admit_at(t0, "x", src), Some((src, 0)));
        for i in 1..=5 {
            assert_eq!(log.admit_at(t0 + Duration::from_secs(i), "x", src), None);
        }
        // Another address of the same /24 is the same source.
        assert_eq!(log.admit_at(t0 + Duration::from_secs(6), "x", v4(192, 0, 2, 200)), None);
        // Another reason is logged on its own.
        assert_eq!(log.admit_at(t0 + Duration::from_secs(6), "y", src), Some((src, 0)));
        assert_eq!(log.admit_at(t0 + Duration::from_secs(10), "x", src), Some((src, 6)));
        assert_eq!(log.admit_at(t0 + Duration::from_secs(11), "x", src), None);
        assert_eq!(log.events(), vec![("x", 9), ("y", 1)]);
        assert_eq!(log.suppressed(), 7);
    }

    #[test]
    fn the_table_is_bounded_and_the_overflow_shares_one_line() {
        let log = PeerLog::new(Duration::from_secs(10), 4);
        let t0 = Instant::now();
        for c in 0..4 {
            assert!(log.admit_at(t0, "x", v4(10, 0, c, 1)).is_some());
        }
        // Table full, every window open: the rest share the "others" line of the reason.
        assert_eq!(log.admit_at(t0, "x", v4(10, 0, 9, 1)), Some((Source::Others, 0)));
        assert_eq!(log.admit_at(t0, "x", v4(10, 0, 10, 1)), None);
        assert_eq!(log.tracked(), 5);
        // Once the windows have ended, new sources get lines of their own again.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(log.admit_at(later, "x", v4(10, 0, 11, 1)), Some((v4(10, 0, 11, 1), 0)));
        assert_eq!(log.admit_at(later, "x", v4(10, 0, 12, 1)), Some((v4(10, 0, 12, 1), 0)));
        assert!(log.tracked() <= 5, "{}", log.tracked());
        assert_eq!(log.events(), vec![("x", 8)]);
    }

    #[test]
    fn sources_are_subnets() {
        assert_eq!(v4(127, 1, 2, 3).to_string(), "127.1.2.0/24");
        let a: SocketAddr = "[2001:db8:1:2:3::1]:5683".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:ffff::9]:1".parse().unwrap();
        assert_eq!(Source::from(a), Source::from(b));
        assert_eq!(Source::from(a).to_string(), "2001:db8:1:2::/64");
        let mapped: SocketAddr = "[::ffff:192.0.2.9]:1".parse().unwrap();
        assert_eq!(Source::from(mapped), v4(192, 0, 2, 0));
        assert_eq!(Source::from(None), Source::Others);
    }

    #[test]
    fn the_macro_counts_and_logs() {
        let before = global().events().into_iter().find(|(r, _)| *r == "test.macro").map_or(0, |(_, n)| n);
        let peer: SocketAddr = "192.0.2.50:1".parse().unwrap();
        for _ in 0..3 {
            crate::peer_log!(INFO, "test.macro", peer, %peer, "a test line");
        }
        crate::peer_log!(WARN, "test.macro", Source::Others, "no address");
        let after = global().events().into_iter().find(|(r, _)| *r == "test.macro").map_or(0, |(_, n)| n);
        assert_eq!(after - before, 4);
    }
}
