//! A lean MQTT client for the simulator and the load generator, on `roost_mqtt::codec`.
//!
//! It does the handshakes (CONNECT/CONNACK, SUBSCRIBE/SUBACK) and then hands out the socket
//! halves with a read and a write buffer each; the callers run their own loops, so a
//! publisher can batch many PUBLISH packets into one write and an idle connection can hold
//! nothing but its `TcpStream`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::{Bytes, BytesMut};
use roost_mqtt::codec::{
    self, Connect, ConnectProperties, Packet, ProtocolVersion, QoS, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest packet we accept from the broker.
const MAX_INCOMING: usize = 1 << 20;
/// How long a handshake step (CONNACK, SUBACK) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What goes into CONNECT.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub version: ProtocolVersion,
    pub clean_start: bool,
    pub keep_alive: u16,
    /// v5 session expiry; for 3.1.1 a persistent session is `clean_start: false`.
    pub session_expiry: Option<u32>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            version: ProtocolVersion::V311,
            clean_start: true,
            keep_alive: 0,
            session_expiry: None,
            username: None,
            password: None,
        }
    }
}

/// Parses "3.1.1" / "4" / "5" / "5.0".
pub fn parse_version(s: &str) -> anyhow::Result<ProtocolVersion> {
    match s {
        "3.1.1" | "311" | "4" => Ok(ProtocolVersion::V311),
        "5" | "5.0" => Ok(ProtocolVersion::V5),
        _ => bail!("unknown MQTT version {s:?} (use 3.1.1 or 5)"),
    }
}

pub fn parse_qos(v: u8) -> anyhow::Result<QoS> {
    match QoS::from_u8(v) {
        Some(q) if q != QoS::ExactlyOnce => Ok(q),
        _ => bail!("QoS {v} is not supported by the load generator (use 0 or 1)"),
    }
}

/// One connected client before it is split.
pub struct Client {
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    rbuf: BytesMut,
    /// PUBLISH packets that arrived while waiting for a SUBACK (a broker may start sending
    /// matching messages before the SUBACK, MQTT 3.1.1 §3.8.4), encoded again; the reader gets
    /// them first.
    early: BytesMut,
}

impl Client {
    /// Opens a TCP connection and completes the MQTT handshake.
    pub async fn connect(target: &str, client_id: &str, opts: &ConnectOptions) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(target).await.with_context(|| format!("connecting to {target}"))?;
        stream.set_nodelay(true)?;
        let mut client = Client { stream, version: opts.version, rbuf: BytesMut::new(), early: BytesMut::new() };
        let connect = Connect {
            protocol: opts.version,
            clean_start: opts.clean_start,
            keep_alive: opts.keep_alive,
            properties: ConnectProperties {
                session_expiry_interval: opts.session_expiry,
                ..ConnectProperties::default()
            },
            client_id: client_id.to_string(),
            will: None,
            username: opts.username.clone(),
            password: opts.password.clone().map(Bytes::from),
        };
        client.send(&Packet::Connect(Box::new(connect))).await?;
        match client.next_timeout().await? {
            Packet::ConnAck(ack) if ack.code == 0 => Ok(client),
            Packet::ConnAck(ack) => bail!("CONNACK refused {client_id}: reason 0x{:02x}", ack.code),
            other => bail!("expected CONNACK, got {}", other.name()),
        }
    }

    /// Subscribes to one filter and waits for its SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> anyhow::Result<()> {
        let sub = codec::Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: filter.to_string(),
                options: SubscriptionOptions { qos, ..SubscriptionOptions::default() },
            }],
            ..codec::Subscribe::default()
        };
        self.send(&Packet::Subscribe(sub)).await?;
        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            if tokio::time::Instant::now() >= deadline {
                bail!("no SUBACK for {filter} within {HANDSHAKE_TIMEOUT:?}");
            }
            match self.next_timeout().await? {
                Packet::SubAck(ack) if ack.reasons.first().is_some_and(|r| *r < 0x80) => {
                    return Ok(());
                }
                Packet::SubAck(ack) => bail!("SUBACK refused {filter}: {:?}", ack.reasons),
                p @ Packet::Publish(_) => codec::encode(&p, self.version, &mut self.early)?,
                other => bail!("expected SUBACK, got {}", other.name()),
            }
        }
    }

    /// The read buffer with the packets set aside during handshakes in front.
    fn take_rbuf(&mut self) -> BytesMut {
        let mut buf = std::mem::take(&mut self.early);
        buf.extend_from_slice(&self.rbuf);
        buf
    }

    pub async fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        let mut buf = BytesMut::new();
        codec::encode(packet, self.version, &mut buf)?;
        self.stream.write_all(&buf).await?;
        Ok(())
    }

    async fn next_timeout(&mut self) -> anyhow::Result<Packet> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_packet(&mut self.stream, &mut self.rbuf, self.version)).await
        {
            Ok(Ok(Some(p))) => Ok(p),
            Ok(Ok(None)) => bail!("connection closed by the broker during the handshake"),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("no answer from the broker within {HANDSHAKE_TIMEOUT:?}"),
        }
    }

    /// Splits into a reader and a writer.
    pub fn split(mut self) -> (Reader, Writer) {
        let buf = self.take_rbuf();
        let (rd, wr) = self.stream.into_split();
        (Reader { rd, buf, version: self.version }, Writer { wr, buf: BytesMut::new(), version: self.version })
    }

    /// Whole-stream reader for tasks that both read and answer (subscribers, devices).
    pub fn into_parts(mut self) -> (TcpStream, BytesMut, ProtocolVersion) {
        let buf = self.take_rbuf();
        (self.stream, buf, self.version)
    }
}

/// Reads until one packet is decoded; `None` on a clean end of stream.
pub async fn read_packet<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    version: ProtocolVersion,
) -> anyhow::Result<Option<Packet>> {
    loop {
        if let Some(p) = codec::decode(buf, version, MAX_INCOMING)? {
            return Ok(Some(p));
        }
        buf.reserve(16 * 1024);
        if rd.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Reads whatever is available (at least one byte) into `buf`; false at end of stream.
pub async fn fill<R: tokio::io::AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) -> anyhow::Result<bool> {
    buf.reserve(64 * 1024);
    Ok(rd.read_buf(buf).await? > 0)
}

/// Decodes the next complete packet already in `buf`.
pub fn decode(buf: &mut BytesMut, version: ProtocolVersion) -> anyhow::Result<Option<Packet>> {
    Ok(codec::decode(buf, version, MAX_INCOMING)?)
}

pub struct Reader {
    pub rd: OwnedReadHalf,
    pub buf: BytesMut,
    pub version: ProtocolVersion,
}

impl Reader {
    pub async fn next(&mut self) -> anyhow::Result<Option<Packet>> {
        read_packet(&mut self.rd, &mut self.buf, self.version).await
    }
}

/// A write half with a batching buffer: `queue` packets, then `flush` them in one write.
pub struct Writer {
    pub wr: OwnedWriteHalf,
    pub buf: BytesMut,
    pub version: ProtocolVersion,
}

impl Writer {
    pub fn queue(&mut self, packet: &Packet) -> anyhow::Result<()> {
        codec::encode(packet, self.version, &mut self.buf)?;
        Ok(())
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.buf.is_empty() {
            self.wr.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    pub async fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        self.queue(packet)?;
        self.flush().await
    }
}
