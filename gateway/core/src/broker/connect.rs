//! A device connects (MQTT 5.0 §3.1.4): authentication and its throttle, the connection
//! limit, the cluster-wide claim of the client id, then session takeover or creation.
//! What comes back is the device's [`Connection`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Broker;
use super::connection::Connection;
use crate::auth::{AuthDecision, ClientInfo, Credentials, GrantSlot, Grants};
use crate::hooks::{Event, EventKind};
use crate::session::{Attached, ConnSignal, DisconnectReason, Session, Will};
use crate::types::{ClientId, Message, Protocol};

/// What an adapter asks for when a device connects.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub client_id: ClientId,
    pub protocol: Protocol,
    pub peer: Option<SocketAddr>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    /// Start a new session, discarding any existing one.
    pub clean_start: bool,
    /// Keep alive in seconds, as negotiated by the adapter (informational for the core).
    pub keep_alive: u16,
    pub will: Option<Will>,
    /// `None`: the session never expires; `Some(0)`: it ends with the connection.
    pub session_expiry: Option<Duration>,
    /// How many outgoing QoS 1/2 messages the device accepts at once.
    pub receive_maximum: u16,
}

/// What the transport knows about a connecting device beyond its [`ConnectRequest`].
#[derive(Debug, Clone, Default)]
pub struct ConnectContext {
    /// A name finer than [`Protocol`] (a custom codec's), see [`Broker::connect_as`].
    pub protocol_name: Option<Arc<str>>,
    /// The identity of a client certificate the listener verified (mTLS), or a DTLS PSK
    /// identity: authentication sources may accept the client on it.
    pub certificate: Option<String>,
    /// A client the gateway holds on every node of a cluster for the same device (a LoRaWAN
    /// device, heard by whichever node its gateways deliver to): its id is this node's own and
    /// is not claimed cluster-wide, so the nodes do not take it over from one another.
    pub node_local: bool,
    /// MQTT 5 CONNECT user properties, for auth sources that read a credential from one.
    pub user_properties: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("bad username or password")]
    BadCredentials,
    #[error("not authorized")]
    NotAuthorized,
    #[error("server busy: connection limit reached")]
    ServerBusy,
    #[error("server shutting down")]
    ShuttingDown,
}

impl Broker {
    /// Connects a device: authentication, connection limit, then session takeover or
    /// creation. The returned [`Connection`] is the adapter's only handle on the broker.
    pub async fn connect(&self, req: ConnectRequest) -> Result<Connection, ConnectError> {
        self.connect_with(req, ConnectContext::default()).await
    }

    /// [`Broker::connect`] for a protocol that names itself more finely than
    /// [`Protocol`]: a custom codec passes its registered name, which hooks, ACL and
    /// listings see as [`ClientInfo::protocol_name`].
    pub async fn connect_as(&self, req: ConnectRequest, protocol_name: Arc<str>) -> Result<Connection, ConnectError> {
        self.connect_with(req, ConnectContext { protocol_name: Some(protocol_name), ..Default::default() }).await
    }

    /// [`Broker::connect`] with what the transport knows beyond the request: a finer
    /// protocol name, the identity of a verified client certificate (mTLS) or PSK.
    pub async fn connect_with(&self, req: ConnectRequest, context: ConnectContext) -> Result<Connection, ConnectError> {
        let info = self.admit(&req, &context).await?;
        let node_local = context.node_local;
        // In a cluster the client id is unique cluster-wide: the node that held it closes it
        // and hands its session over (bounded by the cluster's own timeout).
        if let Some(cluster) = self.inner.cluster.get().filter(|_| !node_local)
            && let Some(handoff) = cluster.claim(&req.client_id, req.clean_start).await
        {
            self.adopt(handoff);
        }
        let conn_id = self.next_id();
        let signal = Arc::new(ConnSignal::default());
        let (session, session_present, wills) = self.attach(&req, &info, conn_id, &signal);
        for w in wills {
            self.publish_will(w);
        }
        if session_present {
            self.hook(&Event::SessionResumed { client: &info });
        } else {
            self.hook(&Event::SessionCreated { client: &info });
        }
        self.hook(&Event::Connected { client: &info, session_present, keep_alive: req.keep_alive });
        self.tell_session(&session);
        tracing::debug!(client_id = %info.client_id, protocol = info.protocol_name(), session_present, "connected");
        Ok(Connection::new(self.clone(), session, conn_id, signal, info, session_present))
    }

