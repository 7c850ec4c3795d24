//! `[coap]`: the CoAP gateway, as read and as validated.

use roost_coap::dtls::{DtlsSettings, PskEntry};
use roost_coap::settings::{CoapSettings, NotifyType, Transmission};
use roost_core::QoS;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::ConfigDuration;
use super::schema::Int;
use super::validate::{at_least, bind_addrs, in_range, invalid, positive};

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct CoapSection {
    pub bind: super::schema::AddrList,
    pub recv_buffer: Int,
    pub connection_required: bool,
    pub notify_type: String,
    pub publish_qos: Int,
    pub subscribe_qos: Int,
    pub heartbeat: ConfigDuration,
    pub mountpoint: String,
    pub max_sessions: Int,
    pub max_observations_per_session: Int,
    pub notify_queue: Int,
    pub max_body_size: Int,
    pub block_size: Int,
    pub ack_timeout: ConfigDuration,
    pub max_retransmit: Int,
    pub nstart: Int,
    pub dtls_bind: super::schema::AddrList,
    pub dtls_cert_file: String,
    pub dtls_key_file: String,
    pub dtls_ca_file: String,
    pub dtls_handshake_timeout: ConfigDuration,
    pub dtls_max_handshakes: Int,
    pub dtls_max_peers: Int,
    pub dtls_idle_timeout: ConfigDuration,
    pub psk: Vec<PskSection>,
}

/// One `[[coap.psk]]` entry: a DTLS PSK identity, its key, and the username auth sees.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table with `identity`, `key` and `username`")]
pub(super) struct PskSection {
    pub identity: String,
    pub key: String,
    pub username: Option<String>,
}

impl Default for CoapSection {
    fn default() -> Self {
        let c = CoapSettings::default();
        CoapSection {
            bind: super::schema::AddrList(c.bind.iter().map(|a| a.to_string()).collect()),
            recv_buffer: Int::from(c.recv_buffer),
            connection_required: c.connection_required,
            notify_type: notify_name(c.notify_type).to_string(),
            publish_qos: Int(c.publish_qos as i64),
            subscribe_qos: Int(c.subscribe_qos as i64),
            heartbeat: ConfigDuration(c.heartbeat),
            mountpoint: c.mountpoint,
            max_sessions: Int::from(c.max_sessions),
            max_observations_per_session: Int::from(c.max_observations_per_session),
            notify_queue: Int::from(c.notify_queue),
            max_body_size: Int::from(c.max_body_size),
            block_size: Int::from(c.block_size),
            ack_timeout: ConfigDuration(c.transmission.ack_timeout),
            max_retransmit: Int::from(c.transmission.max_retransmit),
            nstart: Int::from(c.transmission.nstart),
            dtls_bind: super::schema::AddrList(c.dtls.bind.iter().map(|a| a.to_string()).collect()),
            dtls_cert_file: c.dtls.cert_file.unwrap_or_default(),
            dtls_key_file: c.dtls.key_file.unwrap_or_default(),
            dtls_ca_file: c.dtls.ca_file.unwrap_or_default(),
            dtls_handshake_timeout: ConfigDuration(c.dtls.handshake_timeout),
            dtls_max_handshakes: Int::from(c.dtls.max_handshakes),
            dtls_max_peers: Int::from(c.dtls.max_peers),
            dtls_idle_timeout: ConfigDuration(c.dtls.idle_timeout),
            psk: Vec::new(),
        }
    }
}

fn notify_name(n: NotifyType) -> &'static str {
    match n {
        NotifyType::Non => "non",
        NotifyType::Con => "con",
        NotifyType::Qos => "qos",
    }
}

fn qos(key: &str, v: Int) -> Result<QoS, ConfigError> {
    let n: u8 = in_range(key, v, 0, 2)?;
    QoS::from_u8(n).ok_or_else(|| invalid(key, "must be 0, 1 or 2"))
}

