//! The broker: the session table and the broker's shared parts, one [`Broker`] per gateway.
//! Adapters reach it only through [`Broker::connect`] and the [`Connection`] it returns.
//!
//! - [`connect`]: a device connects: authentication, limits, session takeover or creation
//! - [`connection`]: the adapter API, one [`Connection`] per device
//! - `publish`: the one publish pipeline (hooks, routing to sessions, retained) and subscriptions
//! - `end`: a connection detaches: wills, will delay, session expiry, a session's end
//! - `cluster`: what a cluster link (roost-cluster) calls: remote routes, hand-offs
//! - `restore`: sessions and retained messages back from the store at start
//!
//! Lock order: sessions table -> one session's state. Routing takes the router's read lock,
//! then each target session's state lock in turn, never two at once; wills are published
//! after every lock is released.
//!
//! This file holds what the others build on and imports none of them; they add their
//! methods to [`Broker`] (the re-exports below only name their public types here).

mod cluster;
pub mod connect;
pub mod connection;
mod end;
mod publish;
mod restore;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::auth::throttle::FailureTracker;
use crate::auth::{AllowAll, AnonymousPolicy, Authenticator, Authorizer};
use crate::cluster::ClusterLink;
use crate::hooks::{Event, Hook, Hooks};
use crate::metrics::Metrics;
use crate::retained::Retained;
use crate::router::Router;
use crate::session::{DisconnectReason, Session};
use crate::settings::BrokerSettings;
use crate::store::{Change, NullStore, Store, StoreError};
use crate::trace::Tracer;
use crate::types::ClientId;

pub use connect::{ConnectContext, ConnectError, ConnectRequest};
pub use connection::Connection;

pub(crate) struct Inner {
    pub settings: BrokerSettings,
    pub metrics: Metrics,
    pub router: Router,
    pub retained: Retained,
    pub sessions: Mutex<HashMap<ClientId, Arc<Session>>>,
    pub store: Arc<dyn Store>,
    pub authenticator: Box<dyn Authenticator>,
    pub authorizer: Box<dyn Authorizer>,
    pub hooks: Hooks,
    pub tracer: Tracer,
    pub failures: FailureTracker,
    /// The cluster this node is part of, if any (`roost-cluster`).
    pub cluster: std::sync::OnceLock<Arc<dyn ClusterLink>>,
    next_id: AtomicU64,
    shutting_down: std::sync::atomic::AtomicBool,
}

/// The shared broker. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

/// Builds a [`Broker`] with non-default parts.
pub struct BrokerBuilder {
    settings: BrokerSettings,
    store: Arc<dyn Store>,
    authenticator: Option<Box<dyn Authenticator>>,
    authorizer: Box<dyn Authorizer>,
    hooks: Vec<Arc<dyn Hook>>,
}

impl BrokerBuilder {
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = store;
        self
    }
    pub fn authenticator(mut self, a: Box<dyn Authenticator>) -> Self {
        self.authenticator = Some(a);
        self
    }
    pub fn authorizer(mut self, a: Box<dyn Authorizer>) -> Self {
        self.authorizer = a;
        self
    }
    pub fn hook(mut self, h: Arc<dyn Hook>) -> Self {
        self.hooks.push(h);
        self
    }
    /// Builds the broker and restores what its store holds.
    pub fn build(self) -> Result<Broker, StoreError> {
        let allow_anonymous = self.settings.allow_anonymous;
        let failures = FailureTracker::new(self.settings.auth_failures_free);
        let inner = Arc::new(Inner {
            router: Router::new(self.settings.shared_strategy),
            settings: self.settings,
            metrics: Metrics::default(),
            retained: Retained::default(),
            sessions: Mutex::new(HashMap::new()),
            store: self.store,
            authenticator: self.authenticator.unwrap_or_else(|| Box::new(AnonymousPolicy { allow_anonymous })),
            authorizer: self.authorizer,
            hooks: Hooks::new(self.hooks),
            tracer: Tracer::default(),
            failures,
            cluster: std::sync::OnceLock::new(),
            next_id: AtomicU64::new(1),
            shutting_down: false.into(),
        });
        let broker = Broker { inner };
        broker.restore()?;
        Ok(broker)
    }
}

