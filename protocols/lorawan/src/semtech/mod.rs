//! Codec layer: the Semtech UDP packet-forwarder protocol, version 2 (the `PROTOCOL.TXT` of
//! `packet_forwarder`, also spoken by ChirpStack's and most vendors' forwarders).
//!
//! A datagram is `version (1) | token (2) | identifier (1) | ...`: PUSH_DATA carries the
//! gateway EUI and a JSON object with `rxpk` (received frames) and `stat` (statistics);
//! PULL_DATA is the gateway's keep-alive that opens the downlink path; PULL_RESP carries a
//! `txpk` to transmit; TX_ACK reports whether it could (with an `error` value). Decoding never
//! panics: every malformed datagram is an error naming what was wrong. Version 1 datagrams
//! (the older forwarder, identical framing without TX_ACK) are accepted too.

mod json;
#[cfg(test)]
mod tests;

pub use json::{DataRate, Modulation, PushPayload, Rsig, Rxpk, Stat, TxAckError, Txpk};

/// The gateway's 64-bit identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayEui(pub [u8; 8]);

impl GatewayEui {
    pub fn from_u64(v: u64) -> Self {
        GatewayEui(v.to_be_bytes())
    }
    pub fn as_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }
    /// Parses 16 hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        crate::hex::decode_array::<8>(s).map(GatewayEui)
    }
}

impl std::fmt::Display for GatewayEui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

/// Largest datagram decoded (what fits a UDP payload over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;

/// One datagram of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    PushData {
        version: u8,
        token: u16,
        gateway: GatewayEui,
        payload: PushPayload,
    },
    PushAck {
        version: u8,
        token: u16,
    },
    PullData {
        version: u8,
        token: u16,
        gateway: GatewayEui,
    },
    PullAck {
        version: u8,
        token: u16,
    },
    PullResp {
        version: u8,
        token: u16,
        txpk: Txpk,
    },
    /// `error: None` is `NONE` (sent), also what an empty TX_ACK means.
    TxAck {
        version: u8,
        token: u16,
        gateway: GatewayEui,
        error: Option<TxAckError>,
    },
}