pub(super) fn coap_settings(c: CoapSection) -> Result<CoapSettings, ConfigError> {
    let notify_type = match c.notify_type.as_str() {
        "non" => NotifyType::Non,
        "con" => NotifyType::Con,
        "qos" => NotifyType::Qos,
        other => return Err(invalid("coap.notify_type", format!("{other:?} is not \"non\", \"con\" or \"qos\""))),
    };
    if c.mountpoint.contains(['+', '#']) {
        return Err(invalid("coap.mountpoint", "must not contain '+' or '#'"));
    }
    let block_size: usize = in_range("coap.block_size", c.block_size, 16, 1024)?;
    if !block_size.is_power_of_two() {
        return Err(invalid("coap.block_size", format!("{block_size} is not a power of two (16, 32, ..., 1024)")));
    }
    let mut psk: Vec<PskEntry> = Vec::with_capacity(c.psk.len());
    for (i, e) in c.psk.into_iter().enumerate() {
        if e.identity.is_empty() || psk.iter().any(|p| p.identity == e.identity) {
            return Err(invalid(&format!("coap.psk[{i}].identity"), "empty or listed twice"));
        }
        if e.key.is_empty() {
            return Err(invalid(&format!("coap.psk[{i}].key"), "must not be empty"));
        }
        psk.push(PskEntry {
            username: e.username.unwrap_or_else(|| e.identity.clone()),
            identity: e.identity,
            key: e.key.into_bytes(),
        });
    }
    let file = |s: String| (!s.is_empty()).then_some(s);
    let (cert_file, key_file) = (file(c.dtls_cert_file), file(c.dtls_key_file));
    if cert_file.is_some() != key_file.is_some() {
        return Err(invalid("coap.dtls_key_file", "dtls_cert_file and dtls_key_file go together"));
    }
    let dtls_bind = bind_addrs("coap.dtls_bind", &c.dtls_bind.0)?;
    if !dtls_bind.is_empty() && psk.is_empty() && cert_file.is_none() {
        return Err(invalid("coap.dtls_bind", "DTLS needs [[coap.psk]] entries or dtls_cert_file/dtls_key_file"));
    }
    let dtls = DtlsSettings {
        bind: dtls_bind,
        psk,
        cert_file,
        key_file,
        ca_file: file(c.dtls_ca_file),
        handshake_timeout: positive("coap.dtls_handshake_timeout", c.dtls_handshake_timeout.0)?,
        max_handshakes: at_least("coap.dtls_max_handshakes", c.dtls_max_handshakes, 1)?,
        max_peers: at_least("coap.dtls_max_peers", c.dtls_max_peers, 1)?,
        idle_timeout: positive("coap.dtls_idle_timeout", c.dtls_idle_timeout.0)?,
    };
    Ok(CoapSettings {
        dtls,
        bind: bind_addrs("coap.bind", &c.bind.0)?,
        recv_buffer: in_range("coap.recv_buffer", c.recv_buffer, 0, i64::from(i32::MAX))?,
        connection_required: c.connection_required,
        notify_type,
        publish_qos: qos("coap.publish_qos", c.publish_qos)?,
        subscribe_qos: qos("coap.subscribe_qos", c.subscribe_qos)?,
        heartbeat: positive("coap.heartbeat", c.heartbeat.0)?,
        mountpoint: c.mountpoint,
        max_sessions: at_least("coap.max_sessions", c.max_sessions, 1)?,
        max_observations_per_session: at_least("coap.max_observations_per_session", c.max_observations_per_session, 1)?,
        notify_queue: at_least("coap.notify_queue", c.notify_queue, 1)?,
        max_body_size: in_range("coap.max_body_size", c.max_body_size, 16, 16 * 1024 * 1024)?,
        block_size,
        transmission: Transmission {
            ack_timeout: positive("coap.ack_timeout", c.ack_timeout.0)?,
            ack_random_factor_pct: 150,
            max_retransmit: in_range("coap.max_retransmit", c.max_retransmit, 0, 20)?,
            nstart: in_range("coap.nstart", c.nstart, 1, 64)?,
        },
    })
}
