//! Fuzz target for both LoRaWAN decoders: arbitrary bytes as a Semtech UDP datagram
//! (`roost_lorawan::semtech`) and as a LoRaWAN PHYPayload (`roost_lorawan::phy`, with MIC
//! checks and FRMPayload decryption through the `lorawan` crate), and every PHYPayload a
//! decoded PUSH_DATA carries, also through the gateway-bridge DownlinkFrame parser. Nothing
//! may panic, and every datagram that decodes must encode to one that decodes again.
//!
//! Run from the repository root:
//! `mkdir -p fuzz/corpus/lorawan_decode && RUSTC_BOOTSTRAP=1 cargo fuzz run lorawan_decode
//! fuzz/corpus/lorawan_decode fuzz/seeds/lorawan_decode -- -max_total_time=600`

#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_lorawan::semtech::{self, Packet};
use roost_lorawan::types::AesKey;
use roost_lorawan::{bridge, phy};

fn phy_payload(b: &[u8]) {
    let key = AesKey([0x2b; 16]);
    if let Ok(frame) = phy::decode(b) {
        let _ = format!("{frame:?}");
        if let phy::Frame::Data(d) = frame {
            let _ = phy::parse_uplink_mac(d.fopts);
        }
    }
    let _ = phy::data_mic_ok(b, &key, 1);
    let _ = phy::decrypt_frm_payload(b, &key, &key, 0x1_0001);
    let _ = phy::join_request_mic_ok(b, &key);
    let _ = phy::parse_uplink_mac(b);
}

fuzz_target!(|data: &[u8]| {
    phy_payload(data);
    let _ = bridge::downlink_frame(data);
    if let Ok(p) = semtech::decode(data) {
        let bytes = semtech::encode(&p);
        let again = semtech::decode(&bytes).expect("an encoded datagram decodes");
        // Same kind of datagram. Not byte equality: serde_json's default float parsing may
        // land one ULP off on long decimals (found by this target), so a float can print
        // differently after a second round trip.
        assert_eq!(again.name(), p.name());
        if let Packet::PushData { payload, .. } = &p {
            for rxpk in &payload.rxpk {
                if let Some(b) = rxpk.payload() {
                    phy_payload(&b);
                }
                let _ = rxpk.datr.sf_bw();
            }
        }
    }
});
