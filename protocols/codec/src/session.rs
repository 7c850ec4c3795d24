//! Session layer: one device between its codec and the broker. The driver feeds it input
//! (stream bytes or datagrams), deliveries and timeouts, in order, from the device's one
//! task; it calls the codec (every call panic-contained), turns [`Uplink`] frames into
//! adapter API calls and [`Downlink`] answers into bytes in [`Device::out`].
//!
//! Keep alive: any input resets it; 1.5x the device's keep alive without input (or the
//! listener's `idle_timeout` when it asked for none) closes the connection, as in MQTT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use roost_core::trace::Direction;
use roost_core::{
    Broker, ClientId, ConnectError, ConnectRequest, Connection, Delivery, DisconnectReason, Message, Protocol,
    PublishError, QoS, SubOptions, SubscribeError, Will,
};

use crate::codec::{Codec, CodecError, CodecFactory};
use crate::frame::{CloseReason, ConnectFrame, Downlink, Refused, Uplink};
use crate::guard::contain;
use crate::settings::CodecListenerSettings;

/// Timers one connection's codec may have running at once.
pub const MAX_TIMERS: usize = 16;

/// What every device of one listener shares.
pub struct Listener {
    pub broker: Broker,
    pub settings: CodecListenerSettings,
    pub factory: Arc<dyn CodecFactory>,
    /// The codec's registered name: the protocol name of these devices in listings.
    pub protocol_name: Arc<str>,
}

/// Why a device's connection ends: the one `End` of every datagram session.
pub type Close = roost_core::datagram::End;

fn abnormal(why: impl Into<String>) -> Close {
    Close::new(DisconnectReason::Abnormal, why)
}

/// One device's connection.
pub struct Device {
    listener: Arc<Listener>,
    peer: SocketAddr,
    /// `None` once it panicked: a codec is never called again after a panic.
    codec: Option<Box<dyn Codec>>,
    conn: Option<Connection>,
    mountpoint: String,
    /// Close after this long without input.
    timeout: Duration,
    last_input: Instant,
    timers: Vec<(u32, Instant)>,
    frames: Vec<Uplink>,
    /// Encoded frames waiting to be sent, one datagram each on UDP.
    pub out: Vec<Bytes>,
}

