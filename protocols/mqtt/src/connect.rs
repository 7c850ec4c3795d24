//! Session layer, CONNECT: turns a decoded CONNECT into a core [`ConnectRequest`] or a
//! refusal (MQTT 3.1.1 §3.1, MQTT 5.0 §3.1). Pure: tested without sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roost_core::{ClientId, ConnectRequest, Message, Protocol, Will};

use crate::codec::{Connect, LastWill, ProtocolVersion, reason};
use crate::settings::MqttSettings;

/// A CONNECT that passed validation, with what the CONNACK must tell the client.
#[derive(Debug)]
pub struct Accepted {
    pub request: ConnectRequest,
    /// Set when the server chose the client id (v5 Assigned Client Identifier).
    pub assigned_client_id: Option<String>,
    /// Keep alive in force, in seconds (0: none).
    pub keep_alive: u16,
    /// Set when the server overrode the client's keep alive (v5 Server Keep Alive).
    pub server_keep_alive: Option<u16>,
    pub version: ProtocolVersion,
}

/// Why a CONNECT is refused: the v5 reason code (mapped for 3.1.1 by the encoder) and a
/// reason string for the log and the v5 CONNACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: u8,
    pub why: String,
}

fn refuse(code: u8, why: impl Into<String>) -> Refused {
    Refused { code, why: why.into() }
}

pub fn validate(
    connect: &Connect,
    settings: &MqttSettings,
    retain_available: bool,
    peer: Option<SocketAddr>,
) -> Result<Accepted, Refused> {
    let version = connect.protocol;
    let v5 = version.is_v5();
    if connect.properties.authentication_method.is_some() {
        return Err(refuse(reason::BAD_AUTHENTICATION_METHOD, "enhanced authentication is not supported"));
    }

    let (client_id, assigned_client_id) = client_id(connect, settings)?;
    if version == ProtocolVersion::V31 && client_id.len() > 23 {
        return Err(refuse(reason::CLIENT_IDENTIFIER_NOT_VALID, "MQTT 3.1 client ids are at most 23 bytes"));
    }

    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    let max = settings.max_keep_alive;
    if max > 0 && (keep_alive == 0 || keep_alive > max) {
        if !v5 {
            // 3.1.1 cannot be told another keep alive; refuse as Mosquitto does.
            return Err(refuse(
                reason::CLIENT_IDENTIFIER_NOT_VALID,
                format!("keep alive {keep_alive}s is above max_keep_alive {max}s"),
            ));
        }
        keep_alive = max;
        server_keep_alive = Some(max);
    }

    let session_expiry = if v5 {
        match connect.properties.session_expiry_interval.unwrap_or(0) {
            u32::MAX => None,
            s => Some(Duration::from_secs(u64::from(s))),
        }
    } else if connect.clean_start {
        Some(Duration::ZERO)
    } else {
        None
    };

    let will = connect.will.as_ref().map(|w| will(w, &client_id, retain_available)).transpose()?;

    let receive_maximum = match connect.properties.receive_maximum {
        Some(0) => return Err(refuse(reason::PROTOCOL_ERROR, "Receive Maximum of 0")),
        Some(n) => n,
        None => u16::MAX,
    };
    if connect.properties.maximum_packet_size == Some(0) {
        return Err(refuse(reason::PROTOCOL_ERROR, "Maximum Packet Size of 0"));
    }

    Ok(Accepted {
        request: ConnectRequest {
            client_id: ClientId::new(client_id),
            protocol: Protocol::Mqtt,
            peer,
            username: connect.username.clone(),
            password: connect.password.clone(),
            clean_start: connect.clean_start,
            keep_alive,
            will,
            session_expiry,
            receive_maximum,
        },
        assigned_client_id,
        keep_alive,
        server_keep_alive,
        version,
    })
}

/// The client id in force, and the one the server assigned (v5) when the client sent none.
fn client_id(connect: &Connect, settings: &MqttSettings) -> Result<(String, Option<String>), Refused> {
    if !connect.client_id.is_empty() {
        return Ok((connect.client_id.clone(), None));
    }
    let version = connect.protocol;
    let allowed = settings.allow_empty_client_id
        && match version {
            ProtocolVersion::V31 => false,
            ProtocolVersion::V311 => connect.clean_start,
            ProtocolVersion::V5 => true,
        };
    if !allowed {
        return Err(refuse(
            reason::CLIENT_IDENTIFIER_NOT_VALID,
            "an empty client id needs clean session (and allow_empty_client_id)",
        ));
    }
    let id = format!("roost-{:016x}", rand_u64());
    let assigned = version.is_v5().then(|| id.clone());
    Ok((id, assigned))
}

