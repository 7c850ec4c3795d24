//! Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1): a ClientHello without a cookie
//! is answered from here and leaves nothing behind, so a flood of spoofed ClientHellos
//! costs one HMAC and one small datagram each and no memory. Only a ClientHello that
//! returns a cookie we issued to that address, for that client random, within
//! [`MAX_AGE_SECS`], starts a handshake.
//!
//! Cookie = issue time (4 bytes, seconds since start) ‖ HMAC-SHA256(secret, time ‖ address
//! ‖ port ‖ client random) truncated to 16 bytes; 20 bytes in all, within what constrained
//! clients keep (tinydtls keeps 32). The secret is random per process.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ring::hmac;

use super::records::ClientHello;

pub const COOKIE_LEN: usize = 20;
const MAC_LEN: usize = COOKIE_LEN - 4;
/// A cookie older than this is refused (the client gets a fresh one).
pub const MAX_AGE_SECS: u32 = 120;

pub struct CookieJar {
    key: hmac::Key,
    started: Instant,
}

impl Default for CookieJar {
    fn default() -> Self {
        let secret: [u8; 32] = rand::random();
        CookieJar { key: hmac::Key::new(hmac::HMAC_SHA256, &secret), started: Instant::now() }
    }
}

impl CookieJar {
    fn now(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    fn mac(&self, at: u32, peer: SocketAddr, random: &[u8; 32]) -> [u8; MAC_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&at.to_be_bytes());
        match peer.ip() {
            IpAddr::V4(ip) => ctx.update(&ip.octets()),
            IpAddr::V6(ip) => ctx.update(&ip.octets()),
        }
        ctx.update(&peer.port().to_be_bytes());
        ctx.update(random);
        let tag = ctx.sign();
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        mac
    }

    pub fn issue(&self, peer: SocketAddr, random: &[u8; 32]) -> [u8; COOKIE_LEN] {
        let at = self.now();
        let mut cookie = [0u8; COOKIE_LEN];
        cookie[..4].copy_from_slice(&at.to_be_bytes());
        cookie[4..].copy_from_slice(&self.mac(at, peer, random));
        cookie
    }

    /// Whether `cookie` is one we issued to `peer` for this client random, recently.
    pub fn check(&self, peer: SocketAddr, random: &[u8; 32], cookie: &[u8]) -> bool {
        let Ok(cookie) = <&[u8; COOKIE_LEN]>::try_from(cookie) else { return false };
        let at = u32::from_be_bytes([cookie[0], cookie[1], cookie[2], cookie[3]]);
        let now = self.now();
        if at > now || now - at > MAX_AGE_SECS {
            return false;
        }
        // Compared in constant time.
        let mac = self.mac(at, peer, random);
        mac.iter().zip(&cookie[4..]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// The HelloVerifyRequest answering `hello` (RFC 6347 §4.2.1): record sequence number
    /// echoed from the ClientHello, version DTLS 1.0 as the RFC recommends, message_seq 0.
    pub fn hello_verify_request(&self, peer: SocketAddr, hello: &ClientHello) -> Vec<u8> {
        let cookie = self.issue(peer, &hello.random);
        let body_len = 3 + COOKIE_LEN;
        let hs_len = 12 + body_len;
        let mut out = Vec::with_capacity(13 + hs_len);
        out.extend_from_slice(&[22, 0xFE, 0xFF]);
        out.extend_from_slice(&hello.record_seq);
        out.extend_from_slice(&(hs_len as u16).to_be_bytes());
        // Handshake header: hello_verify_request, length, message_seq 0, unfragmented.
        let l = (body_len as u32).to_be_bytes();
        out.extend_from_slice(&[3, l[1], l[2], l[3], 0, 0, 0, 0, 0, l[1], l[2], l[3]]);
        out.extend_from_slice(&[0xFE, 0xFF, COOKIE_LEN as u8]);
        out.extend_from_slice(&cookie);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(random: u8) -> ClientHello {
        ClientHello { record_seq: [0, 0, 0, 0, 0, 0, 0, 5], random: [random; 32], cookie: Vec::new() }
    }

    #[test]
    fn a_cookie_is_bound_to_address_and_random() {
        let jar = CookieJar::default();
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:5001".parse().unwrap();
        let c = jar.issue(a, &[1; 32]);
        assert!(jar.check(a, &[1; 32], &c));
        assert!(!jar.check(b, &[1; 32], &c), "another port");
        assert!(!jar.check(a, &[2; 32], &c), "another random");
        assert!(!jar.check(a, &[1; 32], &c[..19]), "truncated");
        let mut forged = c;
        forged[10] ^= 1;
        assert!(!jar.check(a, &[1; 32], &forged));
        let mut future = c;
        future[..4].copy_from_slice(&(jar.now() + 10).to_be_bytes());
        assert!(!jar.check(a, &[1; 32], &future), "issued in the future");
        assert!(!CookieJar::default().check(a, &[1; 32], &c), "another process's secret");
    }

    #[test]
    fn hello_verify_request_echoes_the_record_sequence_and_carries_the_cookie() {
        let jar = CookieJar::default();
        let peer: SocketAddr = "[::1]:7".parse().unwrap();
        let hvr = jar.hello_verify_request(peer, &hello(9));
        assert_eq!(hvr.len(), 13 + 12 + 3 + COOKIE_LEN);
        assert_eq!(&hvr[..13], &[22, 0xFE, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 0, 35]);
        assert_eq!(hvr[13], 3, "hello_verify_request");
        assert_eq!(&hvr[17..19], &[0, 0], "message_seq 0");
        assert!(jar.check(peer, &[9; 32], &hvr[28..]));
    }
}
