//! Storage seam: what must survive a restart or a crash goes through [`Store`].
//!
//! The broker's live state is in memory; every change to the durable part of it is
//! *recorded* as a [`Change`] (a persistent session's metadata and subscriptions, each
//! message queued for or in flight to it, incoming QoS 2 ids awaiting PUBREL, retained
//! messages). A store applies changes in the order they were recorded. Before an adapter
//! acknowledges a QoS 1/2 publish it waits for [`Store::durable`], so what was acknowledged
//! is on disk. On start the broker rebuilds itself from [`Store::load`].
//!
//! Sessions that end with their connection (clean session, expiry 0) record nothing, so
//! they cost the store nothing.
//!
//! Implementations: [`NullStore`] (keeps nothing: `storage.backend = "memory"`),
//! [`MemoryStore`] (keeps records in process memory; survives a broker being rebuilt, for
//! tests and embedding), [`DiskStore`] (redb file with group commit).

mod disk;
mod memory;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use disk::{DiskStore, StoreCheck, SyncMode};
pub use memory::MemoryStore;

use crate::types::Pending;
use crate::types::SubOptions;
use crate::types::{ClientId, Message, Protocol};

/// A persistent session's shape (everything but its messages).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionMeta {
    pub client_id: ClientId,
    pub protocol: Protocol,
    /// `None`: never expires.
    pub expiry: Option<Duration>,
    /// Set while no connection is attached: when the session ends (wall clock).
    pub expires_at: Option<SystemTime>,
    /// Raw filters as the client wrote them.
    pub subscriptions: Vec<(String, SubOptions)>,
}

/// A message queued for, or in flight to, a persistent session.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub pending: Pending,
    /// Packet id once sent (in flight); `None` while queued.
    pub packet_id: Option<u16>,
    /// PUBREC received: PUBREL is what is resent.
    pub released: bool,
}

/// One change to durable state, in the order the broker made it.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace a session's metadata.
    Session(SessionMeta),
    /// The session ended: forget it and all its messages and ids.
    SessionGone(ClientId),
    /// A message entered a session's queue as number `seq`.
    Enqueue { client: ClientId, seq: u64, pending: Pending },
    /// Message `seq` was sent with `packet_id`.
    Sent { client: ClientId, seq: u64, packet_id: u16 },
    /// Message `seq` was acknowledged with PUBREC.
    Released { client: ClientId, seq: u64 },
    /// Message `seq` is done (delivered at QoS 0, acknowledged, expired or dropped).
    Remove { client: ClientId, seq: u64 },
    /// An incoming QoS 2 packet id now awaits PUBREL (`true`) or was released (`false`).
    AwaitRel { client: ClientId, packet_id: u16, awaiting: bool },
    /// The retained message of `topic` (`None` clears it).
    Retain { topic: Arc<str>, message: Option<Arc<Message>> },
    /// An adapter's own record, opaque to the core: `key` in the adapter's `space` (e.g.
    /// LoRaWAN device sessions and frame counters). `None` deletes it.
    Blob { space: Arc<str>, key: String, value: Option<bytes::Bytes> },
}

/// Everything a store holds, as read at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sessions: Vec<StoredSession>,
    pub retained: Vec<Arc<Message>>,
}

