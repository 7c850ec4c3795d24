//! EMQX's password hash algorithms: a stored `password_hash` (and `salt`) checked against
//! the password a client presents. Digests are compared as hex (either case), plain
//! passwords as bytes, both in constant time; bcrypt hashes carry their own salt.

use std::num::NonZeroU32;

use md5::Digest;
use ring::digest;

use crate::settings::{HashAlgorithm, Mac, SaltPosition};

/// True if `password` matches the stored `hash` (with `salt`) under `alg`.
pub fn verify(alg: HashAlgorithm, password: &[u8], hash: &str, salt: &[u8]) -> bool {
    let hash = hash.trim();
    match alg {
        HashAlgorithm::Plain(pos) => same(&salted(pos, password, salt), hash.as_bytes()),
        HashAlgorithm::Md5(pos) => hex_same(&md5::Md5::digest(salted(pos, password, salt)), hash),
        HashAlgorithm::Sha(pos) => {
            hex_same(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &salted(pos, password, salt)).as_ref(), hash)
        }
        HashAlgorithm::Sha256(pos) => {
            hex_same(digest::digest(&digest::SHA256, &salted(pos, password, salt)).as_ref(), hash)
        }
        HashAlgorithm::Sha512(pos) => {
            hex_same(digest::digest(&digest::SHA512, &salted(pos, password, salt)).as_ref(), hash)
        }
        HashAlgorithm::Bcrypt => bcrypt::verify(password, hash).unwrap_or(false),
        HashAlgorithm::Pbkdf2 { mac, iterations, dk_length } => {
            let (alg, len) = match mac {
                Mac::Sha => (ring::pbkdf2::PBKDF2_HMAC_SHA1, 20),
                Mac::Sha256 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
                Mac::Sha384 => (ring::pbkdf2::PBKDF2_HMAC_SHA384, 48),
                Mac::Sha512 => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
            };
            let Some(iterations) = NonZeroU32::new(iterations) else { return false };
            // The length is config (validated), bounded there; the stored hash bounds it too.
            let len = dk_length.map_or(len, |l| l as usize);
            if len == 0 || len * 2 != hash.len() {
                return false;
            }
            let mut out = vec![0u8; len];
            ring::pbkdf2::derive(alg, iterations, salt, password, &mut out);
            hex_same(&out, hash)
        }
    }
}

fn salted(pos: SaltPosition, password: &[u8], salt: &[u8]) -> Vec<u8> {
    match pos {
        SaltPosition::Prefix => [salt, password].concat(),
        SaltPosition::Suffix => [password, salt].concat(),
        SaltPosition::Disable => password.to_vec(),
    }
}

fn hex_same(digest: &[u8], hex: &str) -> bool {
    let mine: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    same(mine.as_bytes(), hex.to_ascii_lowercase().as_bytes())
}

/// Constant time in the contents (the lengths are not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emqx_algorithms() {
        use SaltPosition::*;
        // Python hashlib: sha256(b"saltpublic"), sha512(b"publicsalt"), md5/sha1(b"public").
        let sha256 = "f2ef7f9aedb2c3b5040bc16691a1177758a92ad91e1ee77770215a332bf6099f";
        assert!(verify(HashAlgorithm::Sha256(Prefix), b"public", sha256, b"salt"));
        assert!(verify(HashAlgorithm::Sha256(Prefix), b"public", &sha256.to_uppercase(), b"salt"));
        assert!(!verify(HashAlgorithm::Sha256(Suffix), b"public", sha256, b"salt"));
        assert!(!verify(HashAlgorithm::Sha256(Prefix), b"publik", sha256, b"salt"));
        let sha512 = "7ffaf674fc0b94835d6cdba9f3e80b7d7dc8efe5fe7cfe9f01d38d309718cef3\
                      39fc3014fb007d2133d65d6fea8e904817670aeb69ca47a74554804c15e1bd4f";
        assert!(verify(HashAlgorithm::Sha512(Suffix), b"public", sha512, b"salt"));
        assert!(verify(HashAlgorithm::Md5(Disable), b"public", "4c9184f37cff01bcdc32dc486ec36961", b""));
        assert!(verify(HashAlgorithm::Sha(Disable), b"public", "61c9b2b17db77a27841bbeeabff923448b0f6388", b""));
        assert!(verify(HashAlgorithm::Plain(Suffix), b"pw", "pwNaCl", b"NaCl"));
        assert!(!verify(HashAlgorithm::Plain(Disable), b"pw", "pwx", b""));
        let b = bcrypt::hash_with_result("public", 4).unwrap().format_for_version(bcrypt::Version::TwoB);
        assert!(verify(HashAlgorithm::Bcrypt, b"public", &b, b""));
        assert!(!verify(HashAlgorithm::Bcrypt, b"wrong", &b, b""));
        assert!(!verify(HashAlgorithm::Bcrypt, b"public", "not a hash", b""));
        // RFC 6070 test vector 2: P="password", S="salt", c=2, dkLen=20.
        let alg = HashAlgorithm::Pbkdf2 { mac: Mac::Sha, iterations: 2, dk_length: None };
        assert!(verify(alg, b"password", "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957", b"salt"));
        assert!(!verify(alg, b"passwore", "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957", b"salt"));
    }
}
