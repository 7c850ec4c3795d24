//! Failed logins per source address. After `free` failures within the window, every
//! further connect from that address waits before it is answered, twice as long each
//! time up to [`MAX_DELAY`]: a password guesser gets a handful of tries per minute instead
//! of thousands, while a device with a typo recovers once the window passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The longest a connect is held back.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// Failures are forgotten this long after the last one.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The first delay once past the free failures.
const BASE_DELAY: Duration = Duration::from_millis(250);
/// Addresses tracked at most (a flood from many addresses cannot grow the map unbounded).
const MAX_TRACKED: usize = 10_000;

pub struct FailureTracker {
    free: u32,
    map: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureTracker {
    /// `free`: failures from one address before connects from it are slowed (0: never).
    pub fn new(free: u32) -> Self {
        FailureTracker { free, map: Mutex::new(HashMap::new()) }
    }

    /// How long a connect from `ip` should wait before it is authenticated.
    pub fn delay(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.free == 0 {
            return Duration::ZERO;
        }
        let map = self.map.lock();
        match map.get(&ip) {
            Some((n, last)) if *n >= self.free && now.duration_since(*last) < WINDOW => {
                let over = (*n - self.free).min(16);
                BASE_DELAY.saturating_mul(1u32 << over).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        if self.free == 0 {
            return;
        }
        let mut map = self.map.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, (_, last)| now.duration_since(*last) < WINDOW);
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        let e = map.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= WINDOW {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
    }

    pub fn succeeded(&self, ip: IpAddr) {
        if self.free != 0 {
            self.map.lock().remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slows_after_free_failures_and_forgets() {
        let t = FailureTracker::new(3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.delay(ip, now), Duration::ZERO);
            t.failed(ip, now);
        }
        assert_eq!(t.delay(ip, now), BASE_DELAY);
        t.failed(ip, now);
        assert_eq!(t.delay(ip, now), BASE_DELAY * 2);
        for _ in 0..20 {
            t.failed(ip, now);
        }
        assert_eq!(t.delay(ip, now), MAX_DELAY);
        assert_eq!(t.delay([10, 0, 0, 2].into(), now), Duration::ZERO);
        assert_eq!(t.delay(ip, now + WINDOW), Duration::ZERO);
        t.succeeded(ip);
        assert_eq!(t.delay(ip, now), Duration::ZERO);
    }
}
