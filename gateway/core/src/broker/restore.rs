//! Start-up: a broker rebuilds its offline sessions (subscriptions, queued and in-flight
//! messages, QoS 2 ids awaiting release) and retained messages from its store; sessions that
//! expired while the process was down are ended.

use std::sync::Arc;

use super::Broker;
use crate::session::{FlightState, InFlight, Queued, Session};
use crate::store::{Change, StoreError, StoredSession};
use crate::topic;

impl Broker {
    /// Rebuilds offline sessions and retained messages from the store.
    pub(crate) fn restore(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let snapshot = inner.store.load()?;
        for m in snapshot.retained {
            inner.retained.set(&m, inner.settings.max_retained_messages);
        }
        let now = std::time::SystemTime::now();
        let (mut restored, mut expired) = (0usize, 0usize);
        let mut sessions = inner.sessions.lock();
        for stored in snapshot.sessions {
            let left = match stored.meta.expires_at {
                Some(at) => match at.duration_since(now) {
                    Ok(left) => Some(left),
                    Err(_) => {
                        // Ended while we were down.
                        inner.store.record(Change::SessionGone(stored.meta.client_id.clone()));
                        expired += 1;
                        continue;
                    }
                },
                None => None,
            };
            let client_id = stored.meta.client_id.clone();
            let expiry = stored.meta.expiry;
            let session = self.restore_session(stored, true);
            // A session of a connection that was up when the process died expires as if it
            // had just disconnected.
            let left = left.or(expiry);
            if let Some(left) = left {
                self.schedule(session.clone(), session.state.lock().generation, None, Some(left));
            }
            sessions.insert(client_id, session);
            restored += 1;
        }
        if restored + expired > 0 {
            tracing::info!(restored, expired, retained = inner.retained.len(), "sessions restored from the store");
        }
        Ok(())
    }

    /// Builds a session from its record (the store's at start-up, or one another node
    /// handed off) and subscribes it. `persisted`: the store already holds it.
    pub(crate) fn restore_session(&self, stored: StoredSession, persisted: bool) -> Arc<Session> {
        let inner = &self.inner;
        let meta = stored.meta;
        let session = Arc::new(Session::new(
            self.next_id(),
            meta.client_id.clone(),
            meta.protocol,
            meta.expiry,
            inner.store.clone(),
        ));
        let mut subscribed = Vec::new();
        {
            let mut st = session.state.lock();
            st.persisted = persisted;
            for (seq, m) in stored.messages {
                st.next_seq = st.next_seq.max(seq + 1);
                match m.packet_id {
                    Some(id) => {
                        let state = if m.released { FlightState::Released } else { FlightState::Published };
                        st.inflight.push_back(InFlight { seq, id, pending: m.pending, state });
                    }
                    None => st.queue.push_back(Queued { seq, pending: m.pending }),
                }
            }
            st.awaiting_rel.extend(stored.awaiting_rel);
            for (raw, options) in meta.subscriptions {
                if topic::parse_filter(&raw, &inner.settings).is_ok() {
                    st.subscriptions.insert(raw.clone(), options);
                    subscribed.push((raw, options));
                }
            }
        }
        // Into the router once the session's lock is released (lock order: router first).
        for (raw, options) in subscribed {
            if let Ok(spec) = topic::parse_filter(&raw, &inner.settings) {
                inner.router.subscribe(&session, spec.share_group, spec.filter, options);
            }
        }
        session
    }
}
