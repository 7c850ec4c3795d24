//! Codec layer, WebAssembly ABI version 1 (`docs/plugins.md`): the numbers that cross the
//! host/guest boundary. A guest exports `roost_abi_version`, `roost_buffer`, `roost_decode`,
//! `roost_encode` (and optionally `roost_timer`); it calls the `roost.*` imports to emit
//! frames. Every number here is part of the published ABI: change one only with a new
//! [`VERSION`].

use roost_codec::{CloseReason, Downlink, QoS, Refused};

/// The ABI version this host speaks; a guest's `roost_abi_version()` must return it.
pub const VERSION: i32 = 1;

/// Import module name of the host functions.
pub const IMPORT_MODULE: &str = "roost";

/// `roost_encode`'s `kind` argument.
pub mod kind {
    pub const CONNACK: i32 = 1;
    pub const PUBACK: i32 = 2;
    pub const SUBACK: i32 = 3;
    pub const UNSUBACK: i32 = 4;
    pub const PONG: i32 = 5;
    pub const PUBLISH: i32 = 6;
    pub const DISCONNECT: i32 = 7;
}

/// `code` of an answer: 0 accepted, else why it was refused.
pub fn refused_code(r: Refused) -> i32 {
    match r {
        Refused::BadCredentials => 1,
        Refused::NotAuthorized => 2,
        Refused::ServerBusy => 3,
        Refused::ShuttingDown => 4,
        Refused::InvalidTopic => 5,
        Refused::QuotaExceeded => 6,
    }
}

/// `code` of a `DISCONNECT`: why Roost closes.
pub fn close_code(r: CloseReason) -> i32 {
    match r {
        CloseReason::KeepAliveTimeout => 1,
        CloseReason::TakenOver => 2,
        CloseReason::Kicked => 3,
        CloseReason::Shutdown => 4,
    }
}

/// A QoS number from a guest (0, 1 or 2); anything else is a malformed result.
pub fn qos(n: i32) -> Option<QoS> {
    match n {
        0 => Some(QoS::AtMostOnce),
        1 => Some(QoS::AtLeastOnce),
        2 => Some(QoS::ExactlyOnce),
        _ => None,
    }
}

/// One downlink flattened to `roost_encode(kind, id, code, flags, topic_len, payload_len)`
/// plus the bytes (topic, then payload) placed in the guest's buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct EncodeArgs<'a> {
    pub kind: i32,
    pub id: i32,
    pub code: i32,
    /// PUBLISH: bits 0-1 QoS, bit 2 retain, bit 3 dup. SUBACK: the granted QoS.
    /// CONNACK: bit 0 session present.
    pub flags: i32,
    pub topic: &'a [u8],
    pub payload: &'a [u8],
}

pub fn encode_args(frame: &Downlink) -> EncodeArgs<'_> {
    let plain = |kind, id: u16, code| EncodeArgs { kind, id: i32::from(id), code, flags: 0, topic: &[], payload: &[] };
    let code = |r: &Result<(), Refused>| r.err().map_or(0, refused_code);
    match frame {
        Downlink::ConnAck { result, session_present } => {
            EncodeArgs { flags: i32::from(*session_present), ..plain(kind::CONNACK, 0, code(result)) }
        }
        Downlink::PubAck { id, result } => plain(kind::PUBACK, *id, code(result)),
        Downlink::SubAck { id, result: Ok(q) } => EncodeArgs { flags: *q as i32, ..plain(kind::SUBACK, *id, 0) },
        Downlink::SubAck { id, result: Err(r) } => plain(kind::SUBACK, *id, refused_code(*r)),
        Downlink::UnsubAck { id } => plain(kind::UNSUBACK, *id, 0),
        Downlink::Pong => plain(kind::PONG, 0, 0),
        Downlink::Publish { id, topic, payload, qos, retain, dup } => EncodeArgs {
            flags: *qos as i32 | i32::from(*retain) << 2 | i32::from(*dup) << 3,
            topic: topic.as_bytes(),
            payload,
            ..plain(kind::PUBLISH, *id, 0)
        },
        Downlink::Disconnect { reason } => plain(kind::DISCONNECT, 0, close_code(*reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_flags_pack_qos_retain_dup() {
        let frame = Downlink::Publish {
            id: 9,
            topic: "a/b".into(),
            payload: "x".into(),
            qos: QoS::AtLeastOnce,
            retain: true,
            dup: true,
        };
        let a = encode_args(&frame);
        assert_eq!((a.kind, a.id, a.flags, a.topic, a.payload), (kind::PUBLISH, 9, 0b1101, &b"a/b"[..], &b"x"[..]));
        let refused = Downlink::PubAck { id: 1, result: Err(Refused::NotAuthorized) };
        assert_eq!(encode_args(&refused).code, 2);
    }
}
