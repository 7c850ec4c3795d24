//! The CoAP sessions of a gateway as the management API lists them (`/api/v1/coap/sessions`):
//! each session publishes a small view of itself here after the event that changed it (the
//! driver calls [`Session::sync_view`] after every step), and withdraws it when it ends.
//! The sessions themselves stay records driven by the datagram engine; this table only
//! mirrors them, bounded like them by `coap.max_sessions`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Session;

/// One observation: the path the device observes and the core filter behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationView {
    pub path: String,
    pub filter: String,
}

/// What the API shows of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub client_id: String,
    /// The username the device connected with (the DTLS identity when there is one).
    pub username: Option<String>,
    /// Who the DTLS transport authenticated (the PSK's `username`, else its identity);
    /// `None` over plain UDP.
    pub identity: Option<String>,
    /// Where the device was last heard from (notifications go there).
    pub peer: SocketAddr,
    /// Whether it holds a `/mqtt/connection` token (else it is connection-less).
    pub token: bool,
    pub observations: Vec<ObservationView>,
    pub created: SystemTime,
    pub last_heard: Instant,
}

/// The table, shared by every CoAP listener of the gateway (UDP and DTLS).
#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, (u64, SessionView)>>,
    next_serial: AtomicU64,
    removed: Notify,
}

impl Registry {
    /// Every session, by client id.
    pub fn list(&self) -> Vec<SessionView> {
        let mut all: Vec<SessionView> = self.sessions.lock().values().map(|(_, v)| v.clone()).collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        all
    }

    pub fn get(&self, client_id: &str) -> Option<SessionView> {
        self.sessions.lock().get(client_id).map(|(_, v)| v.clone())
    }

    /// Waits (at most `within`) until `client_id` has no session; `true` if it has none.
    pub async fn wait_gone(&self, client_id: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let removed = self.removed.notified();
            if !self.sessions.lock().contains_key(client_id) {
                return true;
            }
            if tokio::time::timeout_at(deadline, removed).await.is_err() {
                return !self.sessions.lock().contains_key(client_id);
            }
        }
    }

    pub(crate) fn serial(&self) -> u64 {
        self.next_serial.fetch_add(1, Relaxed)
    }

    fn put(&self, serial: u64, view: SessionView) {
        self.sessions.lock().insert(view.client_id.clone(), (serial, view));
    }

    fn heard(&self, serial: u64, client_id: &str, at: Instant) {
        if let Some((s, v)) = self.sessions.lock().get_mut(client_id)
            && *s == serial
        {
            v.last_heard = at;
        }
    }

    /// Withdraws the view of session `serial` (a newer session under the same client id,
    /// e.g. one over DTLS that took over a UDP one, keeps its own).
    fn remove(&self, serial: u64, client_id: &str) {
        let mut sessions = self.sessions.lock();
        if sessions.get(client_id).is_some_and(|(s, _)| *s == serial) {
            sessions.remove(client_id);
        }
        drop(sessions);
        self.removed.notify_waiters();
    }
}

/// What makes a published view stale (everything but the time it was last heard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewKey {
    peer: SocketAddr,
    token: bool,
    username: Option<String>,
    observations: Vec<ObservationView>,
}

impl Session {
    /// Publishes this session's view if it changed (its last-heard time is refreshed in
    /// place); withdraws it once the session ended.
    pub fn sync_view(&mut self) {
        let registry = &self.ctx.registry;
        if self.end.is_some() {
            self.withdraw_view();
            return;
        }
        if self.conn.is_none() {
            return;
        }
        let key = ViewKey {
            peer: self.peer,
            token: self.token.is_some(),
            username: self.username.clone(),
            observations: self.observers.views(),
        };
        if self.published.as_ref() == Some(&key) {
            registry.heard(self.serial, self.client_id.as_str(), self.last_heard);
            return;
        }
        registry.put(
            self.serial,
            SessionView {
                client_id: self.client_id.as_str().to_string(),
                username: key.username.clone(),
                identity: self.transport_user.clone(),
                peer: key.peer,
                token: key.token,
                observations: key.observations.clone(),
                created: self.created,
                last_heard: self.last_heard,
            },
        );
        self.published = Some(key);
    }

    /// Withdraws this session's view (it ended).
    pub fn withdraw_view(&mut self) {
        if self.published.take().is_some() {
            self.ctx.registry.remove(self.serial, self.client_id.as_str());
        }
    }
}
