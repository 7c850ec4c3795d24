//! Session layer: the MQTT-SN 1.2 state of one client (§6), sans-IO. Messages from the
//! client go in through [`Session::handle_message`], core deliveries through
//! [`Session::pump`] / [`Session::handle_delivery`], time through [`Session::handle_timeout`]
//! at [`Session::poll_timeout`]; messages to send come out in a `Vec`. It never touches a
//! socket and time is a parameter, so tests drive it with a virtual clock.
//!
//! Client states (§6.14): connecting (will handshake), active, asleep, awake; lost and
//! disconnected end the session. While asleep the session does not pull deliveries: the
//! core's queue buffers them, bounded by `max_sleep_buffer` (drops counted as `queue_full`).
//! A PINGREQ with the client id wakes it: the buffered messages go out (each acknowledged
//! before the next QoS 1/2 one when `max_inflight` is 1), then PINGRESP, and it sleeps again.

mod inbound;
mod outbound;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use roost_core::{Broker, ClientId, ConnectError, ConnectRequest, Connection, DisconnectReason, Protocol, QoS, Will};

use crate::codec::{Connect, Message, MsgId, ReturnCode, SnQos, TopicId, WillTopic};
use crate::settings::MqttSnSettings;
use crate::topics::{TopicConfig, TopicTable};

/// What every session of one gateway shares.
pub struct Context {
    pub broker: Broker,
    pub settings: MqttSnSettings,
    pub topics: TopicConfig,
    pub counters: Counters,
}

impl Context {
    pub fn new(broker: Broker, settings: MqttSnSettings) -> Arc<Context> {
        Arc::new(Context { topics: TopicConfig::new(&settings), broker, settings, counters: Counters::default() })
    }
}

/// MQTT-SN adapter counters (the core counts messages and drops; these are the wire-level
/// events it cannot see).
#[derive(Debug, Default)]
pub struct Counters {
    pub malformed: AtomicU64,
    pub unexpected: AtomicU64,
    pub retransmits: AtomicU64,
    pub lost: AtomicU64,
    /// Deliveries dropped because the client's topic table was full or it refused a topic.
    pub topic_drops: AtomicU64,
    pub qos_minus_one: AtomicU64,
    pub rejected_clients: AtomicU64,
    /// Datagrams dropped because the client's task had `CLIENT_QUEUE` unread already.
    pub busy_drops: AtomicU64,
    /// Clients with a session task now (a gauge).
    pub clients: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

/// The client's state (§6.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No CONNECT yet (or between a clean reconnect's steps).
    New,
    /// CONNECT with the will flag seen; WILLTOPIC expected.
    WaitWillTopic,
    /// WILLTOPIC seen; WILLMSG expected.
    WaitWillMsg,
    Active,
    /// Asleep for `duration`: deliveries are held in the core queue.
    Asleep,
    /// Woken by PINGREQ: buffered deliveries are going out; PINGRESP ends it.
    Awake,
}

/// The session is over; the driver forgets the client (the one `End` of every datagram
/// session).
pub use roost_core::datagram::End;

/// An end the client caused or suffered (its will is published).
fn end(why: impl Into<String>) -> End {
    End::new(DisconnectReason::Abnormal, why)
}

struct PendingConnect {
    connect: Connect,
    will_topic: Option<WillTopic>,
    since: Instant,
}

/// One message of ours awaiting the client's reply (§6.13 retransmission).
#[derive(Debug)]
pub(crate) struct Outstanding {
    pub msg: Message,
    pub kind: Kind,
    pub deadline: Instant,
    pub tries: u32,
}

#[derive(Debug)]
pub(crate) enum Kind {
    /// REGISTER for a delivery held until REGACK (or, with subs_resume, for none).
    Register { msg_id: MsgId, topic_id: TopicId, held: Option<roost_core::Delivery> },
    /// PUBLISH QoS 1/2 with the core's packet id as message id.
    Publish { id: MsgId },
    /// PUBREL after PUBREC.
    Release { id: MsgId },
}

