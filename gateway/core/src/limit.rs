//! Flood control shared by the adapters: a token bucket (`max_conn_rate`, bytes and
//! message rates, UDP per-peer and new-peer rates) and a bounded per-peer table of them.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A token bucket: `rate` per second, holding at most one second's worth.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: u64, now: Instant) -> Bucket {
        let rate = rate as f64;
        Bucket { rate, tokens: rate, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        self.last = now;
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Spends `n` (the balance may go negative: what was read is read).
    pub fn spend(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.tokens -= n as f64;
    }

    /// True if the bucket would be full at `now` (nothing spent lately).
    pub fn is_idle(&self, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * self.rate >= self.rate
    }

    /// When the balance is positive again; `None` if it is now.
    pub fn ready_at(&self) -> Option<Instant> {
        (self.tokens < 0.0).then(|| self.last + Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

/// One bucket per peer, for UDP adapters: at most `max` peers are tracked; past that, the
/// idle ones (full buckets) are forgotten first, and if none is idle the new peer is
/// judged against a shared overflow bucket.
pub struct PeerBuckets<K> {
    rate: u64,
    max: usize,
    map: HashMap<K, Bucket>,
    overflow: Bucket,
}

impl<K: Hash + Eq + Clone> PeerBuckets<K> {
    pub fn new(rate: u64, max: usize, now: Instant) -> Self {
        PeerBuckets { rate, max: max.max(1), map: HashMap::new(), overflow: Bucket::new(rate, now) }
    }

    /// Takes one token from `peer`'s bucket; false if it is over its rate.
    pub fn try_take(&mut self, peer: &K, now: Instant) -> bool {
        if let Some(b) = self.map.get_mut(peer) {
            return b.try_take(now);
        }
        if self.map.len() >= self.max {
            self.map.retain(|_, b| !b.is_idle(now));
        }
        if self.map.len() >= self.max {
            return self.overflow.try_take(now);
        }
        let mut b = Bucket::new(self.rate, now);
        let ok = b.try_take(now);
        self.map.insert(peer.clone(), b);
        ok
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, t0);
        for _ in 0..10 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(100)));
        let mut bytes = Bucket::new(1000, t0);
        bytes.spend(1500, t0);
        let at = bytes.ready_at().unwrap();
        assert!(at >= t0 + Duration::from_millis(499) && at <= t0 + Duration::from_millis(501));
    }

    #[test]
    fn peers_are_limited_one_by_one_and_the_table_is_bounded() {
        let t0 = Instant::now();
        let mut p = PeerBuckets::new(2, 2, t0);
        assert!(p.try_take(&1, t0) && p.try_take(&1, t0));
        assert!(!p.try_take(&1, t0));
        assert!(p.try_take(&2, t0));
        // Table full, nobody idle: the third peer shares the overflow bucket.
        assert!(p.try_take(&3, t0) && p.try_take(&4, t0));
        assert!(!p.try_take(&5, t0));
        assert_eq!(p.len(), 2);
        // A second later everyone is idle and makes room.
        assert!(p.try_take(&5, t0 + Duration::from_secs(2)));
    }
}
