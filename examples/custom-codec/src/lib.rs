//! The `kv` codec: a serial-to-TCP converter forwards lines such as
//!
//! ```text
//! boiler-7 temp=61.5 pressure=1.9
//! ```
//!
//! The first word is the device; the first line connects it (as client `kv-boiler-7`).
//! Each `key=value` is published to `{prefix}/boiler-7/{key}`. A message on
//! `{prefix}/boiler-7/set` goes to the device as `SET <payload>`.
//!
//! Options (`[codec.options]`): `prefix` (default `"kv"`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

use bytes::{Bytes, BytesMut};
use roost::codec::{Codec, CodecError, ConnectFrame, Downlink, Options, OptionsError, QoS, Registry, Uplink};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvOptions {
    pub prefix: String,
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions { prefix: "kv".into() }
    }
}

#[derive(Debug, Default)]
pub struct KvCodec {
    options: KvOptions,
    device: Option<String>,
}

impl Codec for KvCodec {
    fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(end + 1);
            let line = std::str::from_utf8(&line[..end]).map_err(|_| CodecError::new("kv: line is not UTF-8"))?;
            let mut words = line.split_whitespace();
            let Some(device) = words.next() else { continue };
            match &self.device {
                None => {
                    self.device = Some(device.to_string());
                    out.push(Uplink::Connect(ConnectFrame::new(format!("kv-{device}"), 60)));
                    let filter = format!("{}/{device}/set", self.options.prefix);
                    out.push(Uplink::Subscribe { id: 0, filter, qos: QoS::AtMostOnce });
                }
                Some(d) if d != device => return Err(CodecError::new(format!("kv: {device} on {d}'s connection"))),
                Some(_) => {}
            }
            for pair in words {
                let (key, value) =
                    pair.split_once('=').ok_or_else(|| CodecError::new(format!("kv: {pair:?} is not key=value")))?;
                let topic = format!("{}/{device}/{key}", self.options.prefix);
                let payload = Bytes::copy_from_slice(value.as_bytes());
                out.push(Uplink::Publish { id: 0, topic, payload, qos: QoS::AtMostOnce, retain: false });
            }
        }
        Ok(())
    }

    fn encode(&mut self, frame: Downlink, out: &mut BytesMut) -> Result<(), CodecError> {
        if let Downlink::Publish { payload, .. } = frame {
            out.extend_from_slice(b"SET ");
            out.extend_from_slice(&payload);
            out.extend_from_slice(b"\n");
        }
        // Connect, publish and subscribe answers: the device expects none.
        Ok(())
    }
}

/// Adds the `kv` codec to `codecs`.
pub fn register(codecs: &mut Registry) {
    codecs.register("kv", |options: &Options| -> Result<_, OptionsError> {
        let options: KvOptions = options.parse()?;
        Ok(move || KvCodec { options: options.clone(), device: None })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost::codec::CodecTester;

    #[test]
    fn a_line_connects_then_publishes_each_pair() {
        let mut t = CodecTester::new(KvCodec::default());
        assert_eq!(t.feed(b"boiler-7 temp=61.5 pres").unwrap(), []);
        let frames = t.feed(b"sure=1.9\n").unwrap();
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert_eq!(frames[0], Uplink::Connect(ConnectFrame::new("kv-boiler-7", 60)));
        assert!(
            matches!(&frames[3], Uplink::Publish { topic, payload, .. } if topic == "kv/boiler-7/pressure" && payload == "1.9")
        );
        assert!(t.feed(b"boiler-7 temp\n").is_err());
    }

    #[test]
    fn commands_become_set_lines() {
        let mut t = CodecTester::new(KvCodec::default());
        let cmd = Downlink::Publish {
            id: 0,
            topic: "x".into(),
            payload: "burner=off".into(),
            qos: QoS::AtMostOnce,
            retain: false,
            dup: false,
        };
        assert_eq!(t.encode(cmd).unwrap(), "SET burner=off\n");
    }
}
