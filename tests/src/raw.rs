//! A raw MQTT client over TCP for byte-level tests: it sends exactly the packets (encoded by
//! rumqttc's `mqttbytes`) or bytes a test gives it, never acknowledges anything by itself, and
//! reports exactly what comes back, including the connection closing.
//!
//! Framing is done here rather than by rumqttc's `Packet::read`, which rejects the valid short
//! forms of a v5 DISCONNECT (remaining length 0 or 1, MQTT 5.0 §3.14.2.1).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};

use crate::WAIT;

/// Why no packet was returned.
#[derive(Debug)]
pub enum RecvError {
    /// Nothing complete arrived in time; the connection is still open.
    Timeout,
    /// The peer closed the connection (FIN or RST).
    Closed,
    Io(io::Error),
    /// The peer sent bytes that are not a valid MQTT packet.
    Decode(String),
}

/// One complete MQTT control packet as received: fixed header and all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Bytes,
}

impl Frame {
    /// MQTT control packet type (high nibble of the first byte).
    pub fn packet_type(&self) -> u8 {
        self.bytes[0] >> 4
    }

    pub fn decode_v4(&self) -> Result<v4::Packet, RecvError> {
        let mut buf = BytesMut::from(&self.bytes[..]);
        v4::read(&mut buf, usize::MAX).map_err(|e| RecvError::Decode(format!("{e:?} in {:02x?}", &self.bytes[..])))
    }

    pub fn decode_v5(&self) -> Result<v5::Packet, RecvError> {
        // DISCONNECT may stop after the reason code (remaining length 1) or omit it too
        // (remaining length 0, reason 0x00); rumqttc rejects both short forms.
        match self.bytes[..] {
            [0xE0, 0x00] => {
                let normal = v5::DisconnectReasonCode::NormalDisconnection;
                return Ok(v5::Packet::Disconnect(v5::Disconnect::new(normal)));
            }
            [0xE0, 0x01, code] => {
                let reason = v5::DisconnectReasonCode::try_from(code)
                    .map_err(|e| RecvError::Decode(format!("DISCONNECT reason {code:#04x}: {e:?}")))?;
                return Ok(v5::Packet::Disconnect(v5::Disconnect::new(reason)));
            }
            _ => {}
        }
        let mut buf = BytesMut::from(&self.bytes[..]);
        v5::Packet::read(&mut buf, None).map_err(|e| RecvError::Decode(format!("{e:?} in {:02x?}", &self.bytes[..])))
    }
}

pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    /// Opens a TCP connection and sends nothing.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        match tokio::time::timeout(WAIT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => RawClient::from_stream(stream),
            Ok(Err(err)) => panic!("TCP connect to {addr}: {err}"),
            Err(_) => panic!("TCP connect to {addr}: timed out"),
        }
    }

    /// Opens a TCP connection with a small receive buffer, so a client that never reads
    /// makes the broker's sends stall quickly.
    pub async fn connect_with_recv_buffer(addr: SocketAddr, bytes: u32) -> RawClient {
        let socket = TcpSocket::new_v4().expect("TCP socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        match tokio::time::timeout(WAIT, socket.connect(addr)).await {
            Ok(Ok(stream)) => RawClient::from_stream(stream),
            Ok(Err(err)) => panic!("TCP connect to {addr}: {err}"),
            Err(_) => panic!("TCP connect to {addr}: timed out"),
        }
    }

    fn from_stream(stream: TcpStream) -> RawClient {
        let _ = stream.set_nodelay(true);
        RawClient { stream, buf: BytesMut::with_capacity(4096) }
    }

    /// Connects and completes an MQTT 3.1.1 CONNECT / CONNACK exchange.
    pub async fn connect_v4(addr: SocketAddr, connect: v4::Connect) -> (RawClient, v4::ConnAck) {
        let mut client = RawClient::connect(addr).await;
        client.send_v4(&v4::Packet::Connect(connect)).await;
        match client.recv_v4(WAIT).await {
            v4::Packet::ConnAck(ack) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects and completes an MQTT 5.0 CONNECT / CONNACK exchange.
    pub async fn connect_v5(
        addr: SocketAddr,
        connect: v5::Connect,
        will: Option<v5::LastWill>,
    ) -> (RawClient, v5::ConnAck) {
        let mut client = RawClient::connect(addr).await;
        client.send_v5(&v5::Packet::Connect(connect, will, None)).await;
        match client.recv_v5(WAIT).await {
            v5::Packet::ConnAck(ack) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Writes raw bytes. Errors are returned, not panicked on: a broker may rightly close
    /// the connection while a test is still sending garbage.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    pub async fn send_v4(&mut self, packet: &v4::Packet) {
        let buf = encode_v4(packet);
        if let Err(err) = self.send_bytes(&buf).await {
            panic!("send {packet:?}: {err}");
        }
    }

    pub async fn send_v5(&mut self, packet: &v5::Packet) {
        let buf = encode_v5(packet);
        if let Err(err) = self.send_bytes(&buf).await {
            panic!("send {packet:?}: {err}");
        }
    }

    /// Closes our side for writing (TCP FIN) but keeps reading.
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// The next complete packet, waiting at most `wait`.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Frame, RecvError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(frame) = take_frame(&mut self.buf)? {
                return Ok(frame);
            }
            match timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(RecvError::Timeout),
                Ok(Ok(0)) => return Err(RecvError::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(err)) if is_reset(&err) => return Err(RecvError::Closed),
                Ok(Err(err)) => return Err(RecvError::Io(err)),
            }
        }
    }

    pub async fn try_recv_v4(&mut self, wait: Duration) -> Result<v4::Packet, RecvError> {
        self.next_frame(wait).await?.decode_v4()
    }

    pub async fn try_recv_v5(&mut self, wait: Duration) -> Result<v5::Packet, RecvError> {
        self.next_frame(wait).await?.decode_v5()
    }

    /// The next packet; panics if none arrives within `wait`.
    pub async fn recv_v4(&mut self, wait: Duration) -> v4::Packet {
        match self.try_recv_v4(wait).await {
            Ok(packet) => packet,
            Err(err) => panic!("expected an MQTT 3.1.1 packet within {wait:?}: {err:?}"),
        }
    }

    /// The next packet; panics if none arrives within `wait`.
    pub async fn recv_v5(&mut self, wait: Duration) -> v5::Packet {
        match self.try_recv_v5(wait).await {
            Ok(packet) => packet,
            Err(err) => panic!("expected an MQTT 5.0 packet within {wait:?}: {err:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub async fn expect_publish_v4(&mut self, wait: Duration) -> v4::Publish {
        match self.recv_v4(wait).await {
            v4::Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub async fn expect_publish_v5(&mut self, wait: Duration) -> v5::Publish {
        match self.recv_v5(wait).await {
            v5::Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives (and the connection stays open) for `quiet`.
    pub async fn assert_silent(&mut self, quiet: Duration) {
        match self.next_frame(quiet).await {
            Err(RecvError::Timeout) => {}
            Ok(frame) => panic!("expected nothing for {quiet:?}, got {:02x?}", &frame.bytes[..]),
            Err(err) => panic!("expected nothing for {quiet:?}, got {err:?}"),
        }
    }

    /// Waits until the broker closes the connection and returns what it sent before; panics
    /// if it is still open after `wait`.
    pub async fn expect_close(&mut self, wait: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            match self.next_frame(deadline.saturating_duration_since(Instant::now())).await {
                Ok(frame) => frames.push(frame),
                Err(RecvError::Closed) => return frames,
                // Garbage from the broker after a close decision still counts as closing.
                Err(RecvError::Decode(_)) => {}
                Err(RecvError::Timeout) => {
                    panic!("connection still open after {wait:?} (received {frames:02x?})")
                }
                Err(RecvError::Io(err)) => panic!("read error while waiting for close: {err}"),
            }
        }
    }

    /// Waits for the broker to close an MQTT 5.0 connection and returns the DISCONNECT it
    /// sent first, if any. Any packet other than DISCONNECT fails the test; so does a reason
    /// string that is present but empty.
    pub async fn expect_close_v5(&mut self, wait: Duration) -> Option<v5::Disconnect> {
        let frames = self.expect_close(wait).await;
        let mut disconnect = None;
        for frame in frames {
            match frame.decode_v5() {
                Ok(v5::Packet::Disconnect(d)) => disconnect = Some(d),
                other => panic!("expected only DISCONNECT before close, got {other:?}"),
            }
        }
        if let Some(reason) = disconnect.as_ref().and_then(|d| d.properties.as_ref()?.reason_string.as_ref()) {
            assert!(!reason.is_empty(), "a reason string, when sent, says something");
        }
        disconnect
    }

    /// [`RawClient::expect_close_v5`], returning only the reason code.
    pub async fn expect_close_reason_v5(&mut self, wait: Duration) -> Option<v5::DisconnectReasonCode> {
        self.expect_close_v5(wait).await.map(|d| d.reason_code)
    }
}

/// A 3.1.1 packet as bytes (rumqttc's v4 module has no `Packet::write`; this is it).
pub fn encode_v4(packet: &v4::Packet) -> BytesMut {
    use v4::Packet as P;
    let mut buf = BytesMut::new();
    let buf = &mut buf;
    let result = match packet {
        P::Connect(p) => p.write(buf),
        P::ConnAck(p) => p.write(buf),
        P::Publish(p) => p.write(buf),
        P::PubAck(p) => p.write(buf),
        P::PubRec(p) => p.write(buf),
        P::PubRel(p) => p.write(buf),
        P::PubComp(p) => p.write(buf),
        P::Subscribe(p) => p.write(buf),
        P::SubAck(p) => p.write(buf),
        P::Unsubscribe(p) => p.write(buf),
        P::UnsubAck(p) => p.write(buf),
        P::PingReq => v4::PingReq.write(buf),
        P::PingResp => v4::PingResp.write(buf),
        P::Disconnect => v4::Disconnect.write(buf),
    };
    if let Err(err) = result {
        panic!("encode {packet:?}: {err:?}");
    }
    buf.split()
}

/// A 5.0 packet as bytes.
pub fn encode_v5(packet: &v5::Packet) -> BytesMut {
    let mut buf = BytesMut::new();
    if let Err(err) = packet.write(&mut buf) {
        panic!("encode {packet:?}: {err:?}");
    }
    buf
}

/// Splits one complete packet off the front of `buf`, if there is one.
fn take_frame(buf: &mut BytesMut) -> Result<Option<Frame>, RecvError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let mut remaining: usize = 0;
    let mut header_len = 1;
    loop {
        let Some(&byte) = buf.get(header_len) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7F) << (7 * (header_len - 1));
        header_len += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header_len > 4 {
            return Err(RecvError::Decode(format!("remaining length over 4 bytes: {:02x?}", &buf[..5])));
        }
    }
    if buf.len() < header_len + remaining {
        return Ok(None);
    }
    let bytes = buf.split_to(header_len + remaining).freeze();
    Ok(Some(Frame { bytes }))
}

fn is_reset(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe)
}

/// A v5 CONNECT with clean start, keep alive 60 s and no properties.
pub fn connect_v5(client_id: &str) -> v5::Connect {
    v5::Connect { keep_alive: 60, client_id: client_id.to_string(), clean_start: true, properties: None }
}

/// A 3.1.1 CONNECT with clean session and keep alive 60 s.
pub fn connect_v4(client_id: &str) -> v4::Connect {
    let mut connect = v4::Connect::new(client_id);
    connect.keep_alive = 60;
    connect
}

/// A v5 CONNECT that keeps its session for `expiry_secs` after disconnecting.
pub fn connect_v5_persistent(client_id: &str, clean_start: bool, expiry_secs: u32) -> v5::Connect {
    let mut props = v5::ConnectProperties::new();
    props.session_expiry_interval = Some(expiry_secs);
    v5::Connect { keep_alive: 60, client_id: client_id.to_string(), clean_start, properties: Some(props) }
}

/// The topic of a v5 PUBLISH as text (rumqttc keeps it as bytes).
pub fn topic_v5(publish: &v5::Publish) -> String {
    String::from_utf8_lossy(&publish.topic).into_owned()
}

/// Encodes a v5 SUBSCRIBE for one filter.
pub fn subscribe_v5(pkid: u16, filter: v5::Filter, id: Option<usize>) -> v5::Packet {
    let props = id.map(|id| v5::SubscribeProperties { id: Some(id), user_properties: Vec::new() });
    let mut subscribe = v5::Subscribe::new(filter, props);
    subscribe.pkid = pkid;
    v5::Packet::Subscribe(subscribe)
}

/// Encodes a 3.1.1 SUBSCRIBE for one filter.
pub fn subscribe_v4(pkid: u16, filter: &str, qos: rumqttc::QoS) -> v4::Packet {
    let mut subscribe = v4::Subscribe::new(filter, qos);
    subscribe.pkid = pkid;
    v4::Packet::Subscribe(subscribe)
}
