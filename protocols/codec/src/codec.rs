//! Codec layer: the [`Codec`] trait a custom protocol implements, and the
//! [`CodecFactory`] that makes one codec per connection (TCP) or per device (UDP).
//!
//! A codec is a pure translator with state: it never sees sockets, timers or the broker.
//! The adapter calls it from one task per connection, so the events of one connection
//! reach it strictly in order and it needs no locking.

use bytes::{Bytes, BytesMut};

use crate::frame::{Downlink, Uplink};

/// What went wrong in a codec. Decoding errors close the connection (only that one);
/// an encoding error drops the one frame that could not be encoded (counted, logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

impl CodecError {
    pub fn new(message: impl Into<String>) -> Self {
        CodecError(message.into())
    }
}

/// A custom device protocol.
///
/// Stream transports (TCP) call [`Codec::decode`] with everything received and not yet
/// consumed; datagram transports (UDP) call [`Codec::decode_datagram`] once per datagram.
/// Decoders push the frames they find into `out`, in order.
pub trait Codec: Send + 'static {
    /// Decodes as many whole frames as `buf` holds, consuming their bytes and leaving a
    /// partial frame in place for the next call. A frame longer than the listener's
    /// `limits.max_frame_size` closes the connection before it is buffered further, so a
    /// codec need not bound its own buffering.
    fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<Uplink>) -> Result<(), CodecError>;

    /// Decodes one datagram. The default runs [`Codec::decode`] and refuses leftover bytes
    /// (a datagram holds whole frames).
    fn decode_datagram(&mut self, datagram: Bytes, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        let mut buf = BytesMut::from(&datagram[..]);
        self.decode(&mut buf, out)?;
        if buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::new(format!("datagram has {} bytes after its last whole frame", buf.len())))
        }
    }

    /// Encodes one frame for the device into `out` (leave it empty to send nothing). On
    /// UDP, what one call writes is sent as one datagram.
    fn encode(&mut self, frame: Downlink, out: &mut BytesMut) -> Result<(), CodecError>;

    /// A timer set with [`Uplink::SetTimer`] fired; the codec may produce frames as if the
    /// device had sent them (e.g. [`Uplink::Disconnect`] when its own keep alive expired).
    fn on_timer(&mut self, id: u32, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        let _ = (id, out);
        Ok(())
    }
}

/// Which device a datagram comes from, when the protocol says so in the datagram (a
/// device id field) rather than by the sender's address. Opaque bytes, compared exactly.
pub type DeviceKey = Bytes;

/// Makes the codec of each connection, and identifies devices on connection-less
/// transports. A closure `|| MyCodec::default()` is a factory.
pub trait CodecFactory: Send + Sync + 'static {
    /// A fresh codec for one TCP connection or one UDP device.
    fn new_codec(&self) -> Box<dyn Codec>;

    /// UDP only: the device a datagram belongs to (e.g. a device id field in its header),
    /// so a device keeps its session when its address changes (NAT rebinding, a new
    /// cellular attach). `None` (the default): the device is its sender's address. Called
    /// on every datagram before decoding; it must be cheap and must not panic (a panic is
    /// caught and the datagram dropped).
    fn device_key(&self, datagram: &[u8]) -> Option<DeviceKey> {
        let _ = datagram;
        None
    }
}

impl<F, C> CodecFactory for F
where
    F: Fn() -> C + Send + Sync + 'static,
    C: Codec,
{
    fn new_codec(&self) -> Box<dyn Codec> {
        Box::new(self())
    }
}