impl Device {
    pub fn new(listener: Arc<Listener>, peer: SocketAddr, now: Instant) -> Device {
        let codec = listener.factory.new_codec();
        let timeout = listener.settings.limits.connect_timeout;
        Device {
            listener,
            peer,
            codec: Some(codec),
            conn: None,
            mountpoint: String::new(),
            timeout,
            last_input: now,
            timers: Vec::new(),
            frames: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The broker connection, once the device has connected.
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    /// The peer address replies go to (UDP: the last address the device sent from).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The `[[codec]]` listener's name, for logs.
    pub fn listener_name(&self) -> String {
        self.listener.settings.name.clone()
    }

    pub fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = peer;
    }

    /// When [`Device::on_timeout`] must next run.
    pub fn deadline(&self) -> Instant {
        let idle = self.last_input + self.timeout;
        self.timers.iter().map(|(_, at)| *at).fold(idle, Instant::min)
    }

    /// Stream input: everything received and not yet consumed is in `buf`.
    pub async fn on_stream(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), Close> {
        self.input_at(now);
        let mut frames = std::mem::take(&mut self.frames);
        let r = match self.call(|c| c.decode(buf, &mut frames)).and_then(decoded) {
            Ok(()) => self.handle(&mut frames, now).await,
            Err(c) => Err(c),
        };
        frames.clear();
        self.frames = frames;
        r?;
        let max = self.listener.settings.limits.max_frame_size;
        if buf.len() > max {
            return Err(abnormal(format!(
                "{} bytes buffered without a whole frame, over limits.max_frame_size ({max})",
                buf.len()
            )));
        }
        Ok(())
    }

    /// Datagram input: one datagram, whole frames.
    pub async fn on_datagram(&mut self, datagram: Bytes, now: Instant) -> Result<(), Close> {
        self.input_at(now);
        let mut frames = std::mem::take(&mut self.frames);
        let r = match self.call(|c| c.decode_datagram(datagram, &mut frames)).and_then(decoded) {
            Ok(()) => self.handle(&mut frames, now).await,
            Err(c) => Err(c),
        };
        frames.clear();
        self.frames = frames;
        r
    }

    /// Input resets the keep alive; before the connect it does not, so a device that
    /// trickles bytes without ever connecting is still dropped at `connect_timeout`.
    fn input_at(&mut self, now: Instant) {
        if self.conn.is_some() {
            self.last_input = now;
        }
    }

    /// Something the broker has for the device.
    pub fn on_delivery(&mut self, delivery: Delivery) -> Result<(), Close> {
        if self.conn.is_none() {
            return Ok(());
        }
        match delivery {
            Delivery::Publish { id, dup, pending } => {
                let m = &pending.message;
                let topic: Arc<str> = match m.topic.strip_prefix(self.mountpoint.as_str()) {
                    Some(rest) if !self.mountpoint.is_empty() => rest.into(),
                    _ => m.topic.clone(),
                };
                // Codec devices acknowledge with one Ack; a QoS 2 delivery (a session
                // resumed from another protocol) travels as QoS 1.
                let qos = pending.qos.min(QoS::AtLeastOnce);
                let frame =
                    Downlink::Publish { id, topic, payload: m.payload.clone(), qos, retain: pending.retain, dup };
                if !self.send(frame)? && id != 0 {
                    // Not encodable: nothing will ever acknowledge it; free its slot.
                    self.ack(id);
                }
                Ok(())
            }
            // QoS 2 release of a resumed session: codec devices have no PUBREL; done.
            Delivery::Release { id } => {
                self.ack(id);
                Ok(())
            }
            Delivery::Close(reason) => {
                let (close, why) = match reason {
                    DisconnectReason::TakenOver => (CloseReason::TakenOver, "taken over by another connection"),
                    DisconnectReason::Kicked => (CloseReason::Kicked, "kicked"),
                    _ => (CloseReason::Shutdown, "server shutting down"),
                };
                self.send(Downlink::Disconnect { reason: close })?;
                Err(Close { reason, why: why.into() })
            }
        }
    }

    fn ack(&self, id: u16) {
        if let Some(conn) = &self.conn {
            conn.ack(id);
        }
    }

    /// Keep alive, connect timeout and codec timers.
    pub async fn on_timeout(&mut self, now: Instant) -> Result<(), Close> {
        if now >= self.last_input + self.timeout {
            return match self.conn {
                None => Err(abnormal("no connect within limits.connect_timeout")),
                Some(_) => {
                    self.send(Downlink::Disconnect { reason: CloseReason::KeepAliveTimeout })?;
                    Err(abnormal("keep alive timeout"))
                }
            };
        }
        while let Some(i) = self.timers.iter().position(|(_, at)| *at <= now) {
            let (id, _) = self.timers.swap_remove(i);
            let mut frames = Vec::new();
            self.call(|c| c.on_timer(id, &mut frames)).and_then(decoded)?;
            self.handle(&mut frames, now).await?;
        }
        Ok(())
    }

    /// Ends the connection with the broker (will, session expiry, hooks).
    pub async fn finish(self, close: &Close) {
        if let Some(conn) = self.conn {
            conn.disconnect(close.reason).await;
        }
    }

    async fn handle(&mut self, frames: &mut Vec<Uplink>, now: Instant) -> Result<(), Close> {
        for frame in frames.drain(..) {
            self.handle_one(frame, now).await?;
        }
        Ok(())
    }

    async fn handle_one(&mut self, frame: Uplink, now: Instant) -> Result<(), Close> {
        self.trace(Direction::In, &frame);
        match frame {
            Uplink::Connect(c) => return self.connect(c, now).await,
            Uplink::SetTimer { id, after } => {
                self.timers.retain(|(t, _)| *t != id);
                if self.timers.len() >= MAX_TIMERS {
                    return Err(abnormal(format!("codec asked for more than {MAX_TIMERS} timers")));
                }
                self.timers.push((id, now + after));
                return Ok(());
            }
            Uplink::CancelTimer { id } => {
                self.timers.retain(|(t, _)| *t != id);
                return Ok(());
            }
            _ => {}
        }
        let Some(conn) = &self.conn else {
            return Err(abnormal(format!("{} before connect", uplink_name(&frame))));
        };
        match frame {
            Uplink::Publish { id, topic, payload, qos, retain } => {
                let topic = format!("{}{topic}", self.mountpoint);
                let result =
                    conn.publish(Message::new(topic, payload, qos, retain)).await.map(|_| ()).map_err(|e| match e {
                        PublishError::InvalidTopic(_) => Refused::InvalidTopic,
                        PublishError::NotAuthorized => Refused::NotAuthorized,
                        PublishError::QuotaExceeded(_) => Refused::QuotaExceeded,
                        // Routed but not durable: not acknowledged, so the device retries.
                        PublishError::Store(_) => Refused::ServerBusy,
                    });
                self.send(Downlink::PubAck { id, result })?;
            }
            Uplink::Subscribe { id, filter, qos } => {
                let qos = qos.min(QoS::AtLeastOnce);
                let filter = mount_filter(&self.mountpoint, &filter);
                let options = SubOptions { qos, ..Default::default() };
                let result = conn.subscribe(&filter, options).await.map(|_| qos).map_err(subscribe_refused);
                self.send(Downlink::SubAck { id, result })?;
            }
            Uplink::Unsubscribe { id, filter } => {
                let filter = mount_filter(&self.mountpoint, &filter);
                // An invalid filter was never subscribed: nothing to remove either way.
                let _ = conn.unsubscribe(&filter).await;
                self.send(Downlink::UnsubAck { id })?;
            }
            Uplink::Ack { id } => {
                conn.ack(id);
            }
            Uplink::Ping => {
                self.send(Downlink::Pong)?;
            }
            Uplink::Disconnect => {
                return Err(Close { reason: DisconnectReason::Normal, why: "device disconnected".into() });
            }
            Uplink::Connect(_) | Uplink::SetTimer { .. } | Uplink::CancelTimer { .. } => {}
        }
        Ok(())
    }

    async fn connect(&mut self, c: ConnectFrame, now: Instant) -> Result<(), Close> {
        if self.conn.is_some() {
            return Err(abnormal("a second connect on one connection"));
        }
        if c.client_id.is_empty() {
            return Err(abnormal("connect with an empty client id"));
        }
        let mountpoint = self
            .listener
            .settings
            .mountpoint
            .replace("${clientid}", &c.client_id)
            .replace("${username}", c.username.as_deref().unwrap_or(""));
        let will = c.will.map(|w| Will {
            message: Message::new(format!("{mountpoint}{}", w.topic), w.payload, w.qos, w.retain),
            delay: Duration::ZERO,
        });
        let broker = &self.listener.broker;
        let request = ConnectRequest {
            client_id: ClientId::new(c.client_id.as_str()),
            protocol: Protocol::Codec,
            peer: Some(self.peer),
            username: c.username,
            password: c.password,
            clean_start: c.clean_start,
            keep_alive: c.keep_alive,
            will,
            session_expiry: if c.clean_start { Some(Duration::ZERO) } else { c.session_expiry },
            receive_maximum: broker.settings().max_inflight,
        };
        match broker.connect_as(request, self.listener.protocol_name.clone()).await {
            Ok(conn) => {
                let session_present = conn.session_present();
                self.conn = Some(conn);
                self.mountpoint = mountpoint;
                self.timeout = match c.keep_alive {
                    0 => self.listener.settings.limits.idle_timeout,
                    k => Duration::from_millis(u64::from(k) * 1500),
                };
                self.last_input = now;
                self.send(Downlink::ConnAck { result: Ok(()), session_present })?;
                Ok(())
            }
            Err(e) => {
                let refused = match e {
                    ConnectError::BadCredentials => Refused::BadCredentials,
                    ConnectError::NotAuthorized => Refused::NotAuthorized,
                    ConnectError::ServerBusy => Refused::ServerBusy,
                    ConnectError::ShuttingDown => Refused::ShuttingDown,
                };
                self.send(Downlink::ConnAck { result: Err(refused), session_present: false })?;
                Err(Close { reason: DisconnectReason::Normal, why: format!("connect refused: {e}") })
            }
        }
    }

    /// Writes a frame to the running traces of this device's client id (one atomic load when
    /// none runs). Frames before the connect (the CONNECT with its credentials among them)
    /// have no client id yet and are not traced.
    fn trace(&self, direction: Direction, frame: &dyn std::fmt::Debug) {
        let tracer = self.listener.broker.tracer();
        if let Some(conn) = &self.conn
            && tracer.is_active()
        {
            let info = conn.info();
            tracer.packet(info.protocol_name(), info.client_id.as_str(), Some(self.peer), direction, None, frame);
        }
    }

    /// Encodes `frame` into [`Device::out`]. Ok(false): the codec could not encode it
    /// (logged; the frame is dropped, the connection stays).
    fn send(&mut self, frame: Downlink) -> Result<bool, Close> {
        self.trace(Direction::Out, &frame);
        let mut buf = BytesMut::new();
        match self.call(|c| c.encode(frame, &mut buf))? {
            Ok(()) => {
                if !buf.is_empty() {
                    self.listener.broker.metrics().bytes_out(Protocol::Codec, buf.len());
                    self.out.push(buf.freeze());
                }
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(listener = %self.listener.settings.name, peer = %self.peer, error = %e, "codec could not encode a frame; dropped");
                Ok(false)
            }
        }
    }

    /// Calls the codec with panics contained: a panic is `Err` (and the codec is never
    /// called again); the codec's own result is passed on.
    fn call(
        &mut self,
        f: impl FnOnce(&mut dyn Codec) -> Result<(), CodecError>,
    ) -> Result<Result<(), CodecError>, Close> {
        let Some(codec) = self.codec.as_deref_mut() else {
            return Err(abnormal("codec unusable after a panic"));
        };
        match contain(|| f(codec)) {
            Ok(r) => Ok(r),
            Err(panic) => {
                self.codec = None;
                tracing::error!(
                    listener = %self.listener.settings.name,
                    codec = %self.listener.protocol_name,
                    peer = %self.peer,
                    panic = %panic,
                    "codec panicked; closing this connection only"
                );
                Err(abnormal(format!("codec panicked: {panic}")))
            }
        }
    }
}

/// A decoding error closes the connection as a protocol violation (the will is published).
fn decoded(r: Result<(), CodecError>) -> Result<(), Close> {
    r.map_err(|e| abnormal(format!("codec error: {e}")))
}

fn subscribe_refused(e: SubscribeError) -> Refused {
    match e {
        SubscribeError::InvalidFilter(_) | SubscribeError::NoLocalOnShared => Refused::InvalidTopic,
        SubscribeError::NotAuthorized => Refused::NotAuthorized,
        SubscribeError::QuotaExceeded(_) => Refused::QuotaExceeded,
    }
}

/// `mountpoint` in front of a filter; inside a shared subscription, after its group.
fn mount_filter(mountpoint: &str, filter: &str) -> String {
    if let Some(rest) = filter.strip_prefix("$share/")
        && let Some((group, f)) = rest.split_once('/')
    {
        return format!("$share/{group}/{mountpoint}{f}");
    }
    format!("{mountpoint}{filter}")
}

fn uplink_name(frame: &Uplink) -> &'static str {
    match frame {
        Uplink::Connect(_) => "connect",
        Uplink::Publish { .. } => "publish",
        Uplink::Subscribe { .. } => "subscribe",
        Uplink::Unsubscribe { .. } => "unsubscribe",
        Uplink::Ack { .. } => "ack",
        Uplink::Ping => "ping",
        Uplink::Disconnect => "disconnect",
        Uplink::SetTimer { .. } => "set timer",
        Uplink::CancelTimer { .. } => "cancel timer",
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
