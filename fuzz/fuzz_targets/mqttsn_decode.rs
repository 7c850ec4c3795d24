//! Fuzz target for the MQTT-SN codec (`roost_mqttsn::codec`): arbitrary bytes are decoded as
//! one datagram, plain or forwarder-encapsulated. Decoding must never panic, and every
//! message it accepts must encode and decode back to itself.
//!
//! Run from the repository root:
//! `mkdir -p fuzz/corpus/mqttsn_decode && RUSTC_BOOTSTRAP=1 cargo fuzz run mqttsn_decode
//! fuzz/corpus/mqttsn_decode fuzz/seeds/mqttsn_decode -- -max_total_time=600`

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use roost_mqttsn::codec::{decode, decode_encapsulated, to_bytes};

fuzz_target!(|data: &[u8]| {
    let datagram = Bytes::copy_from_slice(data);
    check(&datagram);
    if let Ok(Some(e)) = decode_encapsulated(&datagram) {
        check(&e.inner);
    }
});

fn check(datagram: &Bytes) {
    if let Ok(msg) = decode(datagram) {
        let bytes = to_bytes(&msg).expect("a decoded message encodes");
        assert_eq!(decode(&bytes).expect("an encoded message decodes"), msg);
    }
}
