//! Fuzz target for the built-in `line` custom codec (`roost_codec::codecs::line`): arbitrary
//! bytes arrive over TCP in reads of a size the first byte picks (so a line is split across
//! reads anywhere) and as one UDP datagram; every frame decoded is answered the way the
//! session answers it (CONNACK, PUBACK, SUBACK, UNSUBACK, PONG), and a delivery made of the
//! same bytes is encoded. Nothing may panic, a decode must never grow the buffer it was
//! handed, and every answer must encode.
//!
//! Run from the repository root: `scripts/fuzz codec_line 600`

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/codec_drive.rs"]
mod codec_drive;

fuzz_target!(|data: &[u8]| codec_drive::drive("line", data));