/// The will of a CONNECT as a core [`Will`].
fn will(w: &LastWill, client_id: &str, retain_available: bool) -> Result<Will, Refused> {
    if w.topic.is_empty() || w.topic.contains(['+', '#']) {
        return Err(refuse(reason::TOPIC_NAME_INVALID, "will topic is empty or has a wildcard"));
    }
    if w.retain && !retain_available {
        return Err(refuse(reason::RETAIN_NOT_SUPPORTED, "retained wills are disabled"));
    }
    let p = &w.properties;
    let mut message = Message::new(w.topic.as_str(), w.payload.clone(), w.qos, w.retain);
    crate::properties::apply_will(&mut message, p);
    message.publisher = Some(ClientId::new(client_id));
    message.created = Instant::now();
    Ok(Will { message, delay: Duration::from_secs(u64::from(p.delay_interval.unwrap_or(0))) })
}

fn rand_u64() -> u64 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(version: ProtocolVersion, id: &str, clean: bool) -> Connect {
        Connect { protocol: version, client_id: id.into(), clean_start: clean, keep_alive: 60, ..Default::default() }
    }

    #[test]
    fn empty_client_id_rules() {
        let s = MqttSettings::default();
        let ok = validate(&connect(ProtocolVersion::V311, "", true), &s, true, None).unwrap();
        assert!(ok.request.client_id.as_str().starts_with("roost-"));
        assert_eq!(ok.assigned_client_id, None);
        let err = validate(&connect(ProtocolVersion::V311, "", false), &s, true, None).unwrap_err();
        assert_eq!(err.code, reason::CLIENT_IDENTIFIER_NOT_VALID);
        let v5 = validate(&connect(ProtocolVersion::V5, "", false), &s, true, None).unwrap();
        assert_eq!(v5.assigned_client_id.as_deref(), Some(v5.request.client_id.as_str()));
        let no = MqttSettings { allow_empty_client_id: false, ..Default::default() };
        assert!(validate(&connect(ProtocolVersion::V5, "", true), &no, true, None).is_err());
    }

    #[test]
    fn session_expiry_per_version() {
        let s = MqttSettings::default();
        let v3 = validate(&connect(ProtocolVersion::V311, "a", false), &s, true, None).unwrap();
        assert_eq!(v3.request.session_expiry, None);
        let v3c = validate(&connect(ProtocolVersion::V311, "a", true), &s, true, None).unwrap();
        assert_eq!(v3c.request.session_expiry, Some(Duration::ZERO));
        let mut c = connect(ProtocolVersion::V5, "a", false);
        assert_eq!(validate(&c, &s, true, None).unwrap().request.session_expiry, Some(Duration::ZERO));
        c.properties.session_expiry_interval = Some(30);
        assert_eq!(validate(&c, &s, true, None).unwrap().request.session_expiry, Some(Duration::from_secs(30)));
        c.properties.session_expiry_interval = Some(u32::MAX);
        assert_eq!(validate(&c, &s, true, None).unwrap().request.session_expiry, None);
    }

    #[test]
    fn server_keep_alive() {
        let s = MqttSettings { max_keep_alive: 10, ..Default::default() };
        let v5 = validate(&connect(ProtocolVersion::V5, "a", true), &s, true, None).unwrap();
        assert_eq!((v5.keep_alive, v5.server_keep_alive), (10, Some(10)));
        assert!(validate(&connect(ProtocolVersion::V311, "a", true), &s, true, None).is_err());
    }

    #[test]
    fn receive_maximum_zero_is_protocol_error() {
        let mut c = connect(ProtocolVersion::V5, "a", true);
        c.properties.receive_maximum = Some(0);
        assert_eq!(validate(&c, &MqttSettings::default(), true, None).unwrap_err().code, reason::PROTOCOL_ERROR);
    }
}
