//! Fuzz target for CoAP options and block-wise transfers (RFC 7252 §5.10, RFC 7959): a list
//! of `[op][len][bytes]` records, each a datagram from one of four peers, or time passing.
//! Every datagram's options are read as the session reads them (Uri-Path, Uri-Query and the
//! query flags, Observe, Content-Format, Accept, Size1, unknown critical options, Block1,
//! Block2); a request's Block1 block is fed to the reassembly of its (peer, method, path), and
//! its Block2 option slices a response body. Nothing may panic, a reassembled body never
//! exceeds the limit, and a Block2 slice is never larger than its block size.
//!
//! Run from the repository root: `scripts/fuzz coap_block 600`

#![no_main]

use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass};
use libfuzzer_sys::fuzz_target;
use roost_coap::block::{self, Assemblies, Block1Outcome};
use roost_coap::codec::{self, Block};
use roost_coap::resource;

const MAX_BODY: usize = 4096;
const BODY: [u8; 3000] = [7; 3000];

fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let [op, len, rest @ ..] = data else { return None };
        let (body, tail) = rest.split_at(usize::from(*len).min(rest.len()));
        data = tail;
        Some((*op, body))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut assemblies = Assemblies::default();
    let mut shared = Assemblies::with_limit(16);
    for (op, bytes) in records(data) {
        if op == 0xff {
            now += Duration::from_secs(u64::from(bytes.first().copied().unwrap_or(30)));
            continue;
        }
        let Ok(p) = codec::decode(bytes) else { continue };
        let path = codec::uri_path(&p);
        let _ = codec::uri_query(&p);
        let query = resource::Query::of(&p);
        let _ = format!("{query:?}");
        let _ = resource::route(&p);
        let _ = resource::method(&p);
        for o in [CoapOption::Observe, CoapOption::ContentFormat, CoapOption::Accept, CoapOption::Size1] {
            let _ = codec::uint_option(&p, o);
        }
        let _ = codec::unknown_critical(&p, resource::KNOWN_OPTIONS);
        if let Some(Ok(b2)) = Block::of(&p, CoapOption::Block2) {
            assert_eq!(Block::decode(b2.encode()), Ok(b2), "Block2 round trip");
            if let Some((slice, sent)) = block::slice(&BODY, b2.num, b2.szx) {
                assert!(slice.len() <= sent.size() && !slice.is_empty());
            }
        }
        let Some(Ok(b1)) = Block::of(&p, CoapOption::Block1) else { continue };
        if !matches!(p.header.code, MessageClass::Request(_)) {
            continue;
        }
        let key = format!("{}/{:?}/{:?}", op % 4, p.header.code, path);
        for a in [&mut assemblies, &mut shared] {
            match a.feed(now, &key, b1, &p.payload, MAX_BODY) {
                Block1Outcome::Complete(body, _) => assert!(body.len() <= MAX_BODY, "{} bytes reassembled", body.len()),
                Block1Outcome::Continue(_) | Block1Outcome::Incomplete | Block1Outcome::TooLarge => {}
            }
            assert!(a.len() <= 16);
        }
    }
});
