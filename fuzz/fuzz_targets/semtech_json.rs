//! Fuzz target for the Semtech UDP packet forwarder JSON (`roost_lorawan::semtech`): the
//! first byte picks the datagram (PUSH_DATA `rxpk`/`stat`, PULL_RESP `txpk`, TX_ACK
//! `txpk_ack`), whose 4- or 12-byte header is built here so every input reaches the JSON
//! reader; the rest is the JSON. What decodes must encode to a datagram that decodes to the
//! same packet, and each received frame's fields are read as the gateway driver reads them
//! (base64 data, data rate, best RSSI/SNR). Nothing may panic.
//!
//! Run from the repository root: `scripts/fuzz semtech_json 600`

#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_lorawan::semtech::{self, Packet};

fuzz_target!(|data: &[u8]| {
    let [kind, json @ ..] = data else { return };
    let mut datagram = vec![2, 0x12, 0x34];
    match kind % 3 {
        0 => datagram.extend_from_slice(&[0x00, 0xaa, 0x55, 0, 0, 0, 0, 0, 1]),
        1 => datagram.push(0x03),
        _ => datagram.extend_from_slice(&[0x05, 0xaa, 0x55, 0, 0, 0, 0, 0, 1]),
    }
    datagram.extend_from_slice(json);
    let Ok(packet) = semtech::decode(&datagram) else { return };
    let again = semtech::encode(&packet);
    match semtech::decode(&again) {
        Ok(back) => assert_eq!(back, packet, "re-decoded from {}", String::from_utf8_lossy(&again)),
        Err(e) => panic!("{packet:?} encoded as {} does not decode: {e}", String::from_utf8_lossy(&again)),
    }
    match packet {
        Packet::PushData { payload, .. } => {
            for rx in &payload.rxpk {
                let _ = rx.payload();
                let _ = (rx.best_rssi(), rx.best_snr());
                let _ = rx.datr.sf_bw();
            }
        }
        Packet::PullResp { txpk, .. } => {
            let _ = txpk.payload();
        }
        _ => {}
    }
});
