//! Fuzz target for the MQTT codec (`roost_mqtt::codec`): arbitrary bytes are decoded as a
//! stream of packets, as MQTT 3.1.1 and as MQTT 5.0, with a 1 MiB packet limit. Decoding must
//! never panic, must consume bytes exactly when it returns a packet, and every packet it
//! accepts must encode (with `encoded_len` agreeing) and decode back to itself.
//!
//! Run from the repository root:
//! `mkdir -p fuzz/corpus/mqtt_decode && RUSTC_BOOTSTRAP=1 cargo fuzz run mqtt_decode
//! fuzz/corpus/mqtt_decode fuzz/seeds/mqtt_decode -- -max_total_time=600`

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use roost_mqtt::codec::{Packet, ProtocolVersion, decode, encode, encoded_len};

const MAX_PACKET: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        decode_stream(data, version);
    }
});

fn decode_stream(data: &[u8], version: ProtocolVersion) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decode(&mut buf, version, MAX_PACKET) {
            Ok(Some(packet)) => {
                assert!(buf.len() < before, "a packet must consume bytes");
                assert_round_trip(&packet, version);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "waiting for more must not consume");
                break;
            }
            Err(_) => break,
        }
    }
}

fn assert_round_trip(packet: &Packet, version: ProtocolVersion) {
    let mut out = BytesMut::new();
    if let Err(e) = encode(packet, version, &mut out) {
        panic!("decoded packet does not encode: {e}\n{packet:?}");
    }
    assert_eq!(out.len(), encoded_len(packet, version), "encoded_len of {packet:?}");
    let encoded = out.clone();
    match decode(&mut out, version, MAX_PACKET) {
        Ok(Some(again)) => {
            assert_eq!(&again, packet, "round trip through {encoded:02X?}");
            assert!(out.is_empty(), "re-encoded bytes left over");
        }
        other => panic!("re-encoded packet does not decode: {other:?}\n{packet:?}\n{encoded:02X?}"),
    }
}