impl Packet {
    pub fn name(&self) -> &'static str {
        match self {
            Packet::PushData { .. } => "PUSH_DATA",
            Packet::PushAck { .. } => "PUSH_ACK",
            Packet::PullData { .. } => "PULL_DATA",
            Packet::PullAck { .. } => "PULL_ACK",
            Packet::PullResp { .. } => "PULL_RESP",
            Packet::TxAck { .. } => "TX_ACK",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Semtech UDP: datagram of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("Semtech UDP: datagram of {0} bytes is over the {MAX_DATAGRAM}-byte limit")]
    TooLong(usize),
    #[error("Semtech UDP: unknown protocol version {0}")]
    UnknownVersion(u8),
    #[error("Semtech UDP: unknown identifier 0x{0:02x}")]
    UnknownIdentifier(u8),
    #[error("Semtech UDP {packet}: {what}")]
    Json { packet: &'static str, what: String },
    #[error("Semtech UDP {packet}: {len} trailing bytes after the header")]
    Trailing { packet: &'static str, len: usize },
}

impl DecodeError {
    /// A version this code does not speak (counted apart from malformed datagrams).
    pub fn is_unknown_version(&self) -> bool {
        matches!(self, DecodeError::UnknownVersion(_))
    }
}

const PUSH_DATA: u8 = 0x00;
const PUSH_ACK: u8 = 0x01;
const PULL_DATA: u8 = 0x02;
const PULL_RESP: u8 = 0x03;
const PULL_ACK: u8 = 0x04;
const TX_ACK: u8 = 0x05;

fn eui(b: &[u8]) -> GatewayEui {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[4..12]);
    GatewayEui(a)
}

fn json<T: serde::de::DeserializeOwned>(packet: &'static str, b: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(b).map_err(|e| DecodeError::Json { packet, what: e.to_string() })
}

/// Decodes one datagram.
pub fn decode(b: &[u8]) -> Result<Packet, DecodeError> {
    if b.len() < 4 {
        return Err(DecodeError::Short(b.len()));
    }
    if b.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLong(b.len()));
    }
    let version = b[0];
    if version != 1 && version != 2 {
        return Err(DecodeError::UnknownVersion(version));
    }
    let token = u16::from_be_bytes([b[1], b[2]]);
    let with_eui = || if b.len() < 12 { Err(DecodeError::Short(b.len())) } else { Ok(eui(b)) };
    let bare = |name: &'static str| {
        if b.len() > 4 { Err(DecodeError::Trailing { packet: name, len: b.len() - 4 }) } else { Ok(()) }
    };
    match b[3] {
        PUSH_DATA => {
            let gateway = with_eui()?;
            let payload = json("PUSH_DATA", &b[12..])?;
            Ok(Packet::PushData { version, token, gateway, payload })
        }
        PUSH_ACK => bare("PUSH_ACK").map(|()| Packet::PushAck { version, token }),
        PULL_DATA => {
            let gateway = with_eui()?;
            if b.len() > 12 {
                return Err(DecodeError::Trailing { packet: "PULL_DATA", len: b.len() - 12 });
            }
            Ok(Packet::PullData { version, token, gateway })
        }
        PULL_ACK => bare("PULL_ACK").map(|()| Packet::PullAck { version, token }),
        PULL_RESP => {
            let resp: json::PullRespPayload = json("PULL_RESP", &b[4..])?;
            Ok(Packet::PullResp { version, token, txpk: resp.txpk })
        }
        TX_ACK => {
            let gateway = with_eui()?;
            let rest = &b[12..];
            // Some forwarders send no JSON, or a NUL-terminated one.
            let rest = rest.strip_suffix(&[0]).unwrap_or(rest);
            let error = if rest.iter().all(|c| c.is_ascii_whitespace()) {
                None
            } else {
                let ack: json::TxAckPayload = json("TX_ACK", rest)?;
                ack.txpk_ack.and_then(|a| a.error).filter(|e| *e != TxAckError::None)
            };
            Ok(Packet::TxAck { version, token, gateway, error })
        }
        other => Err(DecodeError::UnknownIdentifier(other)),
    }
}

/// Encodes one datagram.
pub fn encode(p: &Packet) -> Vec<u8> {
    let head = |version: u8, token: u16, id: u8| {
        let t = token.to_be_bytes();
        vec![version, t[0], t[1], id]
    };
    // Serializing these plain structs cannot fail; an empty object is the safe fallback.
    let to_json = |v: &dyn erased::Json| v.to_vec();
    match p {
        Packet::PushData { version, token, gateway, payload } => {
            let mut b = head(*version, *token, PUSH_DATA);
            b.extend_from_slice(&gateway.0);
            b.extend_from_slice(&to_json(payload));
            b
        }
        Packet::PushAck { version, token } => head(*version, *token, PUSH_ACK),
        Packet::PullData { version, token, gateway } => {
            let mut b = head(*version, *token, PULL_DATA);
            b.extend_from_slice(&gateway.0);
            b
        }
        Packet::PullAck { version, token } => head(*version, *token, PULL_ACK),
        Packet::PullResp { version, token, txpk } => {
            let mut b = head(*version, *token, PULL_RESP);
            b.extend_from_slice(&to_json(&json::PullRespPayload { txpk: txpk.clone() }));
            b
        }
        Packet::TxAck { version, token, gateway, error } => {
            let mut b = head(*version, *token, TX_ACK);
            b.extend_from_slice(&gateway.0);
            let ack = json::TxAckPayload {
                txpk_ack: Some(json::TxAckInner { error: Some(error.unwrap_or(TxAckError::None)) }),
            };
            b.extend_from_slice(&to_json(&ack));
            b
        }
    }
}

mod erased {
    pub trait Json {
        fn to_vec(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_vec(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
        }
    }
}
