//! Storage seam: what must survive a restart goes through [`Store`]. The broker's live
//! state is in memory; it writes session records (subscriptions, expiry, queued and in-flight
//! messages) when they change shape (subscribe, unsubscribe, detach, shutdown) and retained
//! messages as they change, and reads everything back when a broker starts on the store.
//!
//! [`MemoryStore`] keeps records in process memory: it survives a broker being dropped and
//! rebuilt (tests, embedding), not a process restart. The embedded on-disk store (redb, with
//! group commit and per-message durability for QoS 1/2 acknowledgements) implements the
//! same trait.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::router::SubOptions;
use crate::session::Pending;
use crate::types::{ClientId, Message, Protocol};

/// Everything needed to rebuild one persistent session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub client_id: ClientId,
    pub protocol: Protocol,
    /// `None`: never expires.
    pub expiry: Option<Duration>,
    pub subscriptions: Vec<(String, SubOptions)>,
    /// Outgoing QoS 1/2 not yet acknowledged: (packet id, message, PUBREL already sent).
    pub inflight: Vec<(u16, Pending, bool)>,
    pub queue: Vec<Pending>,
    /// Incoming QoS 2 packet ids received but not released.
    pub awaiting_rel: Vec<u16>,
}

pub trait Store: Send + Sync {
    fn save_session(&self, record: SessionRecord);
    fn delete_session(&self, client_id: &ClientId);
    /// `None` clears the retained message of `topic`.
    fn save_retained(&self, topic: &str, message: Option<Arc<Message>>);
    fn load_sessions(&self) -> Vec<SessionRecord>;
    fn load_retained(&self) -> Vec<Arc<Message>>;
}

/// A store in process memory.
#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<ClientId, SessionRecord>>,
    retained: Mutex<HashMap<String, Arc<Message>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn save_session(&self, record: SessionRecord) {
        self.sessions.lock().insert(record.client_id.clone(), record);
    }
    fn delete_session(&self, client_id: &ClientId) {
        self.sessions.lock().remove(client_id);
    }
    fn save_retained(&self, topic: &str, message: Option<Arc<Message>>) {
        let mut r = self.retained.lock();
        match message {
            Some(m) => r.insert(topic.to_string(), m),
            None => r.remove(topic),
        };
    }
    fn load_sessions(&self) -> Vec<SessionRecord> {
        self.sessions.lock().values().cloned().collect()
    }
    fn load_retained(&self) -> Vec<Arc<Message>> {
        self.retained.lock().values().cloned().collect()
    }
}
