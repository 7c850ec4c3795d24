//! Codec layer, example: a line-based text protocol over TCP. One command per line
//! (`\n`, an optional `\r` before it is ignored), answered in order:
//!
//! | device sends | means | Roost answers |
//! | --- | --- | --- |
//! | `CONNECT <id> [<user> [<password>]]` | connect, keep alive from `options.keep_alive` | `OK` or `ERR <why>` |
//! | `PUB <topic> <payload>` / `PUB1 ...` | publish at QoS 0 / QoS 1 | `OK` or `ERR <why>` |
//! | `SUB <filter> [<qos>]` | subscribe (QoS 0 or 1) | `OK <qos>` or `ERR <why>` |
//! | `UNSUB <filter>` | unsubscribe | `OK` |
//! | `ACK <id>` | the device has message `<id>` | — |
//! | `PING` | keep alive | `PONG` |
//! | `QUIT` | disconnect (no will) | — |
//!
//! Messages for the device arrive as `MSG <id> <topic> <payload>` (`<id>` 0 for QoS 0; for
//! QoS 1 the device answers `ACK <id>`). Roost closing the connection sends `BYE <why>`.
//! An unknown command or a line that is not UTF-8 is a protocol error: the connection
//! closes.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use crate::QoS;
use crate::codec::{Codec, CodecError, CodecFactory};
use crate::frame::{CloseReason, ConnectFrame, Downlink, Uplink};
use crate::registry::{Options, OptionsError};

/// The registered name.
pub const NAME: &str = "line";

/// `[codec.options]` of a `line` listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineOptions {
    /// Keep alive of every device, in seconds (0: the listener's `idle_timeout`).
    pub keep_alive: u16,
}

impl Default for LineOptions {
    fn default() -> Self {
        LineOptions { keep_alive: 60 }
    }
}

pub(crate) fn factory(options: &Options) -> Result<impl CodecFactory + use<>, OptionsError> {
    let options: LineOptions = options.parse()?;
    Ok(move || LineCodec { options: options.clone() })
}

/// The `line` codec of one connection.
#[derive(Debug, Clone, Default)]
pub struct LineCodec {
    pub options: LineOptions,
}

impl Codec for LineCodec {
    fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let raw = buf.split_to(end + 1);
            let line = std::str::from_utf8(&raw[..end])
                .map_err(|_| CodecError::new("line is not UTF-8"))?
                .trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            out.push(self.parse(line)?);
        }
        Ok(())
    }

    fn encode(&mut self, frame: Downlink, out: &mut BytesMut) -> Result<(), CodecError> {
        let mut line = String::new();
        let _ = match frame {
            Downlink::ConnAck { result: Ok(()), .. }
            | Downlink::PubAck { result: Ok(()), .. }
            | Downlink::UnsubAck { .. } => {
                write!(line, "OK")
            }
            Downlink::SubAck { result: Ok(qos), .. } => write!(line, "OK {}", qos as u8),
            Downlink::ConnAck { result: Err(why), .. }
            | Downlink::PubAck { result: Err(why), .. }
            | Downlink::SubAck { result: Err(why), .. } => write!(line, "ERR {why}"),
            Downlink::Pong => write!(line, "PONG"),
            Downlink::Publish { id, topic, payload, .. } => {
                let text = std::str::from_utf8(&payload)
                    .ok()
                    .filter(|t| !t.contains('\n'))
                    .ok_or_else(|| CodecError::new(format!("message on {topic} is not one line of UTF-8")))?;
                write!(line, "MSG {id} {topic} {text}")
            }
            Downlink::Disconnect { reason } => write!(
                line,
                "BYE {}",
                match reason {
                    CloseReason::KeepAliveTimeout => "keep alive timeout",
                    CloseReason::TakenOver => "taken over",
                    CloseReason::Kicked => "kicked",
                    CloseReason::Shutdown => "shutting down",
                }
            ),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\n");
        Ok(())
    }
}

impl LineCodec {
    fn parse(&self, line: &str) -> Result<Uplink, CodecError> {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut words = rest.split_whitespace();
        let mut word = |what: &str| words.next().ok_or_else(|| CodecError::new(format!("{command}: {what} missing")));
        Ok(match command.to_ascii_uppercase().as_str() {
            "CONNECT" => {
                let mut c = ConnectFrame::new(word("client id")?, self.options.keep_alive);
                c.username = words.next().map(str::to_string);
                c.password = words.next().map(|p| Bytes::copy_from_slice(p.as_bytes()));
                Uplink::Connect(c)
            }
            "PUB" | "PUB1" => {
                let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
                if topic.is_empty() {
                    return Err(CodecError::new(format!("{command}: topic missing")));
                }
                let qos = if command.ends_with('1') { QoS::AtLeastOnce } else { QoS::AtMostOnce };
                Uplink::Publish {
                    id: 0,
                    topic: topic.to_string(),
                    payload: Bytes::copy_from_slice(payload.as_bytes()),
                    qos,
                    retain: false,
                }
            }
            "SUB" => {
                let filter = word("filter")?.to_string();
                let qos = match words.next() {
                    None | Some("0") => QoS::AtMostOnce,
                    Some("1") => QoS::AtLeastOnce,
                    Some(q) => return Err(CodecError::new(format!("SUB: QoS {q:?} is not 0 or 1"))),
                };
                Uplink::Subscribe { id: 0, filter, qos }
            }
            "UNSUB" => Uplink::Unsubscribe { id: 0, filter: word("filter")?.to_string() },
            "ACK" => {
                let id = word("id")?;
                Uplink::Ack { id: id.parse().map_err(|_| CodecError::new(format!("ACK: {id:?} is not a message id")))? }
            }
            "PING" => Uplink::Ping,
            "QUIT" => Uplink::Disconnect,
            _ => return Err(CodecError::new(format!("unknown command {command:?}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodecTester;

    // The behaviour tests live in `line_suite`, shared with the WebAssembly build of this
    // codec (roost-plugins), so both are held to the same assertions.
    #[test]
    fn conformance_suite() {
        crate::codecs::line_suite::all(&|| CodecTester::new(LineCodec::default()));
    }

    #[test]
    fn options_are_checked() {
        let opts = |text: &str| Options(toml::from_str(text).unwrap());
        assert!(factory(&opts("keep_alive = 5")).is_ok());
        let e = factory(&opts("keepalive = 5")).err().unwrap();
        assert!(e.to_string().contains("keepalive"), "{e}");
    }
}