    /// Whether the device may connect at all: not while shutting down, after the delay its
    /// address earned by failed logins, if the authenticator allows it, within
    /// `max_connections`. Returns who it is, with what its auth sources granted.
    async fn admit(&self, req: &ConnectRequest, context: &ConnectContext) -> Result<Arc<ClientInfo>, ConnectError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::Relaxed) {
            return Err(ConnectError::ShuttingDown);
        }
        // An address that failed to log in repeatedly waits before it is answered.
        if let Some(ip) = req.peer.map(|p| p.ip()) {
            let delay = inner.failures.delay(ip, Instant::now());
            if !delay.is_zero() {
                tracing::debug!(%ip, ?delay, "connect slowed after repeated failed logins");
                tokio::time::sleep(delay).await;
            }
        }
        let mut info = Arc::new(ClientInfo {
            client_id: req.client_id.clone(),
            protocol: req.protocol,
            protocol_detail: context.protocol_name.clone(),
            peer: req.peer,
            username: req.username.clone(),
            grants: None,
        });
        match self.authenticate(&mut info, req.password.as_ref(), context).await {
            AuthDecision::Allow => {}
            AuthDecision::BadCredentials => {
                inner.metrics.auth_failure();
                crate::peer_log!(WARN, "login.bad_credentials", info.peer, client_id = %info.client_id, username = ?info.username, protocol = info.protocol_name(), peer = ?info.peer, "login failed: bad credentials");
                return Err(ConnectError::BadCredentials);
            }
            AuthDecision::NotAuthorized => {
                inner.metrics.auth_failure();
                crate::peer_log!(WARN, "login.not_authorized", info.peer, client_id = %info.client_id, username = ?info.username, protocol = info.protocol_name(), peer = ?info.peer, "login failed: not authorized");
                return Err(ConnectError::NotAuthorized);
            }
        }
        if inner.metrics.connections() >= inner.settings.max_connections as u64 {
            crate::peer_log!(WARN, "connect.max_connections", info.peer, client_id = %info.client_id, "connect refused: max_connections reached");
            return Err(ConnectError::ServerBusy);
        }
        Ok(info)
    }

    /// Asks the authenticator; keeps what it granted in `info`, counts the outcome for the
    /// address's failed-login throttle and tells the hooks.
    async fn authenticate(
        &self,
        info: &mut Arc<ClientInfo>,
        password: Option<&Bytes>,
        context: &ConnectContext,
    ) -> AuthDecision {
        let inner = &self.inner;
        let slot = GrantSlot::default();
        let creds = Credentials {
            client: info,
            password,
            certificate: context.certificate.as_deref(),
            user_properties: &context.user_properties,
            grants: &slot,
        };
        let decision = inner.authenticator.authenticate(creds).await;
        let mut grants = slot.take();
        if let Some(username) = grants.username.take() {
            // The identity a source established (a token's claim) is the client's from here on.
            Arc::make_mut(info).username = username;
        }
        if decision == AuthDecision::Allow && grants != Grants::default() {
            // Not shared yet: make_mut changes it in place.
            Arc::make_mut(info).grants = Some(Arc::new(grants));
        }
        if let Some(ip) = info.peer.map(|p| p.ip()) {
            match decision {
                AuthDecision::Allow => inner.failures.succeeded(ip),
                _ => inner.failures.failed(ip, Instant::now()),
            }
        }
        if inner.hooks.wants(EventKind::ClientAuthenticate) {
            self.hook(&Event::Authenticate { client: info, allowed: decision == AuthDecision::Allow });
        }
        decision
    }

    /// Attaches connection `conn_id` to the session of the client id, under the sessions
    /// table's lock: the session held is taken over (resumed, or discarded for a clean
    /// start) or a new one created. Returns it, whether it was resumed (Session Present),
    /// and the wills the takeover fired, to publish once the lock is released.
    fn attach(
        &self,
        req: &ConnectRequest,
        info: &Arc<ClientInfo>,
        conn_id: u64,
        signal: &Arc<ConnSignal>,
    ) -> (Arc<Session>, bool, Vec<Message>) {
        let inner = &self.inner;
        let expiry = clamp_expiry(req.session_expiry, inner.settings.max_session_expiry);
        let window = req.receive_maximum.clamp(1, inner.settings.max_inflight.max(1));
        let mut wills = Vec::new();
        let mut sessions = inner.sessions.lock();
        let existing = sessions.get(&req.client_id).cloned();
        let resumed = existing.and_then(|old| self.take_over(&mut sessions, old, req.clean_start, &mut wills));
        let (session, present, resend) = match resumed {
            Some((s, resend)) => (s, true, resend),
            None => {
                let s =
                    Arc::new(Session::new(conn_id, req.client_id.clone(), req.protocol, expiry, inner.store.clone()));
                sessions.insert(req.client_id.clone(), s.clone());
                (s, false, Default::default())
            }
        };
        {
            let mut st = session.state.lock();
            st.attached = Some(Attached {
                conn_id,
                signal: signal.clone(),
                window,
                info: info.clone(),
                keep_alive: req.keep_alive,
                connected_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
                resend,
            });
            st.generation += 1;
            st.expiry = expiry;
            st.will = req.will.clone().map(Box::new);
            st.protocol = req.protocol;
            session.persist(&mut st, None);
        }
        session.set_online(true);
        inner.metrics.connected(req.protocol);
        (session, present, wills)
    }

    /// A new connection takes the session `old` over: its connection is closed (MQTT 5
    /// 0x8E) and its will collected into `wills` as §3.1.2.5 says. Returns the session to
    /// resume with the in-flight ids to send again, or `None` after a clean start discarded it.
    fn take_over(
        &self,
        sessions: &mut HashMap<ClientId, Arc<Session>>,
        old: Arc<Session>,
        clean_start: bool,
        wills: &mut Vec<Message>,
    ) -> Option<(Arc<Session>, VecDeque<u16>)> {
        let mut st = old.state.lock();
        if let Some(prev) = st.attached.take() {
            prev.signal.close(DisconnectReason::TakenOver);
            self.inner.metrics.disconnected(st.protocol);
            // The old connection ends abnormally: its will fires now unless a delay
            // is running that the resumed session below cancels (§3.1.2.5).
            if let Some(w) = st.will.take()
                && (clean_start || w.delay.is_zero())
            {
                wills.push(w.message);
            }
        }
        if clean_start {
            if let Some(w) = st.pending_will.take() {
                wills.push(w.message);
            }
            drop(st);
            self.destroy_locked(sessions, &old, "discarded");
            None
        } else {
            st.pending_will = None;
            let resend = st.resend_ids();
            drop(st);
            Some((old, resend))
        }
    }
}

fn clamp_expiry(asked: Option<Duration>, max: Option<Duration>) -> Option<Duration> {
    match (asked, max) {
        (None, m) => m,
        (Some(a), Some(m)) => Some(a.min(m)),
        (Some(a), None) => Some(a),
    }
}
