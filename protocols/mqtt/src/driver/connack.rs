//! Driver layer, CONNACK policy (MQTT 5.0 §3.2, 3.1.1 §3.2): whether a CONNECT is accepted
//! (its checks, then the core's authentication and session takeover) and what the CONNACK
//! tells the client: the refusal's reason code, or the server's limits, an assigned client
//! identifier and the session expiry the gateway granted.

use std::net::SocketAddr;
use std::time::Instant;

use roost_core::trace::Direction;
use roost_core::{ConnectContext, ConnectError, Connection};

use super::io::Io;
use super::{Context, trace};
use crate::codec::{ConnAck, ConnAckProperties, Connect, Packet, reason};
use crate::connect::{self, Accepted};
use crate::session::{Limits, MqttSession};

/// Admits the client of `connect` (CONNACK queued, not yet flushed) or refuses it (a CONNACK
/// with the reason flushed, and `None`).
pub(super) async fn admit(
    mut io: Io,
    connect: Box<Connect>,
    peer: SocketAddr,
    certificate: Option<String>,
    ctx: &Context,
) -> Option<(Io, MqttSession, Connection)> {
    let settings = &ctx.settings;
    ctx.broker.metrics().bytes_in(roost_core::Protocol::Mqtt, 0);
    let accepted = match connect::validate(&connect, settings, ctx.broker.settings().retain_available, Some(peer)) {
        Ok(a) => a,
        Err(refused) => {
            roost_core::peer_log!(INFO, "mqtt.connect_refused", peer, %peer, client_id = %connect.client_id, why = %refused.why, "mqtt: CONNECT refused");
            let props = ConnAckProperties { reason_string: Some(refused.why), ..Default::default() };
            refuse(&mut io, refused.code, props).await;
            return None;
        }
    };
    let Accepted { mut request, assigned_client_id, keep_alive, server_keep_alive, version } = accepted;
    let asked_expiry = request.session_expiry;
    if let Some(cn) = &certificate
        && settings.tls.as_ref().is_some_and(|t| t.cn_as_username)
    {
        request.username = Some(cn.clone());
    }
    let user_properties = connect.properties.user_properties.clone();
    let context = ConnectContext { certificate, user_properties, ..Default::default() };
    let conn = match ctx.broker.connect_with(request, context).await {
        Ok(c) => c,
        Err(e) => {
            refuse(&mut io, refusal_code(&e), Default::default()).await;
            return None;
        }
    };

    let mut props = ConnAckProperties::default();
    if version.is_v5() {
        props = granted(ctx, &conn, asked_expiry);
        props.assigned_client_identifier = assigned_client_id;
        props.server_keep_alive = server_keep_alive;
    }
    let connack =
        Packet::ConnAck(Box::new(ConnAck { session_present: conn.session_present(), code: 0, properties: props }));
    if conn.broker().tracer().is_active() {
        trace(&conn, Direction::In, &Packet::Connect(connect.clone()));
        trace(&conn, Direction::Out, &connack);
    }
    io.queue(&connack);

    let limits = Limits {
        topic_alias_maximum: settings.topic_alias_maximum,
        retain_available: ctx.broker.settings().retain_available,
        deny_disconnect: settings.acl_deny_disconnect,
    };
    let session = MqttSession::new(version, keep_alive, &connect, limits, Instant::now());
    drop(connect);
    Some((io, session, conn))
}

/// A v5 CONNACK's statement of the server's limits, and the session expiry if the gateway
/// granted other than `asked`.
fn granted(ctx: &Context, conn: &Connection, asked: Option<std::time::Duration>) -> ConnAckProperties {
    let settings = &ctx.settings;
    let bs = ctx.broker.settings();
    let mut props = ConnAckProperties {
        receive_maximum: Some(settings.receive_maximum.min(bs.max_awaiting_rel)),
        maximum_packet_size: Some(settings.max_packet_size),
        topic_alias_maximum: Some(settings.topic_alias_maximum),
        retain_available: (!bs.retain_available).then_some(0),
        ..Default::default()
    };
    let granted = conn.session_expiry();
    if granted != asked {
        props.session_expiry_interval =
            Some(granted.map_or(u32::MAX, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)));
    }
    props
}

/// The CONNACK reason code for the core's refusal.
fn refusal_code(e: &ConnectError) -> u8 {
    match e {
        ConnectError::BadCredentials => reason::BAD_USER_NAME_OR_PASSWORD,
        ConnectError::NotAuthorized => reason::NOT_AUTHORIZED,
        ConnectError::ServerBusy => reason::SERVER_BUSY,
        ConnectError::ShuttingDown => reason::SERVER_UNAVAILABLE,
    }
}

/// Sends a refusing CONNACK (the connection closes after it).
async fn refuse(io: &mut Io, code: u8, properties: ConnAckProperties) {
    io.queue(&Packet::ConnAck(Box::new(ConnAck { session_present: false, code, properties })));
    let _ = io.flush().await;
}
