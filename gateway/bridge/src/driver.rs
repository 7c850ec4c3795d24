//! Driver layer: one task per bridge. Each attempt connects upstream, attaches the local
//! persistent session, forwards both ways until either side fails, then detaches the local
//! session (so the core queues, and later resends what was unconfirmed) and retries with
//! exponential backoff and jitter.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use roost_core::{
    Broker, ClientId, ConnectRequest, Connection, Delivery, DisconnectReason, Message, Protocol, QoS, SubOptions,
};
use roost_mqtt::codec::{
    Ack, Connect, ConnectProperties, MqttCodec, Packet, ProtocolVersion, Publish, PublishProperties, RetainHandling,
    Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::mapping;
use crate::settings::{BridgeSettings, MqttVersion};

/// Largest packet accepted from the upstream.
const MAX_INCOMING: usize = 16 * 1024 * 1024;

/// What a bridge is doing, for metrics, `$SYS` and the HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeStatus {
    pub connected: bool,
    /// Connection attempts, successful or not.
    pub attempts: u64,
    pub connects: u64,
    pub last_error: Option<String>,
    /// Messages sent upstream and confirmed (QoS 1/2) or written (QoS 0).
    pub forwarded_out: u64,
    /// Messages received from upstream and published locally.
    pub forwarded_in: u64,
}

/// Starts the bridge task; it runs until `shutdown` fires.
pub fn spawn(
    settings: BridgeSettings,
    broker: Broker,
    shutdown: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) -> Arc<Mutex<BridgeStatus>> {
    let status = Arc::new(Mutex::new(BridgeStatus::default()));
    let s = status.clone();
    tracker.spawn(async move { run(settings, broker, shutdown, s).await });
    status
}

