//! A store in process memory: survives a broker being dropped and rebuilt on it (tests,
//! embedding), not a process restart.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{BoxFuture, Change, Model, Snapshot, Store, StoreError};

#[derive(Debug, Default)]
pub struct MemoryStore {
    model: Mutex<Model>,
    tickets: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn record(&self, change: Change) -> u64 {
        self.model.lock().apply(change);
        self.tickets.fetch_add(1, Ordering::Relaxed) + 1
    }
    fn last_ticket(&self) -> u64 {
        self.tickets.load(Ordering::Relaxed)
    }
    fn durable(&self, _ticket: u64) -> BoxFuture<Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(self.model.lock().snapshot())
    }
    fn load_blobs(&self, space: &str) -> Result<Vec<(String, bytes::Bytes)>, StoreError> {
        Ok(self.model.lock().blobs(space))
    }
}
