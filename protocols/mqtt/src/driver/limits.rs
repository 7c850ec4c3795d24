//! Driver layer, flood control (`[mqtt]` limits): a listener's connection count and accept
//! rate, and a connection's bytes and messages budgets with the pauses they impose. Every
//! refusal and pause is counted in [`roost_core::metrics::Limited`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use roost_core::metrics::{Limited, Metrics};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Link;
use crate::settings::ListenerLimits;
use crate::transport::Bucket;

/// One listener's share of flood control.
pub(super) struct ListenerState {
    pub(super) open: AtomicUsize,
    pub(super) rate: Option<Mutex<Bucket>>,
    /// `Context::permits`, to give back the permits its connections hold.
    permits: Arc<Semaphore>,
}

impl ListenerState {
    /// A listener's count and accept-rate budget under `limits`; `permits` is `Context::permits`.
    pub(super) fn new(limits: &ListenerLimits, permits: Arc<Semaphore>) -> ListenerState {
        ListenerState {
            open: 0.into(),
            rate: (limits.max_conn_rate > 0)
                .then(|| Mutex::new(Bucket::new(u64::from(limits.max_conn_rate), Instant::now()))),
            permits,
        }
    }
}

/// A connection's place: one of the listener's open connections and one permit under
/// `limits.max_connections`, both given back when the connection ends. One pointer in the
/// task where an `OwnedSemaphorePermit` and a guard took three.
pub(super) struct Slot(Arc<ListenerState>);

impl Slot {
    /// Takes over `permit` (forgotten here, given back by `drop`).
    pub(super) fn new(state: Arc<ListenerState>, permit: OwnedSemaphorePermit) -> Slot {
        permit.forget();
        Slot(state)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.permits.add_permits(1);
    }
}

/// A connection's rate budgets (`[mqtt]` bytes and messages rates), and the pauses they
/// impose. Boxed and only there when a rate is configured, so an idle connection without
/// rates carries 8 bytes for all of it.
pub(super) struct Rates {
    bytes: Option<Bucket>,
    messages: Option<Bucket>,
    disconnect: bool,
    /// Over the bytes rate: no reading until then.
    pub(super) read_paused: Option<Instant>,
    /// Over the messages rate: the packets already read wait in the buffer until then (and
    /// nothing more is read).
    pub(super) decode_paused: Option<Instant>,
}

impl Rates {
    /// The budgets of a new connection under `limits`.
    pub(super) fn for_limits(limits: &ListenerLimits) -> Option<Box<Rates>> {
        let now = Instant::now();
        (limits.bytes_rate.is_some() || limits.messages_rate.is_some()).then(|| {
            Box::new(Rates {
                bytes: limits.bytes_rate.map(|r| Bucket::new(r, now)),
                messages: limits.messages_rate.map(|r| Bucket::new(u64::from(r), now)),
                disconnect: limits.disconnect_over_rate,
                read_paused: None,
                decode_paused: None,
            })
        })
    }

    /// Spends `n` bytes; if the budget is spent, reading pauses until it refills (counted).
    pub(super) fn spend_bytes(&mut self, n: usize, metrics: &Metrics) {
        let Some(b) = self.bytes.as_mut() else { return };
        b.spend(n as u64, Instant::now());
        self.read_paused = b.ready_at();
        if self.read_paused.is_some() {
            metrics.limited(Limited::BytesRate);
        }
    }

    /// Spends one PUBLISH; if the budget is spent, decoding pauses until it refills (counted).
    pub(super) fn spend_message(&mut self, metrics: &Metrics) {
        let Some(m) = self.messages.as_mut() else { return };
        m.spend(1, Instant::now());
        self.decode_paused = m.ready_at();
        if self.decode_paused.is_some() {
            metrics.limited(Limited::MessageRate);
        }
    }

    /// Pauses that have ended by `now` are over.
    pub(super) fn resume(&mut self, now: Instant) {
        self.read_paused = self.read_paused.filter(|p| now < *p);
        self.decode_paused = self.decode_paused.filter(|p| now < *p);
    }
}

impl Link {
    /// Over the messages rate: buffered packets wait.
    pub(super) fn decode_paused(&self) -> bool {
        self.rates.as_ref().is_some_and(|r| r.decode_paused.is_some())
    }

    /// Over either rate.
    pub(super) fn paused(&self) -> bool {
        self.rates.as_ref().is_some_and(|r| r.read_paused.is_some() || r.decode_paused.is_some())
    }

    /// Paused, and the listener closes connections over their rate rather than waiting.
    pub(super) fn over_rate_closes(&self) -> bool {
        self.rates.as_ref().is_some_and(|r| r.disconnect) && self.paused()
    }
}
