//! Fuzz target for what Roost reads of DTLS itself, before OpenSSL sees a datagram
//! (`roost_coap::dtls`): the record-header check that routes a datagram, the encrypted-record
//! scan, the ClientHello reader (epoch 0, unfragmented) and the stateless cookie exchange
//! (RFC 6347 §4.2.1): a HelloVerifyRequest is a DTLS record, a cookie issued for a hello's
//! random checks for that peer and random only, and a ClientHello with a cookie of another
//! length never checks. Nothing may panic.
//!
//! Run from the repository root: `scripts/fuzz dtls_prehandshake 600`

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use roost_coap::dtls::cookie::{COOKIE_LEN, CookieJar};
use roost_coap::dtls::records;

fuzz_target!(|data: &[u8]| {
    static JAR: OnceLock<CookieJar> = OnceLock::new();
    let jar = JAR.get_or_init(CookieJar::default);
    let _ = records::is_record(data);
    let _ = records::has_encrypted_record(data);
    let Some(hello) = records::client_hello(data) else { return };
    let peer = SocketAddr::from(([192, 0, 2, 7], 5684));
    let other = SocketAddr::from(([192, 0, 2, 8], 5684));
    let hvr = jar.hello_verify_request(peer, &hello);
    assert!(records::is_record(&hvr), "a HelloVerifyRequest is a record");
    assert!(records::client_hello(&hvr).is_none(), "a HelloVerifyRequest is no ClientHello");
    let cookie = jar.issue(peer, &hello.random);
    assert!(jar.check(peer, &hello.random, &cookie));
    assert!(!jar.check(other, &hello.random, &cookie), "a cookie is bound to its peer");
    if hello.cookie.len() != COOKIE_LEN {
        assert!(!jar.check(peer, &hello.random, &hello.cookie));
    }
});
