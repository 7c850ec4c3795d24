//! Shared by the custom-codec fuzz targets: drives a built-in codec (by registry name) the
//! way the adapter does, over TCP reads of any size and as one datagram, answering each
//! decoded frame and encoding a delivery made of the input.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use roost_codec::{CloseReason, Downlink, Options, QoS, Registry, Uplink};

/// The answer the session gives to one uplink frame, if any.
fn answer(up: &Uplink) -> Option<Downlink> {
    Some(match up {
        Uplink::Connect(_) => Downlink::ConnAck { result: Ok(()), session_present: false },
        Uplink::Publish { id, .. } => Downlink::PubAck { id: *id, result: Ok(()) },
        Uplink::Subscribe { id, qos, .. } => Downlink::SubAck { id: *id, result: Ok(*qos) },
        Uplink::Unsubscribe { id, .. } => Downlink::UnsubAck { id: *id },
        Uplink::Ping => Downlink::Pong,
        _ => return None,
    })
}

pub fn drive(name: &str, data: &[u8]) {
    let Ok(factory) = Registry::default().build(name, &Options::default()) else { panic!("{name} builds") };
    let [step, rest @ ..] = data else { return };
    let mut codec = factory.new_codec();
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    for chunk in rest.chunks(usize::from(*step).max(1)) {
        buf.extend_from_slice(chunk);
        let before = buf.len();
        if codec.decode(&mut buf, &mut out).is_err() {
            break;
        }
        assert!(buf.len() <= before, "{name}: decode grew its buffer");
    }
    let _ = factory.device_key(rest);
    let mut datagram = factory.new_codec();
    let _ = datagram.decode_datagram(Bytes::copy_from_slice(rest), &mut out);
    for up in &out {
        if let Some(down) = answer(up) {
            let mut bytes = BytesMut::new();
            codec.encode(down, &mut bytes).unwrap_or_else(|e| panic!("{name}: answer to {up:?} not encoded: {e}"));
        }
    }
    // A delivery whose topic and payload are the input: refused or encoded, never a panic.
    let text = String::from_utf8_lossy(rest);
    let topic: Arc<str> = text.split('\n').next().unwrap_or_default().into();
    let publish = Downlink::Publish {
        id: u16::from(*step),
        topic,
        payload: Bytes::copy_from_slice(rest),
        qos: if *step & 1 == 1 { QoS::AtLeastOnce } else { QoS::AtMostOnce },
        retain: *step & 2 == 2,
        dup: false,
    };
    let _ = codec.encode(publish, &mut BytesMut::new());
    let _ = codec.encode(Downlink::Disconnect { reason: CloseReason::KeepAliveTimeout }, &mut BytesMut::new());
}
