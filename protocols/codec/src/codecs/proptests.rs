//! Property tests of the shipped codecs: no input makes a decoder panic (the adapter would
//! contain it, but a shipped codec must not rely on that), and the wire formats round-trip.

use bytes::Bytes;
use proptest::prelude::*;

use super::line::LineCodec;
use super::tlv_sensor::{RawFrame, SensorCodec, SensorOptions};
use crate::CodecTester;

fn no_panic(r: Result<Vec<crate::Uplink>, crate::CodecError>) {
    if let Err(e) = r {
        assert!(!e.0.starts_with("codec panicked"), "{e}");
    }
}

proptest! {
    #[test]
    fn line_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let mut t = CodecTester::new(LineCodec::default());
        for c in chunks {
            no_panic(t.feed(&c));
        }
    }

    #[test]
    fn line_commands_never_panic(line in "(CONNECT|PUB|PUB1|SUB|UNSUB|ACK|PING|QUIT)?[ a-z0-9/#+]{0,40}\n") {
        no_panic(CodecTester::new(LineCodec::default()).feed(line.as_bytes()));
    }

    #[test]
    fn tlv_sensor_never_panics(datagram in proptest::collection::vec(any::<u8>(), 0..64), kind in 1u8..=5, body in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut t = CodecTester::new(SensorCodec::new(SensorOptions::default()));
        no_panic(t.feed_datagram(&datagram));
        let framed = RawFrame { device: [7; 8], seq: 1, kind, body: Bytes::from(body) }.to_bytes();
        no_panic(CodecTester::new(SensorCodec::new(SensorOptions::default())).feed_datagram(&framed));
    }

    #[test]
    fn tlv_frames_round_trip(device in any::<[u8; 8]>(), seq in any::<u16>(), kind in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..100)) {
        let f = RawFrame { device, seq, kind, body: Bytes::from(body) };
        prop_assert_eq!(RawFrame::decode(&f.to_bytes()).unwrap(), f);
    }
}
