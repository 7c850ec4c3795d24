//! Driver layer, the socket side of one MQTT connection: reading into a buffer that exists
//! only while bytes wait, decoding whole packets out of it, and writing queued packets with
//! a timeout. No protocol state here; the session owns that.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::codec::{self, DecodeError, Packet, ProtocolVersion};
use crate::transport::Stream;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;
/// Stop batching once this much is waiting to be written.
pub(super) const MAX_WRITE_BUF: usize = 64 * 1024;
/// A client that accepts no bytes for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection's stream and its read and write buffers.
pub(super) struct Io {
    pub(super) stream: Stream,
    pub(super) rbuf: BytesMut,
    pub(super) wbuf: BytesMut,
    pub(super) version: ProtocolVersion,
    /// `[mqtt] max_packet_size` (a `u32`, next to `version`: 8 bytes less per connection).
    pub(super) max_incoming: u32,
    /// PUBLISH packets routed since the task last yielded (see [`super::PUBLISH_TURN`]); here, in
    /// the padding after `version`, it costs an idle connection nothing.
    pub(super) routed: u16,
}

/// What waiting for a packet brought.
pub(super) enum Read {
    Packet(Packet),
    Closed,
    Error(DecodeError),
}

impl Io {
    /// Decodes one buffered packet, if a whole one is there.
    pub(super) fn decode(&mut self) -> Result<Option<Packet>, DecodeError> {
        if self.rbuf.is_empty() {
            return Ok(None);
        }
        let r = codec::decode(&mut self.rbuf, self.version, self.max_incoming as usize);
        if self.rbuf.is_empty() {
            // Idle connections keep no read buffer.
            self.rbuf = BytesMut::new();
        }
        r
    }

    /// Reads what the stream has (waiting until it has something); `Ok(0)`: closed.
    /// Cancel-safe: nothing read is lost if the future is dropped.
    pub(super) async fn read_more(&mut self) -> std::io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(tcp) => loop {
                // poll_read_ready rather than readable(): it parks the waker in the socket's
                // registration, where readable()'s future carries its own ~150-byte waiter
                // node in every idle connection's task.
                std::future::poll_fn(|cx| tcp.poll_read_ready(cx)).await?;
                self.rbuf.reserve(READ_CHUNK);
                let r = tcp.try_read_buf(&mut self.rbuf);
                if self.rbuf.is_empty() {
                    // Readiness can be stale (it stays set after the handshake read the
                    // CONNECT until a read would block): an idle connection must not keep
                    // the chunk reserved for a read that brought nothing.
                    self.rbuf = BytesMut::new();
                }
                match r {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    r => return r,
                }
            },
            Stream::Other(s) => {
                self.rbuf.reserve(READ_CHUNK);
                let rbuf = &mut self.rbuf;
                std::future::poll_fn(|cx| tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut **s), cx, rbuf)).await
            }
        }
    }

    /// Waits for the next packet (used before CONNECT).
    pub(super) async fn read_packet(&mut self) -> Read {
        loop {
            match self.decode() {
                Ok(Some(p)) => return Read::Packet(p),
                Ok(None) => {}
                Err(e) => return Read::Error(e),
            }
            match self.read_more().await {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(_) => {}
            }
        }
    }

    pub(super) fn queue(&mut self, p: &Packet) {
        if let Err(e) = codec::encode(p, self.version, &mut self.wbuf) {
            tracing::error!(error = %e, "mqtt: could not encode an outgoing packet");
        }
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<usize> {
        if self.wbuf.is_empty() {
            return Ok(0);
        }
        let n = self.wbuf.len();
        let write = async {
            match &mut self.stream {
                Stream::Tcp(tcp) => tcp.write_all(&self.wbuf).await,
                Stream::Other(s) => {
                    s.write_all(&self.wbuf).await?;
                    s.flush().await
                }
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client accepts no bytes")),
        }
        if self.wbuf.capacity() > MAX_WRITE_BUF * 2 || n < self.wbuf.capacity() / 4 {
            self.wbuf = BytesMut::new();
        } else {
            self.wbuf.clear();
        }
        Ok(n)
    }
}
