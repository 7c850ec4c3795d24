//! Fuzz target for the CoAP codec and message layer (`roost_coap`): arbitrary bytes are
//! decoded as one datagram; what decodes must encode and decode back to itself, and goes
//! through the message layer (dedup, ACK/RST matching), the resource router, the query
//! and block option readers. The DTLS record readers and the stateless cookie see the same bytes. Nothing may
//! panic.
//!
//! Run from the repository root:
//! `mkdir -p fuzz/corpus/coap_decode && RUSTC_BOOTSTRAP=1 cargo fuzz run coap_decode
//! fuzz/corpus/coap_decode fuzz/seeds/coap_decode -- -max_total_time=600`

#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use coap_lite::CoapOption;
use libfuzzer_sys::fuzz_target;
use roost_coap::codec::{self, Block};
use roost_coap::message::{MessageLayer, Received};
use roost_coap::settings::Transmission;
use roost_coap::{dtls, resource};

fuzz_target!(|data: &[u8]| {
    if let Some(hello) = dtls::records::client_hello(data) {
        let jar = dtls::cookie::CookieJar::default();
        let peer = SocketAddr::from(([192, 0, 2, 1], 5684));
        let hvr = jar.hello_verify_request(peer, &hello);
        assert!(dtls::records::is_record(&hvr));
        assert!(!jar.check(peer, &hello.random, &hello.cookie) || hello.cookie.len() == dtls::cookie::COOKIE_LEN);
    }
    let _ = dtls::records::has_encrypted_record(data);
    let _ = codec::raw_header(data);
    let Ok(packet) = codec::decode(data) else { return };
    let bytes = codec::encode(&packet).expect("a decoded message encodes");
    assert_eq!(codec::decode(&bytes).expect("an encoded message decodes"), packet);
    let _ = resource::route(&packet);
    let _ = resource::Query::of(&packet);
    let _ = Block::of(&packet, CoapOption::Block1);
    let _ = Block::of(&packet, CoapOption::Block2);
    let _ = codec::uint_option(&packet, CoapOption::Observe);
    let _ = codec::unknown_critical(&packet, resource::KNOWN_OPTIONS);
    let now = Instant::now();
    let peer = SocketAddr::from(([192, 0, 2, 1], 5683));
    let mut layer = MessageLayer::new(Transmission::default(), 1, 8);
    layer.send_confirmable(now, 1, peer, packet.clone());
    let first = layer.receive(now, peer, packet.clone());
    if let Received::Request(req) = &first {
        layer.respond(peer, req, coap_lite::Packet::new());
        // The same datagram again is a duplicate, answered from the cache.
        assert_eq!(layer.receive(now, peer, packet), Received::Duplicate);
    }
    while layer.poll_transmit().is_some() {}
});
