//! Codec layer: [`MqttCodec`], the `tokio_util` framing of [`decode`] and [`encode`].

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{DecodeError, EncodeError, Packet, ProtocolVersion, decode, encode};

/// Frames MQTT packets on a byte stream.
///
/// Starts in `version` (3.1.1 by default) and switches to the version of the first CONNECT it
/// decodes, so a server can start every connection with `MqttCodec::new(limit)`. Packets
/// larger than `max_incoming` bytes (fixed header included) fail with
/// [`DecodeError::PacketTooLarge`] before their body is buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttCodec {
    pub version: ProtocolVersion,
    pub max_incoming: usize,
}

impl MqttCodec {
    pub fn new(max_incoming: usize) -> Self {
        MqttCodec { version: ProtocolVersion::default(), max_incoming }
    }
}

impl Decoder for MqttCodec {
    type Item = Packet;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let packet = decode(src, self.version, self.max_incoming)?;
        if let Some(Packet::Connect(connect)) = &packet {
            self.version = connect.protocol;
        }
        Ok(packet)
    }
}

impl Encoder<&Packet> for MqttCodec {
    type Error = EncodeError;

    fn encode(&mut self, packet: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode(packet, self.version, dst)
    }
}

impl Encoder<Packet> for MqttCodec {
    type Error = EncodeError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode(&packet, self.version, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Ack, Connect, Disconnect};

    #[test]
    fn switches_to_the_connect_version() {
        let mut codec = MqttCodec::new(1024);
        let mut buf = BytesMut::new();
        let connect = Connect { protocol: ProtocolVersion::V5, ..Connect::default() };
        let disconnect = Packet::Disconnect(Disconnect { reason: 0x04, ..Disconnect::default() });
        codec.encode(Packet::Connect(Box::new(connect.clone())), &mut buf).unwrap();
        // Still 3.1.1 on the encoding side until told otherwise: the reason code is dropped.
        codec.encode(&disconnect, &mut buf).unwrap();
        assert_eq!(&buf[buf.len() - 2..], b"\xE0\x00");
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Packet::Connect(Box::new(connect))));
        assert_eq!(codec.version, ProtocolVersion::V5);
        codec.encode(&disconnect, &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Packet::Disconnect(Disconnect::default())));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(disconnect));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn partial_input_waits_and_oversize_fails_early() {
        let mut codec = MqttCodec::new(16);
        let mut buf = BytesMut::from(&b"\x40\x02\x00"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 3);
        buf.extend_from_slice(b"\x07");
        let ack = Ack { packet_id: 7, ..Ack::default() };
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Packet::PubAck(ack)));
        let mut big = BytesMut::from(&b"\x30\x0F"[..]);
        let err = codec.decode(&mut big).unwrap_err();
        assert_eq!(err.reason_code(), 0x95);
        assert_eq!(err.to_string(), "PUBLISH: packet of 17 bytes exceeds the maximum packet size of 16 bytes");
    }

    #[test]
    fn eof_with_a_partial_packet_is_an_error() {
        let mut codec = MqttCodec::new(1024);
        let mut buf = BytesMut::from(&b"\x30\x05\x00"[..]);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert!(matches!(err, DecodeError::Io(_)), "{err}");
    }
}