pub struct Session {
    ctx: Arc<Context>,
    peer: SocketAddr,
    pub(crate) state: State,
    conn: Option<Arc<Connection>>,
    client_id: Option<ClientId>,
    pending: Option<PendingConnect>,
    keep_alive: Duration,
    last_heard: Instant,
    sleep_duration: Duration,
    sleep_deadline: Option<Instant>,
    pub(crate) topics: TopicTable,
    /// Raw filters the client subscribed to (for subs_resume).
    subscriptions: HashSet<String>,
    pub(crate) outstanding: VecDeque<Outstanding>,
    next_msg_id: u16,
    /// Recent incoming QoS 1 message ids, for duplicate detection.
    recent_qos1: VecDeque<MsgId>,
}

const RECENT_IDS: usize = 16;

impl Session {
    pub fn new(ctx: Arc<Context>, peer: SocketAddr, now: Instant) -> Self {
        let limit = ctx.settings.max_topics_per_client;
        Session {
            ctx,
            peer,
            state: State::New,
            conn: None,
            client_id: None,
            pending: None,
            keep_alive: Duration::ZERO,
            last_heard: now,
            sleep_duration: Duration::ZERO,
            sleep_deadline: None,
            topics: TopicTable::new(limit),
            subscriptions: HashSet::new(),
            outstanding: VecDeque::new(),
            next_msg_id: 0,
            recent_qos1: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn client_id(&self) -> Option<&ClientId> {
        self.client_id.as_ref()
    }

    /// The core connection, for the driver to wait on `next_delivery`.
    pub fn connection(&self) -> Option<&Arc<Connection>> {
        self.conn.as_ref()
    }

    /// Whether the session takes core deliveries now (connected, awake, not waiting for a
    /// REGACK that holds a delivery).
    pub fn wants_deliveries(&self) -> bool {
        self.conn.is_some()
            && matches!(self.state, State::Active | State::Awake)
            && !self.outstanding.iter().any(|o| matches!(o.kind, Kind::Register { held: Some(_), .. }))
    }

    fn next_msg_id(&mut self) -> MsgId {
        self.next_msg_id = self.next_msg_id.wrapping_add(1).max(1);
        MsgId(self.next_msg_id)
    }

    /// When [`Session::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |d: Instant| t = Some(t.map_or(d, |t| t.min(d)));
        match self.state {
            State::New => {}
            State::WaitWillTopic | State::WaitWillMsg => {
                if let Some(p) = &self.pending {
                    at(p.since + self.handshake_timeout());
                }
            }
            State::Active => {
                if !self.keep_alive.is_zero() {
                    at(self.last_heard + self.keep_alive * 3 / 2);
                }
            }
            State::Asleep => {
                if let Some(d) = self.sleep_deadline {
                    at(d);
                }
            }
            State::Awake => {}
        }
        if matches!(self.state, State::Active | State::Awake) {
            for o in &self.outstanding {
                at(o.deadline);
            }
        }
        t
    }

    fn handshake_timeout(&self) -> Duration {
        self.ctx.settings.retry_interval * self.ctx.settings.max_retries.max(1)
    }

    /// Timers: keep alive, sleep supervision, will handshake, retransmission.
    pub async fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Message>) -> Result<(), End> {
        match self.state {
            State::WaitWillTopic | State::WaitWillMsg
                if self.pending.as_ref().is_some_and(|p| now >= p.since + self.handshake_timeout()) =>
            {
                return Err(end("will handshake timed out"));
            }
            State::Active if !self.keep_alive.is_zero() && now >= self.last_heard + self.keep_alive * 3 / 2 => {
                return Err(self.lost("keep alive timeout").await);
            }
            State::Asleep if self.sleep_deadline.is_some_and(|d| now >= d) => {
                return Err(self.lost("slept past its duration").await);
            }
            _ => {}
        }
        if matches!(self.state, State::Active | State::Awake) {
            self.retransmit(now, out).await?;
        }
        Ok(())
    }

    /// The client is lost: the core publishes its will.
    async fn lost(&mut self, why: &str) -> End {
        Counters::bump(&self.ctx.counters.lost);
        tracing::debug!(client_id = ?self.client_id, peer = %self.peer, why, "MQTT-SN client lost");
        if let Some(conn) = self.conn.take() {
            conn.disconnect(DisconnectReason::Abnormal).await;
        }
        end(why)
    }

