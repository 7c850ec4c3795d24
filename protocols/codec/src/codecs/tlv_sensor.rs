//! Codec layer, example: a fixed-layout binary sensor frame over UDP, the kind of
//! protocol battery devices speak. Every frame, both ways (integers big-endian):
//!
//! ```text
//! 0     1     2 .. 9       10 11   12     13 ..
//! 0xB5  0x01  device id    seq     type   body
//! magic ver   (8 bytes)    (u16)
//! ```
//!
//! | type | direction | body | Roost does |
//! | --- | --- | --- | --- |
//! | 0x01 REPORT | up | TLV readings | publishes JSON to `{prefix}/{id}/up`, QoS 0 |
//! | 0x02 CONFIRMED REPORT | up | TLV readings | the same at QoS 1, answers ACK |
//! | 0x03 PING | up | — | answers PONG |
//! | 0x04 BYE | up | — | disconnects the device (no will) |
//! | 0x05 COMMAND ACK | up | — | the device has command `seq` |
//! | 0x81 ACK | down | status: 0 ok, 1 not authorized, 2 refused | |
//! | 0x82 COMMAND | down | TLV settings, from JSON on `{prefix}/{id}/down` | `seq` = message id |
//! | 0x83 PONG | down | — | |
//! | 0x84 BYE | down | reason: 1 keep alive, 2 taken over, 3 kicked, 4 shutdown | |
//! | 0x85 REJECTED | down | status, as ACK | the connect was refused |
//!
//! Readings (REPORT): tag, length, value — `0x01` temperature (i16, 0.01 °C), `0x02`
//! humidity (u16, 0.01 %), `0x03` battery (u16, mV), `0x04` counter (u32); other tags are
//! published as hex under `"tag_N"`. Settings (COMMAND): `{"interval_s": u16}` -> tag
//! `0x10`, `{"led": bool}` -> tag `0x11`.
//!
//! A device needs no explicit connect: its first frame connects it as client
//! `sensor-{id hex}` (persistent session, so commands wait while it sleeps) subscribed to
//! `{prefix}/{id}/down` at QoS 1. The device id in the header is the device's identity
//! ([`crate::CodecFactory::device_key`]), so a new source address keeps the session.
//!
//! The id is not authenticated: whoever reaches the port can speak for any device (as with
//! most such field protocols). Run it on a trusted network, or write a codec whose frames
//! carry a MAC and check it in `decode`.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::QoS;
use crate::codec::{Codec, CodecError, CodecFactory, DeviceKey};
use crate::frame::{CloseReason, ConnectFrame, Downlink, Refused, Uplink};
use crate::registry::{Options, OptionsError};

/// The registered name.
pub const NAME: &str = "tlv-sensor";

pub const MAGIC: u8 = 0xB5;
pub const VERSION: u8 = 0x01;
pub const HEADER_LEN: usize = 13;

pub mod kind {
    pub const REPORT: u8 = 0x01;
    pub const CONFIRMED_REPORT: u8 = 0x02;
    pub const PING: u8 = 0x03;
    pub const BYE: u8 = 0x04;
    pub const COMMAND_ACK: u8 = 0x05;
    pub const ACK: u8 = 0x81;
    pub const COMMAND: u8 = 0x82;
    pub const PONG: u8 = 0x83;
    pub const BYE_DOWN: u8 = 0x84;
    pub const REJECTED: u8 = 0x85;
}

pub mod tag {
    pub const TEMPERATURE: u8 = 0x01;
    pub const HUMIDITY: u8 = 0x02;
    pub const BATTERY: u8 = 0x03;
    pub const COUNTER: u8 = 0x04;
    pub const INTERVAL: u8 = 0x10;
    pub const LED: u8 = 0x11;
}

/// One frame as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub device: [u8; 8],
    pub seq: u16,
    pub kind: u8,
    pub body: Bytes,
}

impl RawFrame {
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HEADER_LEN + self.body.len());
        out.put_u8(MAGIC);
        out.put_u8(VERSION);
        out.put_slice(&self.device);
        out.put_u16(self.seq);
        out.put_u8(self.kind);
        out.put_slice(&self.body);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    pub fn decode(datagram: &[u8]) -> Result<RawFrame, CodecError> {
        if datagram.len() < HEADER_LEN {
            return Err(CodecError::new(format!(
                "tlv-sensor: frame is {} bytes, header needs {HEADER_LEN}",
                datagram.len()
            )));
        }
        if datagram[0] != MAGIC {
            return Err(CodecError::new(format!("tlv-sensor: magic is 0x{:02x}, not 0x{MAGIC:02x}", datagram[0])));
        }
        if datagram[1] != VERSION {
            return Err(CodecError::new(format!("tlv-sensor: version {} is not supported", datagram[1])));
        }
        let mut device = [0u8; 8];
        device.copy_from_slice(&datagram[2..10]);
        Ok(RawFrame {
            device,
            seq: u16::from_be_bytes([datagram[10], datagram[11]]),
            kind: datagram[12],
            body: Bytes::copy_from_slice(&datagram[HEADER_LEN..]),
        })
    }
}

