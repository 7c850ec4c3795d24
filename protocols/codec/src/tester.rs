//! [`CodecTester`]: test a codec in a unit test, without sockets or a broker. Feed bytes
//! and assert the frames; feed frames and assert the bytes. It buffers a stream the way
//! the TCP driver does (partial frames stay for the next feed), and catches panics so a
//! test can assert that bad input is an error rather than a crash.
//!
//! ```
//! use roost_codec::{CodecTester, Uplink, codecs::line::LineCodec};
//! let mut t = CodecTester::new(LineCodec::default());
//! assert_eq!(t.feed(b"PI").unwrap(), []);
//! assert_eq!(t.feed(b"NG\n").unwrap(), [Uplink::Ping]);
//! assert_eq!(t.encode(roost_codec::Downlink::Pong).unwrap(), "PONG\n");
//! ```

use bytes::{Bytes, BytesMut};

use crate::codec::{Codec, CodecError, CodecFactory};
use crate::frame::{Downlink, Uplink};
use crate::guard::contain;

pub struct CodecTester {
    codec: Box<dyn Codec>,
    buf: BytesMut,
}

impl CodecTester {
    pub fn new(codec: impl Codec) -> Self {
        CodecTester { codec: Box::new(codec), buf: BytesMut::new() }
    }

    /// A tester for the codec `factory` makes for one connection.
    pub fn from_factory(factory: &dyn CodecFactory) -> Self {
        CodecTester { codec: factory.new_codec(), buf: BytesMut::new() }
    }

    /// Stream input: appends `bytes` to what is buffered and decodes. A panic in the codec
    /// is returned as an error saying so.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Uplink>, CodecError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let (codec, buf) = (&mut self.codec, &mut self.buf);
        contain(|| codec.decode(buf, &mut out)).map_err(panicked)??;
        Ok(out)
    }

    /// One datagram.
    pub fn feed_datagram(&mut self, datagram: &[u8]) -> Result<Vec<Uplink>, CodecError> {
        let mut out = Vec::new();
        let codec = &mut self.codec;
        contain(|| codec.decode_datagram(Bytes::copy_from_slice(datagram), &mut out)).map_err(panicked)??;
        Ok(out)
    }

    /// The bytes the codec writes for `frame`.
    pub fn encode(&mut self, frame: Downlink) -> Result<Bytes, CodecError> {
        let mut out = BytesMut::new();
        let codec = &mut self.codec;
        contain(|| codec.encode(frame, &mut out)).map_err(panicked)??;
        Ok(out.freeze())
    }

    /// Fires timer `id`.
    pub fn timer(&mut self, id: u32) -> Result<Vec<Uplink>, CodecError> {
        let mut out = Vec::new();
        let codec = &mut self.codec;
        contain(|| codec.on_timer(id, &mut out)).map_err(panicked)??;
        Ok(out)
    }

    /// Stream bytes not yet consumed by a whole frame.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

fn panicked(message: String) -> CodecError {
    CodecError::new(format!("codec panicked: {message}"))
}
