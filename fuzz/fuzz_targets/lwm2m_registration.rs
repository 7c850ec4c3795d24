//! Fuzz target for the LwM2M registration interface (`roost_lwm2m::server`): the
//! registration query (`ep`, `lt`, `lwm2m`, `b`, `sms`, `Q`, ...), the CoRE link format of
//! Register and Update bodies (`roost_lwm2m::server::link`), Block1 registration bodies and
//! raw datagrams, from four device addresses, with time moving on. The input is a list of
//! `[op][len][bytes]` records: raw datagram; Register or Update whose Uri-Query options and
//! body come from the bytes (split at NUL); time passing. Nothing may panic, and everything
//! the server sends must decode.
//!
//! Run from the repository root: `scripts/fuzz lwm2m_registration 600`

#![no_main]

use coap_lite::RequestType;
use libfuzzer_sys::fuzz_target;
use roost_lwm2m::server::link;

#[path = "common/lwm2m.rs"]
mod lwm2m;

fuzz_target!(|data: &[u8]| {
    let mut h = lwm2m::Harness::new();
    for (op, bytes) in lwm2m::records(data) {
        let from = lwm2m::peer(op >> 4);
        match op % 4 {
            0 => h.datagram(from, bytes),
            1 | 2 => {
                // query options \0 body: the query split at '&' as a device would send it.
                let mut parts = bytes.splitn(2, |b| *b == 0);
                let query: Vec<&[u8]> = parts.next().unwrap_or_default().split(|b| *b == b'&').collect();
                let body = parts.next().unwrap_or_default();
                let location = h.endpoints.len().to_string();
                let path: Vec<&[u8]> = if op % 4 == 1 { vec![b"rd"] } else { vec![b"rd", location.as_bytes()] };
                h.request(from, RequestType::Post, &path, &query, body);
                let text = String::from_utf8_lossy(body);
                let _ = link::parse(&text);
                let _ = link::object_list(&text);
                let _ = link::content_formats(&text);
            }
            _ => h.advance(u64::from(bytes.first().copied().unwrap_or(1))),
        }
    }
});