/// Lower-case hex of a device id, as in client ids and topics.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// `[codec.options]` of a `tlv-sensor` listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensorOptions {
    /// First topic level: devices publish to `{topic_prefix}/{id}/up` and hear commands on
    /// `{topic_prefix}/{id}/down`.
    pub topic_prefix: String,
    /// Seconds without a frame before a device counts as gone (its will: none).
    pub keep_alive: u16,
    /// Seconds a sleeping device's session (and the commands queued for it) is kept.
    pub session_expiry: u32,
    /// The username every device of this listener presents (the frames carry none), so
    /// that `[auth] allow_anonymous = false` and ACL rules by username can admit them.
    pub username: Option<String>,
}

impl Default for SensorOptions {
    fn default() -> Self {
        SensorOptions { topic_prefix: "sensors".into(), keep_alive: 300, session_expiry: 3600, username: None }
    }
}

pub(crate) fn factory(options: &Options) -> Result<SensorFactory, OptionsError> {
    let options: SensorOptions = options.parse()?;
    if options.topic_prefix.is_empty() || options.topic_prefix.contains(['+', '#']) {
        return Err(OptionsError::new(format!(
            "topic_prefix {:?} must be a non-empty topic without wildcards",
            options.topic_prefix
        )));
    }
    Ok(SensorFactory { options })
}

pub struct SensorFactory {
    pub options: SensorOptions,
}

impl CodecFactory for SensorFactory {
    fn new_codec(&self) -> Box<dyn Codec> {
        Box::new(SensorCodec::new(self.options.clone()))
    }

    fn device_key(&self, datagram: &[u8]) -> Option<DeviceKey> {
        (datagram.len() >= HEADER_LEN && datagram[0] == MAGIC).then(|| Bytes::copy_from_slice(&datagram[2..10]))
    }
}

/// The `tlv-sensor` codec of one device.
#[derive(Debug, Clone)]
pub struct SensorCodec {
    options: SensorOptions,
    device: Option<[u8; 8]>,
    /// Sequence number of the last PING, echoed by PONG.
    ping_seq: u16,
    /// Sequence number of the frame that connected, echoed by REJECTED.
    connect_seq: u16,
    /// For each report not yet answered, oldest first: was it confirmed?
    confirmed: VecDeque<bool>,
}

impl SensorCodec {
    pub fn new(options: SensorOptions) -> Self {
        SensorCodec { options, device: None, ping_seq: 0, connect_seq: 0, confirmed: VecDeque::new() }
    }

    fn frame(&self, seq: u16, kind: u8, body: Bytes, out: &mut BytesMut) {
        RawFrame { device: self.device.unwrap_or_default(), seq, kind, body }.encode(out);
    }
}

