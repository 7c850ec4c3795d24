//! Typed settings of one `[[codec]]` listener, filled from config by the server crate.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::registry::Options;

/// How a codec listener reaches its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A byte stream per device; frames may span reads.
    Tcp,
    /// One socket for all devices; each datagram holds whole frames.
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// Bounds of one listener; what happens at each is logged and closes or drops only what
/// went over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecLimits {
    /// Devices connected through this listener at once (TCP connections, UDP devices).
    pub max_connections: usize,
    /// Largest frame (TCP: bytes buffered without a whole frame; UDP: datagram size).
    pub max_frame_size: usize,
    /// A device that has not connected within this time is dropped.
    pub connect_timeout: Duration,
    /// A connected device with keep alive 0 is dropped after this long without input.
    pub idle_timeout: Duration,
    /// Datagrams waiting for one UDP device's task; beyond it they are dropped.
    pub max_pending_datagrams: usize,
}

impl Default for CodecLimits {
    fn default() -> Self {
        CodecLimits {
            max_connections: 10_000,
            max_frame_size: 4096,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_pending_datagrams: 64,
        }
    }
}

/// One `[[codec]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecListenerSettings {
    /// The listener's own name (unique), for logs and `Gateway::codec_addr`.
    pub name: String,
    /// The registered codec it runs.
    pub codec: String,
    pub transport: Transport,
    pub bind: SocketAddr,
    /// Options handed to the codec's factory.
    pub options: Options,
    /// Prefix of every topic of this listener's devices (`""`: none). `${clientid}` and
    /// `${username}` are replaced per device.
    pub mountpoint: String,
    pub limits: CodecLimits,
}
