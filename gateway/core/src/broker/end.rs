//! How a connection and its session end: the detach, the will (now or after its delay,
//! MQTT 5.0 §3.1.3.2.2), the session expiry timer (§3.1.2.11.2), and a session's removal
//! from the table, the router, the store and the cluster.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Broker;
use crate::auth::ClientInfo;
use crate::hooks::Event;
use crate::session::{DisconnectReason, Session};
use crate::store::Change;
use crate::topic;
use crate::types::ClientId;

impl Broker {
    /// Detaches connection `conn_id` from its session, firing the will and scheduling or
    /// performing the session's end as the reason and expiry say.
    pub(crate) fn detach(&self, session: &Arc<Session>, conn_id: u64, reason: DisconnectReason, info: &ClientInfo) {
        let mut fire = None;
        let mut destroy = false;
        let mut timers = None;
        {
            let mut st = session.state.lock();
            match &st.attached {
                Some(a) if a.conn_id == conn_id => {}
                // Already taken over or kicked out by the broker: nothing of ours to end.
                _ => return,
            }
            st.attached = None;
            st.generation += 1;
            session.set_online(false);
            self.inner.metrics.disconnected(st.protocol);
            let will = st.will.take().filter(|_| reason.publishes_will());
            let expiry = st.expiry;
            if expiry != Some(Duration::ZERO) {
                let expires_at = expiry.map(|e| std::time::SystemTime::now() + e);
                session.persist(&mut st, expires_at);
            }
            if expiry == Some(Duration::ZERO) {
                destroy = true;
                fire = will.map(|w| w.message);
            } else {
                match will {
                    Some(w) if w.delay.is_zero() => fire = Some(w.message),
                    Some(w) => {
                        let delay = expiry.map_or(w.delay, |e| e.min(w.delay));
                        st.pending_will = Some(w);
                        timers = Some((st.generation, Some(delay), expiry));
                    }
                    None => timers = Some((st.generation, None, expiry)),
                }
            }
        }
        self.hook(&Event::Disconnected { client: info, reason });
        if destroy {
            let mut sessions = self.inner.sessions.lock();
            self.destroy_locked(&mut sessions, session, "closed");
        }
        if let Some(msg) = fire {
            self.publish_will(msg);
        }
        if let Some((generation, will_delay, expiry)) = timers {
            self.schedule(session.clone(), generation, will_delay, expiry);
        }
    }

    pub(crate) fn schedule(
        &self,
        session: Arc<Session>,
        generation: u64,
        will_delay: Option<Duration>,
        expiry: Option<Duration>,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let broker = self.clone();
        if let Some(delay) = will_delay {
            let (b, s) = (broker.clone(), session.clone());
            rt.spawn(async move {
                tokio::time::sleep(delay).await;
                let will = {
                    let mut st = s.state.lock();
                    if st.generation != generation { None } else { st.pending_will.take() }
                };
                if let Some(w) = will {
                    b.publish_will(w.message);
                }
            });
        }
        if let Some(expiry) = expiry {
            rt.spawn(async move {
                tokio::time::sleep(expiry).await;
                let will = {
                    let mut st = session.state.lock();
                    if st.generation != generation || st.attached.is_some() {
                        return;
                    }
                    st.pending_will.take()
                };
                {
                    let mut sessions = broker.inner.sessions.lock();
                    broker.destroy_locked(&mut sessions, &session, "expired");
                }
                tracing::debug!(client_id = %session.client_id(), "session expired");
                if let Some(w) = will {
                    broker.publish_will(w.message);
                }
            });
        }
    }

    /// Ends a session: out of the table, the router and the store.
    pub(crate) fn destroy_locked(
        &self,
        sessions: &mut HashMap<ClientId, Arc<Session>>,
        session: &Arc<Session>,
        why: &'static str,
    ) {
        if sessions.get(session.client_id()).is_some_and(|s| Arc::ptr_eq(s, session)) {
            sessions.remove(session.client_id());
        }
        let filters: Vec<String> = {
            let mut st = session.state.lock();
            if st.persisted && !st.destroyed {
                self.inner.store.record(Change::SessionGone(session.client_id().clone()));
            }
            st.destroyed = true;
            st.queue.clear();
            st.inflight.clear();
            std::mem::take(&mut st.subscriptions).into_keys().collect()
        };
        for raw in filters {
            if let Ok(spec) = topic::parse_filter(&raw, &self.inner.settings) {
                self.inner.router.unsubscribe(session.id(), spec.share_group, spec.filter);
            }
        }
        if let Some(cluster) = self.inner.cluster.get() {
            cluster.session_ended(session.client_id());
        }
        self.hook(&Event::SessionTerminated { client_id: session.client_id(), reason: why });
    }
}