impl Codec for SensorCodec {
    fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        let datagram = buf.split().freeze();
        self.decode_datagram(datagram, out)
    }

    fn decode_datagram(&mut self, datagram: Bytes, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        let f = RawFrame::decode(&datagram)?;
        let id = hex(&f.device);
        match self.device {
            Some(d) if d != f.device => return Err(CodecError::new("tlv-sensor: device id changed on one connection")),
            Some(_) => {}
            None => {
                self.device = Some(f.device);
                self.connect_seq = f.seq;
                let mut c = ConnectFrame::new(format!("sensor-{id}"), self.options.keep_alive);
                c.clean_start = false;
                c.username = self.options.username.clone();
                c.session_expiry = Some(Duration::from_secs(u64::from(self.options.session_expiry)));
                out.push(Uplink::Connect(c));
                let filter = format!("{}/{id}/down", self.options.topic_prefix);
                out.push(Uplink::Subscribe { id: 0, filter, qos: QoS::AtLeastOnce });
            }
        }
        match f.kind {
            kind::REPORT | kind::CONFIRMED_REPORT => {
                let mut json = readings(&f.body)?;
                json.insert("device".into(), Value::from(id.clone()));
                json.insert("seq".into(), Value::from(f.seq));
                let confirmed = f.kind == kind::CONFIRMED_REPORT;
                let qos = if confirmed { QoS::AtLeastOnce } else { QoS::AtMostOnce };
                // Every publish is answered, in order: remember which answers to send.
                self.confirmed.push_back(confirmed);
                let payload = Bytes::from(Value::Object(json).to_string());
                out.push(Uplink::Publish {
                    id: f.seq,
                    topic: format!("{}/{id}/up", self.options.topic_prefix),
                    payload,
                    qos,
                    retain: false,
                });
            }
            kind::PING => {
                self.ping_seq = f.seq;
                out.push(Uplink::Ping);
            }
            kind::BYE => out.push(Uplink::Disconnect),
            kind::COMMAND_ACK => out.push(Uplink::Ack { id: f.seq }),
            other => return Err(CodecError::new(format!("tlv-sensor: unknown frame type 0x{other:02x}"))),
        }
        Ok(())
    }

    fn encode(&mut self, frame: Downlink, out: &mut BytesMut) -> Result<(), CodecError> {
        match frame {
            Downlink::PubAck { id, result } => {
                // Only confirmed reports are acknowledged.
                if self.confirmed.pop_front().unwrap_or(false) {
                    self.frame(id, kind::ACK, Bytes::copy_from_slice(&[status(result)]), out)
                }
            }
            Downlink::ConnAck { result: Err(why), .. } => {
                self.frame(self.connect_seq, kind::REJECTED, Bytes::copy_from_slice(&[status(Err(why))]), out)
            }
            Downlink::Pong => self.frame(self.ping_seq, kind::PONG, Bytes::new(), out),
            Downlink::Publish { id, payload, .. } => {
                let body = settings(&payload)?;
                self.frame(id, kind::COMMAND, body, out);
            }
            Downlink::Disconnect { reason } => {
                let code = match reason {
                    CloseReason::KeepAliveTimeout => 1,
                    CloseReason::TakenOver => 2,
                    CloseReason::Kicked => 3,
                    CloseReason::Shutdown => 4,
                };
                self.frame(0, kind::BYE_DOWN, Bytes::copy_from_slice(&[code]), out);
            }
            Downlink::ConnAck { .. } | Downlink::SubAck { .. } | Downlink::UnsubAck { .. } => {}
        }
        Ok(())
    }
}

fn status(result: Result<(), Refused>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(Refused::NotAuthorized | Refused::BadCredentials) => 1,
        Err(_) => 2,
    }
}

/// TLV readings -> JSON fields.
pub fn readings(mut body: &[u8]) -> Result<Map<String, Value>, CodecError> {
    let mut json = Map::new();
    while !body.is_empty() {
        if body.len() < 2 {
            return Err(CodecError::new("tlv-sensor: reading cut after its tag"));
        }
        let (t, len) = (body[0], usize::from(body[1]));
        body.advance(2);
        if body.len() < len {
            return Err(CodecError::new(format!(
                "tlv-sensor: reading 0x{t:02x} says {len} bytes, {} left",
                body.len()
            )));
        }
        let v = &body[..len];
        let fixed = |n: usize| {
            if len == n {
                Ok(())
            } else {
                Err(CodecError::new(format!("tlv-sensor: reading 0x{t:02x} is {len} bytes, not {n}")))
            }
        };
        let (key, value) = match t {
            tag::TEMPERATURE => {
                fixed(2)?;
                ("temperature_c".to_string(), Value::from(f64::from(i16::from_be_bytes([v[0], v[1]])) / 100.0))
            }
            tag::HUMIDITY => {
                fixed(2)?;
                ("humidity_pct".to_string(), Value::from(f64::from(u16::from_be_bytes([v[0], v[1]])) / 100.0))
            }
            tag::BATTERY => {
                fixed(2)?;
                ("battery_mv".to_string(), Value::from(u16::from_be_bytes([v[0], v[1]])))
            }
            tag::COUNTER => {
                fixed(4)?;
                ("counter".to_string(), Value::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])))
            }
            other => (format!("tag_{other}"), Value::from(hex(v))),
        };
        json.insert(key, value);
        body.advance(len);
    }
    Ok(json)
}