    /// Handles one message from the client.
    pub async fn handle_message(&mut self, now: Instant, msg: Message, out: &mut Vec<Message>) -> Result<(), End> {
        self.last_heard = now;
        match msg {
            Message::Connect(c) => self.handle_connect(now, c, out).await,
            Message::WillTopic(w) if self.state == State::WaitWillTopic => {
                match w {
                    None => return self.finish_connect(now, out).await,
                    Some(w) if !self.will_topic_ok(&w.topic) => {
                        out.push(Message::ConnAck { rc: ReturnCode::NotSupported });
                        return Err(end("WILLTOPIC is not a valid topic name"));
                    }
                    Some(w) => {
                        if let Some(p) = &mut self.pending {
                            p.will_topic = Some(w);
                        }
                        self.state = State::WaitWillMsg;
                        out.push(Message::WillMsgReq);
                    }
                }
                Ok(())
            }
            Message::WillMsg(payload) if self.state == State::WaitWillMsg => {
                self.finish_connect_with(now, Some(payload), out).await
            }
            Message::Disconnect { duration } => self.handle_disconnect(now, duration, out).await,
            Message::PingReq { client_id } => {
                self.handle_ping(now, client_id, out).await;
                Ok(())
            }
            other if self.conn.is_none() => {
                Counters::bump(&self.ctx.counters.unexpected);
                tracing::debug!(peer = %self.peer, msg = other.name(), "MQTT-SN message before CONNECT dropped");
                Ok(())
            }
            other => self.handle_connected(now, other, out).await,
        }
    }

    async fn handle_connect(&mut self, now: Instant, c: Connect, out: &mut Vec<Message>) -> Result<(), End> {
        if c.client_id.is_empty() {
            out.push(Message::ConnAck { rc: ReturnCode::NotSupported });
            return Err(end("CONNECT with an empty client id"));
        }
        // A CONNECT while asleep or awake with clean session off resumes the same
        // connection (§6.14: the client is active again).
        if let Some(conn) = &self.conn
            && matches!(self.state, State::Asleep | State::Awake | State::Active)
            && !c.flags.clean_session
            && !c.flags.will
            && conn.client_id().as_str() == c.client_id
        {
            conn.set_queue_limit(None);
            self.keep_alive = Duration::from_secs(u64::from(c.duration));
            self.state = State::Active;
            self.sleep_deadline = None;
            out.push(Message::ConnAck { rc: ReturnCode::Accepted });
            self.resend_outstanding(now, out);
            return Ok(());
        }
        if let Some(conn) = self.conn.take() {
            // The same device connects again: its previous connection ends without a will.
            conn.disconnect(DisconnectReason::Normal).await;
        }
        self.outstanding.clear();
        let will = c.flags.will;
        self.pending = Some(PendingConnect { connect: c, will_topic: None, since: now });
        if will {
            self.state = State::WaitWillTopic;
            out.push(Message::WillTopicReq);
            Ok(())
        } else {
            self.finish_connect(now, out).await
        }
    }

    async fn finish_connect(&mut self, now: Instant, out: &mut Vec<Message>) -> Result<(), End> {
        self.finish_connect_with(now, None, out).await
    }

