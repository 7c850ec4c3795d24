//! Driver layer, the first seconds of an MQTT connection (MQTT 5.0 §3.1, 3.1.1 §3.1): the
//! PROXY header, the TLS and/or WebSocket handshakes, and the first packet, which must be a
//! CONNECT. Each step is bounded by `[mqtt] connect_timeout` and by the gateway's shutdown.
//! What the CONNECT is answered with is [`super::connack`]'s business.

use std::net::SocketAddr;

use bytes::BytesMut;
use roost_core::Connection;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::connack;
use super::io::{Io, Read};
use crate::codec::{ConnAck, Connect, DecodeError, Packet, ProtocolVersion, reason};
use crate::session::MqttSession;
use crate::transport::{self, Kind, Stream};

/// CONNECT in, CONNACK queued: the connection's IO, protocol session and core connection.
pub(super) async fn handshake(
    tcp: TcpStream,
    kind: Kind,
    peer: SocketAddr,
    ctx: &Context,
    shutdown: &CancellationToken,
) -> Option<(Io, MqttSession, Connection)> {
    let (mut io, peer, certificate) = open(tcp, kind, peer, ctx, shutdown).await?;
    let connect = first_connect(&mut io, peer, ctx, shutdown).await?;
    io.version = connect.protocol;
    connack::admit(io, connect, peer, certificate, ctx).await
}

/// The PROXY header (behind a load balancer) and the transport handshakes: the IO, the
/// client's own address, and with TLS the verified client certificate's common name.
async fn open(
    mut tcp: TcpStream,
    kind: Kind,
    peer: SocketAddr,
    ctx: &Context,
    shutdown: &CancellationToken,
) -> Option<(Io, SocketAddr, Option<String>)> {
    let settings = &ctx.settings;
    // Behind a load balancer: the client's own address, from its PROXY header.
    let proxied = tokio::time::timeout(settings.connect_timeout, settings.proxy.client_addr(&mut tcp, peer));
    let peer = tokio::select! {
        r = proxied => match r {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                roost_core::peer_log!(INFO, "mqtt.proxy_refused", peer, %peer, transport = kind.as_str(), error = %e, "mqtt: connection refused");
                return None;
            }
            Err(_) => {
                roost_core::peer_log!(DEBUG, "mqtt.proxy_timeout", peer, %peer, "mqtt: PROXY header timed out");
                return None;
            }
        },
        _ = shutdown.cancelled() => return None,
    };
    let upgrade = tokio::time::timeout(settings.connect_timeout, upgrade(tcp, kind, ctx));
    let (stream, certificate) = tokio::select! {
        r = upgrade => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                roost_core::peer_log!(INFO, "mqtt.handshake_failed", peer, %peer, transport = kind.as_str(), error = %e, "mqtt: transport handshake failed");
                return None;
            }
            Err(_) => {
                roost_core::peer_log!(DEBUG, "mqtt.handshake_timeout", peer, %peer, transport = kind.as_str(), "mqtt: transport handshake timed out");
                return None;
            }
        },
        _ = shutdown.cancelled() => return None,
    };
    let io = Io {
        stream,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        version: ProtocolVersion::V311,
        max_incoming: settings.max_packet_size,
        routed: 0,
    };
    Some((io, peer, certificate))
}

/// Waits for the first packet; anything but a CONNECT closes the connection (an unsupported
/// protocol level first gets the 3.1.1 CONNACK that says so).
async fn first_connect(
    io: &mut Io,
    peer: SocketAddr,
    ctx: &Context,
    shutdown: &CancellationToken,
) -> Option<Box<Connect>> {
    let first = tokio::select! {
        r = tokio::time::timeout(ctx.settings.connect_timeout, io.read_packet()) => r,
        _ = shutdown.cancelled() => return None,
    };
    match first {
        Err(_) => {
            roost_core::peer_log!(DEBUG, "mqtt.connect_timeout", peer, %peer, "mqtt: no CONNECT within connect_timeout; closing");
            None
        }
        Ok(Read::Closed) => None,
        Ok(Read::Error(DecodeError::UnsupportedProtocolVersion(level))) => {
            roost_core::peer_log!(INFO, "mqtt.unsupported_version", peer, %peer, level, "mqtt: CONNECT with unsupported protocol level; refused");
            // 3.1.1-format CONNACK, return code 0x01: the only format such a client may know.
            io.queue(&Packet::ConnAck(Box::new(ConnAck {
                code: reason::UNSUPPORTED_PROTOCOL_VERSION,
                ..Default::default()
            })));
            let _ = io.flush().await;
            None
        }
        Ok(Read::Error(e)) => {
            roost_core::peer_log!(INFO, "mqtt.bad_first_packet", peer, %peer, error = %e, "mqtt: bad first packet; closing");
            None
        }
        Ok(Read::Packet(Packet::Connect(c))) => Some(c),
        Ok(Read::Packet(p)) => {
            roost_core::peer_log!(INFO, "mqtt.not_connect", peer, %peer, packet = ?packet_name(&p), "mqtt: first packet is not CONNECT; closing");
            None
        }
    }
}

/// TLS and/or WebSocket handshakes; with TLS, the verified client certificate's common name.
async fn upgrade(tcp: TcpStream, kind: Kind, ctx: &Context) -> std::io::Result<(Stream, Option<String>)> {
    let acceptor = || {
        ctx.tls
            .as_ref()
            .map(transport::TlsSwitch::current)
            .ok_or_else(|| std::io::Error::other("no [mqtt.tls] for a TLS listener"))
    };
    Ok(match kind {
        Kind::Tcp => (Stream::Tcp(tcp), None),
        Kind::Tls => {
            let (tls, cn) = transport::tls_accept(&acceptor()?, tcp).await?;
            (Stream::Other(Box::new(tls)), cn)
        }
        Kind::Ws => (Stream::Other(Box::new(transport::ws_accept(tcp, &ctx.settings.ws_path).await?)), None),
        Kind::Wss => {
            let (tls, cn) = transport::tls_accept(&acceptor()?, tcp).await?;
            (Stream::Other(Box::new(transport::ws_accept(tls, &ctx.settings.ws_path).await?)), cn)
        }
    })
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect(_) => "DISCONNECT",
        Packet::Auth(_) => "AUTH",
    }
}
