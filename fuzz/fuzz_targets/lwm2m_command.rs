//! Fuzz target for the LwM2M MQTT command JSON (`roost_lwm2m::server::mqtt::parse_command`,
//! EMQX's `{"reqID", "msgType", "data": {...}}`) and what a device answers to the requests
//! commands turn into. A device registers first; then the input is a list of
//! `[op][len][bytes]` records: a command payload for it, a device answer (code and content
//! format from `op`, body from the bytes) to the oldest request the server sent, or time
//! passing. Nothing may panic, and everything the server sends must decode.
//!
//! Run from the repository root: `scripts/fuzz lwm2m_command 600`

#![no_main]

use coap_lite::ResponseType;
use libfuzzer_sys::fuzz_target;
use roost_lwm2m::server::mqtt;
use roost_lwm2m::types::format;

#[path = "common/lwm2m.rs"]
mod lwm2m;

const CODES: [ResponseType; 6] = [
    ResponseType::Content,
    ResponseType::Changed,
    ResponseType::Created,
    ResponseType::Deleted,
    ResponseType::NotFound,
    ResponseType::MethodNotAllowed,
];
const FORMATS: [Option<u16>; 7] = [
    None,
    Some(format::TLV),
    Some(format::LWM2M_JSON),
    Some(format::SENML_JSON),
    Some(format::SENML_CBOR),
    Some(format::TEXT),
    Some(40),
];

fuzz_target!(|data: &[u8]| {
    let mut h = lwm2m::Harness::new();
    let dev = lwm2m::peer(0);
    h.register(dev, "fuzz");
    assert_eq!(h.endpoints, ["fuzz"], "the fixed Register is accepted");
    for (op, bytes) in lwm2m::records(data) {
        match op % 4 {
            0 | 1 => {
                let _ = mqtt::parse_command(bytes, "/");
                h.server.handle_command(h.now, "fuzz", bytes, None);
                h.advance(0);
            }
            2 => {
                if h.requests.is_empty() {
                    continue;
                }
                let (to, r) = h.requests.remove(0);
                let code = CODES[usize::from(op >> 2) % CODES.len()];
                let fmt = FORMATS[usize::from(op >> 5) % FORMATS.len()];
                h.answer(to, &r, code, fmt, bytes);
            }
            _ => h.advance(u64::from(bytes.first().copied().unwrap_or(1))),
        }
    }
});