impl Broker {
    pub fn builder(settings: BrokerSettings) -> BrokerBuilder {
        BrokerBuilder {
            settings,
            store: Arc::new(NullStore),
            authenticator: None,
            authorizer: Box::new(AllowAll),
            hooks: Vec::new(),
        }
    }

    /// A broker whose state lives in memory only.
    pub fn new(settings: BrokerSettings) -> Broker {
        let inner = Broker::builder(settings).build();
        // A NullStore holds nothing to restore, so building cannot fail.
        inner.unwrap_or_else(|_| unreachable!("a NullStore restores nothing"))
    }

    pub fn settings(&self) -> &BrokerSettings {
        &self.inner.settings
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Sessions held (online and offline).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.lock().len()
    }

    /// Messages waiting in a session's queue (not yet handed to its connection), if the
    /// session exists.
    pub fn queue_len(&self, client_id: &ClientId) -> Option<usize> {
        let session = self.inner.sessions.lock().get(client_id).cloned()?;
        let len = session.state.lock().queue.len();
        Some(len)
    }

    /// Gives the session of `client_id` its own queue capacity instead of
    /// `max_queued_messages` (`None`: back to the global one). False if there is no such
    /// session yet.
    pub fn set_queue_capacity(&self, client_id: &ClientId, capacity: Option<usize>) -> bool {
        let Some(session) = self.inner.sessions.lock().get(client_id).cloned() else { return false };
        session.state.lock().queue_capacity = capacity.map(|c| u32::try_from(c).unwrap_or(u32::MAX));
        true
    }

    pub fn retained_count(&self) -> usize {
        self.inner.retained.len()
    }

    pub fn subscription_filter_count(&self) -> usize {
        self.inner.router.filter_count()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn hook(&self, event: &Event<'_>) {
        self.inner.hooks.emit(event);
    }

    /// "server shutting down" (their sessions are written to the store as they detach).
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        let sessions: Vec<Arc<Session>> = self.inner.sessions.lock().values().cloned().collect();
        for s in &sessions {
            if let Some(a) = &s.state.lock().attached {
                a.signal.close(DisconnectReason::Shutdown);
            }
        }
    }

    /// Records an adapter's own durable record (`key` in `space`; `None` deletes it) and
    /// returns its store ticket: [`Broker::durable`] resolves once it is on disk.
    pub fn record_blob(&self, space: &str, key: String, value: Option<Bytes>) -> u64 {
        let store = &self.inner.store;
        if !store.keeps() {
            return 0;
        }
        store.record(Change::Blob { space: space.into(), key, value })
    }

    /// Every record of `space` the store holds (an adapter's start-up).
    pub fn load_blobs(&self, space: &str) -> Result<Vec<(String, Bytes)>, StoreError> {
        self.inner.store.load_blobs(space)
    }

    /// Waits until the change with store `ticket` is durable.
    pub async fn durable(&self, ticket: u64) -> Result<(), StoreError> {
        self.inner.store.durable(ticket).await
    }

    /// Makes everything recorded durable and closes the store; call once connections are
    /// gone at shutdown.
    pub fn close_store(&self) {
        self.inner.store.close();
    }

    /// Kicks a client off (administrative action); true if it was connected.
    pub fn kick(&self, client_id: &ClientId) -> bool {
        let session = self.inner.sessions.lock().get(client_id).cloned();
        let Some(s) = session else { return false };
        let st = s.state.lock();
        match &st.attached {
            Some(a) => {
                a.signal.close(DisconnectReason::Kicked);
                true
            }
            None => false,
        }
    }

    /// Connections of all protocols now open.
    pub fn connection_count(&self) -> u64 {
        self.inner.metrics.connections()
    }
}