#[derive(Debug)]
pub struct StoredSession {
    pub meta: SessionMeta,
    /// In `seq` order.
    pub messages: Vec<(u64, StoredMessage)>,
    pub awaiting_rel: Vec<u16>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store file {path}: {what}")]
    Open { path: String, what: String },
    #[error("store is corrupt: {0} (run `roost store check`, or `roost store repair` to drop bad records)")]
    Corrupt(String),
    #[error("store write failed: {0}")]
    Write(String),
    #[error("store schema version {found} is newer than this roost understands ({supported})")]
    Version { found: u64, supported: u64 },
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub trait Store: Send + Sync {
    /// Whether changes are worth recording at all (false for [`NullStore`]).
    fn keeps(&self) -> bool {
        true
    }
    /// Records a change; returns its ticket (increasing in record order).
    fn record(&self, change: Change) -> u64;
    /// The ticket of the last change recorded.
    fn last_ticket(&self) -> u64;
    /// Resolves when every change up to `ticket` is durable.
    fn durable(&self, ticket: u64) -> BoxFuture<Result<(), StoreError>>;
    /// Reads everything back (at start-up).
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Reads back every [`Change::Blob`] record of `space` (an adapter, at its start-up).
    fn load_blobs(&self, _space: &str) -> Result<Vec<(String, bytes::Bytes)>, StoreError> {
        Ok(Vec::new())
    }
    /// Makes everything recorded durable and stops writing (at shutdown).
    fn close(&self) {}
    /// Past its size limit: new messages for persistent sessions are then kept in memory
    /// only (and counted), while sessions, acknowledgements and retained changes still go
    /// to the store.
    fn is_full(&self) -> bool {
        false
    }
}

/// Keeps nothing: state lives and dies with the process.
#[derive(Debug, Default)]
pub struct NullStore;

impl Store for NullStore {
    fn keeps(&self) -> bool {
        false
    }
    fn record(&self, _change: Change) -> u64 {
        0
    }
    fn last_ticket(&self) -> u64 {
        0
    }
    fn durable(&self, _ticket: u64) -> BoxFuture<Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot::default())
    }
}

/// Applies changes to an in-memory model of the durable state. [`MemoryStore`] is this
/// model; [`DiskStore::check`] uses it to validate a file.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub sessions: std::collections::HashMap<ClientId, StoredSessionModel>,
    pub retained: std::collections::HashMap<Arc<str>, Arc<Message>>,
    pub blobs: std::collections::BTreeMap<(Arc<str>, String), bytes::Bytes>,
}

#[derive(Debug)]
pub(crate) struct StoredSessionModel {
    pub meta: SessionMeta,
    pub messages: std::collections::BTreeMap<u64, StoredMessage>,
    pub awaiting_rel: std::collections::BTreeSet<u16>,
}

impl Model {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Session(meta) => match self.sessions.get_mut(&meta.client_id) {
                Some(s) => s.meta = meta,
                None => {
                    self.sessions.insert(
                        meta.client_id.clone(),
                        StoredSessionModel { meta, messages: Default::default(), awaiting_rel: Default::default() },
                    );
                }
            },
            Change::SessionGone(c) => {
                self.sessions.remove(&c);
            }
            Change::Enqueue { client, seq, pending } => {
                if let Some(s) = self.sessions.get_mut(&client) {
                    s.messages.insert(seq, StoredMessage { pending, packet_id: None, released: false });
                }
            }
            Change::Sent { client, seq, packet_id } => {
                if let Some(m) = self.sessions.get_mut(&client).and_then(|s| s.messages.get_mut(&seq)) {
                    m.packet_id = Some(packet_id);
                }
            }
            Change::Released { client, seq } => {
                if let Some(m) = self.sessions.get_mut(&client).and_then(|s| s.messages.get_mut(&seq)) {
                    m.released = true;
                }
            }
            Change::Remove { client, seq } => {
                if let Some(s) = self.sessions.get_mut(&client) {
                    s.messages.remove(&seq);
                }
            }
            Change::AwaitRel { client, packet_id, awaiting } => {
                if let Some(s) = self.sessions.get_mut(&client) {
                    if awaiting {
                        s.awaiting_rel.insert(packet_id);
                    } else {
                        s.awaiting_rel.remove(&packet_id);
                    }
                }
            }
            Change::Retain { topic, message } => match message {
                Some(m) => {
                    self.retained.insert(topic, m);
                }
                None => {
                    self.retained.remove(&topic);
                }
            },
            Change::Blob { space, key, value } => match value {
                Some(v) => {
                    self.blobs.insert((space, key), v);
                }
                None => {
                    self.blobs.remove(&(space, key));
                }
            },
        }
    }

    pub fn blobs(&self, space: &str) -> Vec<(String, bytes::Bytes)> {
        self.blobs.iter().filter(|((s, _), _)| &**s == space).map(|((_, k), v)| (k.clone(), v.clone())).collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sessions: self
                .sessions
                .values()
                .map(|s| StoredSession {
                    meta: s.meta.clone(),
                    messages: s.messages.iter().map(|(k, v)| (*k, v.clone())).collect(),
                    awaiting_rel: s.awaiting_rel.iter().copied().collect(),
                })
                .collect(),
            retained: self.retained.values().cloned().collect(),
        }
    }
}
