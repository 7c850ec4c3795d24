//! Fuzz target for the built-in `tlv-sensor` custom codec
//! (`roost_codec::codecs::tlv_sensor`): arbitrary bytes go through the codec as the adapter
//! drives it (TCP reads of any size, one UDP datagram, the device key read from the header,
//! answers and a delivery encoded), and through the frame, readings and settings readers
//! directly. Nothing may panic, and a frame header that decodes must encode back to the same
//! bytes.
//!
//! Run from the repository root: `scripts/fuzz codec_tlv_sensor 600`

#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_codec::codecs::tlv_sensor::{self, RawFrame};

#[path = "common/codec_drive.rs"]
mod codec_drive;

fuzz_target!(|data: &[u8]| {
    codec_drive::drive("tlv-sensor", data);
    // As in `drive`, the first byte is not part of the frame.
    let data = data.get(1..).unwrap_or_default();
    if let Ok(frame) = RawFrame::decode(data) {
        assert_eq!(&frame.to_bytes()[..], data, "a decoded frame encodes to its own bytes");
        let _ = tlv_sensor::readings(&frame.body);
    }
    let _ = tlv_sensor::readings(data);
    let _ = tlv_sensor::settings(data);
});