    async fn finish_connect_with(
        &mut self,
        now: Instant,
        will_msg: Option<Bytes>,
        out: &mut Vec<Message>,
    ) -> Result<(), End> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let will = match (p.will_topic, will_msg) {
            (Some(w), Some(payload)) => Some(self.will(&w, payload)),
            _ => None,
        };
        let clean = p.connect.flags.clean_session;
        let req = ConnectRequest {
            client_id: ClientId::new(p.connect.client_id.as_str()),
            protocol: Protocol::MqttSn,
            peer: Some(self.peer),
            username: None,
            password: None,
            clean_start: clean,
            keep_alive: p.connect.duration,
            will,
            session_expiry: if clean { Some(Duration::ZERO) } else { None },
            receive_maximum: self.ctx.settings.max_inflight,
        };
        match self.ctx.broker.connect(req).await {
            Ok(conn) => {
                let resumed = conn.session_present();
                self.client_id = Some(conn.client_id().clone());
                self.conn = Some(Arc::new(conn));
                self.keep_alive = Duration::from_secs(u64::from(p.connect.duration));
                self.state = State::Active;
                self.sleep_deadline = None;
                if clean {
                    self.topics.clear();
                    self.subscriptions.clear();
                }
                out.push(Message::ConnAck { rc: ReturnCode::Accepted });
                if resumed && self.ctx.settings.subs_resume {
                    self.reregister_subscriptions(now, out);
                }
                Ok(())
            }
            Err(e) => {
                let rc = match e {
                    ConnectError::ServerBusy | ConnectError::ShuttingDown => ReturnCode::Congestion,
                    ConnectError::BadCredentials | ConnectError::NotAuthorized => ReturnCode::NotSupported,
                };
                Counters::bump(&self.ctx.counters.rejected_clients);
                out.push(Message::ConnAck { rc });
                Err(end(format!("connect refused: {e}")))
            }
        }
    }

    /// A will topic must be a topic name the broker would accept from a publish.
    pub(super) fn will_topic_ok(&self, topic: &str) -> bool {
        let mounted = self.ctx.topics.mountpoint.mount(topic);
        roost_core::topic::validate_name(&mounted, self.ctx.broker.settings()).is_ok()
    }

    fn will(&self, w: &WillTopic, payload: Bytes) -> Will {
        let qos = match w.flags.qos {
            SnQos::AtLeastOnce => QoS::AtLeastOnce,
            SnQos::ExactlyOnce => QoS::ExactlyOnce,
            _ => QoS::AtMostOnce,
        };
        let topic = self.ctx.topics.mountpoint.mount(&w.topic);
        Will { message: roost_core::Message::new(topic, payload, qos, w.flags.retain), delay: Duration::ZERO }
    }

    async fn handle_disconnect(
        &mut self,
        now: Instant,
        duration: Option<u16>,
        out: &mut Vec<Message>,
    ) -> Result<(), End> {
        let Some(conn) = self.conn.clone() else {
            out.push(Message::Disconnect { duration: None });
            return Err(end("DISCONNECT without a connection"));
        };
        match duration {
            Some(d) if d > 0 => {
                // §6.14: asleep for d seconds; the gateway buffers its messages.
                self.sleep_duration = Duration::from_secs(u64::from(d));
                self.sleep_deadline = Some(now + self.sleep_duration * 3 / 2);
                self.state = State::Asleep;
                conn.set_queue_limit(Some(self.ctx.settings.max_sleep_buffer));
                out.push(Message::Disconnect { duration: None });
                Ok(())
            }
            _ => {
                out.push(Message::Disconnect { duration: None });
                self.conn = None;
                conn.disconnect(DisconnectReason::Normal).await;
                Err(End::new(DisconnectReason::Normal, "DISCONNECT"))
            }
        }
    }

    async fn handle_ping(&mut self, now: Instant, client_id: Option<String>, out: &mut Vec<Message>) {
        match (self.state, client_id) {
            (State::Asleep, Some(id)) if self.client_id.as_ref().is_some_and(|c| c.as_str() == id) => {
                // §6.14: awake; what was buffered goes out, then PINGRESP.
                self.state = State::Awake;
                self.resend_outstanding(now, out);
                self.pump(now, out);
            }
            (State::Awake, _) => {
                // Still sending what was buffered; PINGRESP follows when it is done.
            }
            (State::Asleep, _) => {
                self.sleep_deadline = Some(now + self.sleep_duration * 3 / 2);
                out.push(Message::PingResp);
            }
            _ => out.push(Message::PingResp),
        }
    }

    /// Ends the session because the core asked (takeover, kick, shutdown) or the driver
    /// stops: tells the client with DISCONNECT.
    pub async fn close(&mut self, reason: DisconnectReason, out: &mut Vec<Message>) -> End {
        if let Some(conn) = self.conn.take() {
            out.push(Message::Disconnect { duration: None });
            conn.disconnect(reason).await;
        }
        End::new(reason, format!("closed by the broker: {reason:?}"))
    }
}