/// A JSON command -> TLV settings.
pub fn settings(payload: &[u8]) -> Result<Bytes, CodecError> {
    let json: Map<String, Value> = serde_json::from_slice(payload)
        .map_err(|e| CodecError::new(format!("tlv-sensor: command is not a JSON object: {e}")))?;
    let mut body = BytesMut::new();
    for (key, value) in &json {
        match (key.as_str(), value) {
            ("interval_s", Value::Number(n)) => {
                let s = n
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or_else(|| CodecError::new("tlv-sensor: interval_s must be 0..=65535"))?;
                body.put_slice(&[tag::INTERVAL, 2]);
                body.put_u16(s);
            }
            ("led", Value::Bool(on)) => body.put_slice(&[tag::LED, 1, u8::from(*on)]),
            _ => return Err(CodecError::new(format!("tlv-sensor: unknown command field {key:?} (interval_s, led)"))),
        }
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodecTester;

    const DEV: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn report(kind: u8, seq: u16, body: &[u8]) -> Bytes {
        RawFrame { device: DEV, seq, kind, body: Bytes::copy_from_slice(body) }.to_bytes()
    }

    fn tester() -> CodecTester {
        CodecTester::from_factory(&factory(&Options::default()).unwrap())
    }

    #[test]
    fn first_report_connects_subscribes_and_publishes_json() {
        let mut t = tester();
        let body = [tag::TEMPERATURE, 2, 0x08, 0x66, tag::BATTERY, 2, 0x0b, 0xb8, 0x20, 1, 0xab];
        let frames = t.feed_datagram(&report(kind::CONFIRMED_REPORT, 7, &body)).unwrap();
        let [
            Uplink::Connect(c),
            Uplink::Subscribe { filter, qos: QoS::AtLeastOnce, .. },
            Uplink::Publish { id: 7, topic, payload, qos: QoS::AtLeastOnce, .. },
        ] = &frames[..]
        else {
            panic!("{frames:?}")
        };
        assert_eq!(c.client_id, "sensor-0102030405060708");
        assert!(!c.clean_start);
        assert_eq!(filter, "sensors/0102030405060708/down");
        assert_eq!(topic, "sensors/0102030405060708/up");
        let json: Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"device": "0102030405060708", "seq": 7, "temperature_c": 21.5, "battery_mv": 3000, "tag_32": "ab"})
        );
        // The next frame of the same device does not connect again.
        assert_eq!(t.feed_datagram(&report(kind::PING, 8, &[])).unwrap(), [Uplink::Ping]);
        assert_eq!(t.encode(Downlink::Pong).unwrap(), report(kind::PONG, 8, &[]));
    }

    #[test]
    fn commands_and_acks_encode() {
        let mut t = tester();
        t.feed_datagram(&report(kind::REPORT, 1, &[])).unwrap();
        let cmd = Downlink::Publish {
            id: 9,
            topic: "x".into(),
            payload: r#"{"interval_s":60,"led":true}"#.into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            dup: false,
        };
        assert_eq!(t.encode(cmd).unwrap(), report(kind::COMMAND, 9, &[tag::INTERVAL, 2, 0, 60, tag::LED, 1, 1]));
        assert_eq!(t.feed_datagram(&report(kind::COMMAND_ACK, 9, &[])).unwrap(), [Uplink::Ack { id: 9 }]);
        // The answer to the unconfirmed report above: nothing on the wire.
        assert_eq!(t.encode(Downlink::PubAck { id: 0, result: Ok(()) }).unwrap(), "");
        t.feed_datagram(&report(kind::CONFIRMED_REPORT, 4, &[])).unwrap();
        assert_eq!(
            t.encode(Downlink::PubAck { id: 4, result: Err(Refused::NotAuthorized) }).unwrap(),
            report(kind::ACK, 4, &[1])
        );
        assert_eq!(t.encode(Downlink::SubAck { id: 0, result: Ok(QoS::AtLeastOnce) }).unwrap(), "");
        let bad = Downlink::Publish {
            id: 1,
            topic: "x".into(),
            payload: r#"{"reboot":1}"#.into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            dup: false,
        };
        assert!(t.encode(bad).is_err());
    }

    #[test]
    fn malformed_frames_are_errors() {
        for bad in [
            &b""[..],
            &[0xB5, 1, 0][..],
            &report(kind::REPORT, 1, &[])[..1],
            &[0x00; 13][..],
            &report(0x7f, 1, &[])[..],
            &report(kind::REPORT, 1, &[tag::TEMPERATURE, 3, 0, 0, 0])[..],
            &report(kind::REPORT, 1, &[tag::TEMPERATURE, 9, 0])[..],
            &report(kind::REPORT, 1, &[tag::TEMPERATURE])[..],
        ] {
            assert!(tester().feed_datagram(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_key_is_the_header_id() {
        let f = factory(&Options::default()).unwrap();
        assert_eq!(f.device_key(&report(kind::REPORT, 1, &[])).as_deref(), Some(&DEV[..]));
        assert_eq!(f.device_key(b"short"), None);
    }
}