async fn run(settings: BridgeSettings, broker: Broker, shutdown: CancellationToken, status: Arc<Mutex<BridgeStatus>>) {
    let mut failures = 0u32;
    // A session restored from the store gets its capacity before the link is ever up.
    let local = ClientId::new(settings.local_client_id());
    broker.set_queue_capacity(&local, Some(settings.max_queued));
    loop {
        status.lock().attempts += 1;
        let result = tokio::select! {
            r = attempt(&settings, &broker, &status, &shutdown) => r,
            _ = shutdown.cancelled() => return,
        };
        status.lock().connected = false;
        match result {
            Ok(()) => return, // shutdown during the attempt
            Err(Failure { error, was_up }) => {
                if was_up {
                    failures = 0;
                }
                tracing::warn!(bridge = %settings.name, upstream = %settings.address, error = %error, "bridge link down");
                status.lock().last_error = Some(error);
            }
        }
        let delay = backoff(&settings, failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Exponential from `reconnect_min` to `reconnect_max`, with ±20 % jitter so many bridges
/// do not reconnect in step.
fn backoff(s: &BridgeSettings, failures: u32) -> Duration {
    let base = s.reconnect_min.saturating_mul(1u32 << failures.min(16)).min(s.reconnect_max);
    base.mul_f64(rand::random_range(0.8..1.2))
}

struct Failure {
    error: String,
    /// The link had come up (so the backoff starts over).
    was_up: bool,
}

fn fail(error: impl std::fmt::Display, was_up: bool) -> Failure {
    Failure { error: error.to_string(), was_up }
}

/// The upstream byte stream: plain TCP or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

type Link = Framed<Box<dyn Stream>, MqttCodec>;

/// One connection to the upstream broker, from TCP connect to its end: `Ok` at shutdown.
async fn attempt(
    s: &BridgeSettings,
    broker: &Broker,
    status: &Mutex<BridgeStatus>,
    shutdown: &CancellationToken,
) -> Result<(), Failure> {
    let version = match s.version {
        MqttVersion::V311 => ProtocolVersion::V311,
        MqttVersion::V5 => ProtocolVersion::V5,
    };
    let (mut link, upstream_window) = connect_upstream(s, version).await?;
    let conn = local_session(s, broker, upstream_window).await?;
    subscribe_upstream(s, &mut link, version).await?;
    {
        let mut st = status.lock();
        st.connected = true;
        st.connects += 1;
        st.last_error = None;
    }
    tracing::info!(bridge = %s.name, upstream = %s.address, session_present = conn.session_present(), "bridge connected");
    let result = forward(s, &mut link, &conn, status, shutdown).await;
    let reason = if result.is_ok() { DisconnectReason::Normal } else { DisconnectReason::Abnormal };
    if result.is_ok() {
        let _ = link.send(Packet::Disconnect(Default::default())).await;
    }
    conn.disconnect(reason).await;
    result
}

/// TCP (and TLS) to the upstream broker, CONNECT, CONNACK: the link and the upstream's
/// receive maximum.
async fn connect_upstream(s: &BridgeSettings, version: ProtocolVersion) -> Result<(Link, u16), Failure> {
    let stream = timeout(s.connect_timeout, TcpStream::connect(&s.address))
        .await
        .map_err(|_| fail("connect timed out", false))?
        .map_err(|e| fail(format!("connect: {e}"), false))?;
    let _ = stream.set_nodelay(true);
    let stream: Box<dyn Stream> = match &s.tls {
        None => Box::new(stream),
        Some(tls) => Box::new(
            timeout(s.connect_timeout, crate::tls::handshake(tls, &s.address, stream))
                .await
                .map_err(|_| fail("TLS handshake timed out", false))?
                .map_err(|e| fail(e, false))?,
        ),
    };
    let mut link = Framed::new(stream, MqttCodec { version, max_incoming: MAX_INCOMING });
    let connect = Connect {
        protocol: version,
        clean_start: s.clean_start,
        keep_alive: u16::try_from(s.keep_alive.as_secs()).unwrap_or(u16::MAX),
        properties: ConnectProperties {
            session_expiry_interval: version
                .is_v5()
                .then(|| s.session_expiry.map_or(u32::MAX, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))),
            receive_maximum: version.is_v5().then_some(s.max_inflight.max(1)),
            ..Default::default()
        },
        client_id: s.client_id.clone(),
        will: None,
        username: s.username.clone(),
        password: s.password.clone().map(Into::into),
    };
    link.send(Packet::Connect(Box::new(connect))).await.map_err(|e| fail(format!("send CONNECT: {e}"), false))?;
    let upstream_window = match timeout(s.connect_timeout, link.next()).await {
        Ok(Some(Ok(Packet::ConnAck(a)))) if a.code == 0 => a.properties.receive_maximum.unwrap_or(u16::MAX),
        Ok(Some(Ok(Packet::ConnAck(a)))) => {
            return Err(fail(format!("upstream refused the connection (code 0x{:02X})", a.code), false));
        }
        Ok(Some(Ok(p))) => return Err(fail(format!("expected CONNACK, got {}", p.name()), false)),
        Ok(Some(Err(e))) => return Err(fail(format!("reading CONNACK: {e}"), false)),
        Ok(None) => return Err(fail("upstream closed the connection before CONNACK", false)),
        Err(_) => return Err(fail("no CONNACK in time", false)),
    };
    Ok((link, upstream_window))
}

/// The local side: a persistent session whose queue is the store-and-forward buffer,
/// subscribed to the topics that go upstream.
async fn local_session(s: &BridgeSettings, broker: &Broker, upstream_window: u16) -> Result<Connection, Failure> {
    let conn = broker
        .connect_as(
            ConnectRequest {
                client_id: ClientId::new(s.local_client_id()),
                protocol: Protocol::Mqtt,
                peer: None,
                username: None,
                password: None,
                clean_start: false,
                keep_alive: 0,
                will: None,
                session_expiry: None,
                receive_maximum: s.max_inflight.min(upstream_window).max(1),
            },
            "bridge".into(),
        )
        .await
        .map_err(|e| fail(format!("local session: {e}"), false))?;
    broker.set_queue_capacity(conn.client_id(), Some(s.max_queued));
    for (filter, rule) in mapping::local_filters(&s.topics) {
        let options = SubOptions {
            qos: rule.qos,
            no_local: true,
            retain_as_published: true,
            retain_handling: 1,
            subscription_id: None,
        };
        if let Err(e) = conn.subscribe(&filter, options).await {
            tracing::warn!(bridge = %s.name, filter, error = %e, "bridge: local subscription refused");
        }
    }
    Ok(conn)
}

/// SUBSCRIBE upstream to the topics that come down (none: nothing sent).
async fn subscribe_upstream(s: &BridgeSettings, link: &mut Link, version: ProtocolVersion) -> Result<(), Failure> {
    let filters: Vec<SubscribeFilter> = mapping::remote_filters(&s.topics)
        .map(|(filter, rule)| SubscribeFilter {
            filter,
            options: SubscriptionOptions {
                qos: rule.qos,
                no_local: version.is_v5(),
                retain_as_published: true,
                retain_handling: RetainHandling::SendAtSubscribe,
            },
        })
        .collect();
    if !filters.is_empty() {
        let sub = Subscribe { packet_id: 1, subscription_identifier: None, user_properties: Vec::new(), filters };
        link.send(Packet::Subscribe(sub)).await.map_err(|e| fail(format!("send SUBSCRIBE: {e}"), true))?;
    }
    Ok(())
}

/// Forwards until the link fails (Err) or shutdown (Ok).
async fn forward(
    s: &BridgeSettings,
    link: &mut Link,
    conn: &Connection,
    status: &Mutex<BridgeStatus>,
    shutdown: &CancellationToken,
) -> Result<(), Failure> {
    let v5 = link.codec().version.is_v5();
    let keep_alive = s.keep_alive.max(Duration::from_secs(1));
    let mut next_ping = Instant::now() + keep_alive;
    let mut awaiting_pong: Option<Instant> = None;
    let gap = (s.rate > 0).then(|| Duration::from_secs(1) / s.rate);
    let mut send_at = Instant::now();
    loop {
        let may_send = Instant::now() >= send_at;
        tokio::select! {
            packet = link.next() => {
                let packet = match packet {
                    Some(Ok(p)) => p,
                    Some(Err(e)) => return Err(fail(format!("upstream: {e}"), true)),
                    None => return Err(fail("upstream closed the connection", true)),
                };
                handle_upstream(s, link, conn, status, packet, v5).await?;
                awaiting_pong = None;
            }
            d = conn.next_delivery(), if may_send => {
                match d {
                    Delivery::Publish { id, dup, pending } => {
                        let m = &pending.message;
                        let Some(topic) = mapping::to_remote(&s.topics, &m.topic) else {
                            // Matched a filter but no rule maps it (a prefix overlap): drop it.
                            conn.ack(id);
                            continue;
                        };
                        let properties = match v5 {
                            true => roost_mqtt::properties::of(m, std::time::Instant::now(), Vec::new()),
                            false => PublishProperties::default(),
                        };
                        let publish = Publish { dup, qos: pending.qos, retain: pending.retain, topic, packet_id: id, properties, payload: m.payload.clone() };
                        link.send(Packet::Publish(publish)).await.map_err(|e| fail(format!("send PUBLISH: {e}"), true))?;
                        if pending.qos == QoS::AtMostOnce {
                            status.lock().forwarded_out += 1;
                        }
                        if let Some(gap) = gap {
                            send_at = Instant::now() + gap;
                        }
                    }
                    Delivery::Release { id } => {
                        link.send(Packet::PubRel(Ack { packet_id: id, ..Default::default() })).await.map_err(|e| fail(format!("send PUBREL: {e}"), true))?;
                    }
                    Delivery::Close(_) => return Ok(()),
                }
            }
            _ = sleep_until(send_at), if !may_send => {}
            _ = sleep_until(next_ping) => {
                if let Some(since) = awaiting_pong && since.elapsed() >= keep_alive {
                    return Err(fail("upstream did not answer PINGREQ", true));
                }
                link.send(Packet::PingReq).await.map_err(|e| fail(format!("send PINGREQ: {e}"), true))?;
                awaiting_pong.get_or_insert_with(Instant::now);
                next_ping = Instant::now() + keep_alive;
            }
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

async fn handle_upstream(
    s: &BridgeSettings,
    link: &mut Link,
    conn: &Connection,
    status: &Mutex<BridgeStatus>,
    packet: Packet,
    v5: bool,
) -> Result<(), Failure> {
    let reply = match packet {
        Packet::PubAck(a) | Packet::PubComp(a) => {
            if conn.ack(a.packet_id) {
                status.lock().forwarded_out += 1;
            }
            None
        }
        Packet::PubRec(a) if a.reason >= 0x80 => {
            conn.ack(a.packet_id);
            None
        }
        Packet::PubRec(a) => {
            conn.received(a.packet_id);
            Some(Packet::PubRel(Ack { packet_id: a.packet_id, ..Default::default() }))
        }
        Packet::Publish(p) => inbound(s, conn, status, p, v5).await?,
        Packet::PubRel(a) => {
            conn.release(a.packet_id);
            conn.sync().await.map_err(|e| fail(e, true))?;
            Some(Packet::PubComp(Ack { packet_id: a.packet_id, ..Default::default() }))
        }
        Packet::SubAck(a) => {
            for (i, code) in a.reasons.iter().enumerate() {
                if *code >= 0x80 {
                    tracing::warn!(bridge = %s.name, filter_index = i, code, "bridge: upstream refused a subscription");
                }
            }
            None
        }
        Packet::Disconnect(d) => return Err(fail(format!("upstream sent DISCONNECT 0x{:02X}", d.reason), true)),
        Packet::PingResp | Packet::UnsubAck(_) | Packet::Auth(_) => None,
        other => return Err(fail(format!("unexpected {} from upstream", other.name()), true)),
    };
    if let Some(p) = reply {
        link.send(p).await.map_err(|e| fail(format!("send to upstream: {e}"), true))?;
    }
    Ok(())
}

/// An upstream message: published locally under its mapped topic, acknowledged upstream
/// once that is done (and durable).
async fn inbound(
    s: &BridgeSettings,
    conn: &Connection,
    status: &Mutex<BridgeStatus>,
    p: Publish,
    v5: bool,
) -> Result<Option<Packet>, Failure> {
    let ack = |id: u16| Ack { packet_id: id, ..Default::default() };
    let Some(topic) = mapping::to_local(&s.topics, &p.topic) else {
        tracing::debug!(bridge = %s.name, topic = %p.topic, "bridge: upstream message matches no rule");
        return Ok(match p.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Packet::PubAck(ack(p.packet_id))),
            QoS::ExactlyOnce => Some(Packet::PubRec(ack(p.packet_id))),
        });
    };
    let mut msg = Message::new(topic, p.payload, p.qos, p.retain);
    if v5 {
        roost_mqtt::properties::apply(&mut msg, p.properties);
    }
    if p.qos == QoS::ExactlyOnce {
        match conn.begin_exactly_once(p.packet_id) {
            Ok(true) => {}
            Ok(false) => return Ok(Some(Packet::PubRec(ack(p.packet_id)))),
            Err(e) => return Err(fail(format!("inbound QoS 2: {e}"), true)),
        }
    }
    match conn.publish(msg).await {
        Ok(_) => status.lock().forwarded_in += 1,
        Err(roost_core::PublishError::Store(e)) => return Err(fail(e, true)),
        Err(e) => tracing::warn!(bridge = %s.name, error = %e, "bridge: inbound message refused locally"),
    }
    Ok(match p.qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce => Some(Packet::PubAck(ack(p.packet_id))),
        QoS::ExactlyOnce => Some(Packet::PubRec(ack(p.packet_id))),
    })
}
