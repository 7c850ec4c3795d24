//! The keys a JWT is verified with: an HMAC secret (HS256), an RSA public key (RS256,
//! 2048 to 8192 bits) or a P-256 public key (ES256), from a PEM file or a JWK Set (RFC 7517).
//! Each key has one algorithm, and a token must name that one (RFC 8725 §3.1): an RSA
//! key is never used as an HMAC secret, whatever the header says.
//!
//! The cryptography is `ring`'s (already Roost's for TLS). Only the `SubjectPublicKeyInfo`
//! envelope of a PEM key (RFC 5280 §4.1.2.7) is unwrapped here: two DER TLVs, bounds-checked.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use super::token::Refusal;

/// Keys in one JWK Set at most (a set is a handful of keys in rotation).
pub const MAX_KEYS: usize = 64;

/// The algorithms verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    pub fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "HS256" => Alg::Hs256,
            "RS256" => Alg::Rs256,
            "ES256" => Alg::Es256,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

#[derive(Clone)]
enum Material {
    Hmac(ring::hmac::Key),
    /// `RSAPublicKey` DER (PKCS#1).
    RsaDer(Vec<u8>),
    RsaComponents {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point (`04 || x || y`, 65 bytes).
    P256(Vec<u8>),
}

/// One verification key with its algorithm and, from a JWK Set, its id.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub alg: Alg,
    material: Material,
}

impl std::fmt::Debug for Key {
    // Never the material: an HMAC secret must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl Key {
    pub fn hmac(secret: Vec<u8>) -> Key {
        Key {
            kid: None,
            alg: Alg::Hs256,
            material: Material::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)),
        }
    }

    /// A PEM public key: `PUBLIC KEY` (SubjectPublicKeyInfo, RSA or P-256) or `RSA PUBLIC KEY`
    /// (PKCS#1).
    pub fn from_pem(pem: &str) -> Result<Key, String> {
        let (label, der) = pem_block(pem)?;
        let (alg, material) = match label.as_str() {
            "RSA PUBLIC KEY" => (Alg::Rs256, Material::RsaDer(der)),
            "PUBLIC KEY" => spki(&der)?,
            other => {
                return Err(format!("a PEM \"{other}\" is not a public key (\"PUBLIC KEY\" or \"RSA PUBLIC KEY\")"));
            }
        };
        Ok(Key { kid: None, alg, material })
    }

    /// One JWK (RFC 7517 §4, RFC 7518 §6): `kty` `RSA` (n, e), `EC` with `crv` `P-256` (x, y)
    /// or `oct` (k). `Ok(None)`: a key not for signatures (`use` other than `sig`), skipped.
    pub fn from_jwk(jwk: &Value) -> Result<Option<Key>, String> {
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| format!("no \"{name}\""))?;
            URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| format!("\"{name}\" is not base64url"))
        };
        if jwk.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let kid = jwk.get("kid").and_then(Value::as_str).map(String::from);
        let (alg, material) = match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => (Alg::Rs256, Material::RsaComponents { n: field("n")?, e: field("e")? }),
            Some("EC") => {
                if jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
                    return Err("an EC key must be on curve P-256 (ES256)".into());
                }
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("P-256 \"x\" and \"y\" are 32 bytes each".into());
                }
                (Alg::Es256, Material::P256([&[4u8][..], &x, &y].concat()))
            }
            Some("oct") => (Alg::Hs256, Material::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &field("k")?))),
            Some(other) => return Err(format!("kty {other:?} is not RSA, EC or oct")),
            None => return Err("no \"kty\"".into()),
        };
        // A JWK may pin its algorithm; it must then be the one its type verifies here.
        if let Some(a) = jwk.get("alg").and_then(Value::as_str)
            && Alg::parse(a) != Some(alg)
        {
            return Err(format!("alg {a:?} is not supported for this key (expected {})", alg.name()));
        }
        Ok(Some(Key { kid, alg, material }))
    }

    /// Verifies `sig` over `signed` with this key's algorithm.
    fn verify(&self, signed: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(k) => ring::hmac::verify(k, signed, sig).is_ok(),
            Material::RsaDer(der) => {
                UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der).verify(signed, sig).is_ok()
            }
            Material::RsaComponents { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, sig).is_ok()
            }
            Material::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(signed, sig).is_ok()
            }
        }
    }
}

/// The keys of a source: one key, or a JWK Set.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    pub fn single(key: Key) -> KeySet {
        KeySet { keys: vec![key] }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A JWK Set document (`{"keys": [...]}`); a key that cannot be read is an error naming it.
    pub fn from_jwks(text: &str) -> Result<KeySet, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let list = doc.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
        if list.len() > MAX_KEYS {
            return Err(format!("{} keys: at most {MAX_KEYS}", list.len()));
        }
        let mut keys = Vec::new();
        for (i, jwk) in list.iter().enumerate() {
            if let Some(k) = Key::from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))? {
                keys.push(k);
            }
        }
        Ok(KeySet { keys })
    }

    /// The token's `alg` and `kid` choose the key: with a `kid`, that key (its algorithm
    /// must be `alg`); without, every key of algorithm `alg` is tried.
    pub fn verify(&self, alg: Alg, kid: Option<&str>, signed: &[u8], sig: &[u8]) -> Result<(), Refusal> {
        let mismatch = || Refusal::AlgMismatch(alg.name());
        let candidates: Vec<&Key> = match kid {
            // A single configured key has no id: the token's kid is not needed to find it.
            Some(kid) if self.keys.iter().any(|k| k.kid.is_some()) => {
                let key = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid));
                let key = key.ok_or_else(|| Refusal::UnknownKid(kid.chars().take(64).collect()))?;
                if key.alg != alg {
                    return Err(mismatch());
                }
                vec![key]
            }
            _ => self.keys.iter().filter(|k| k.alg == alg).collect(),
        };
        if candidates.is_empty() {
            return Err(mismatch());
        }
        if candidates.iter().any(|k| k.verify(signed, sig)) { Ok(()) } else { Err(Refusal::BadSignature) }
    }
}

/// The label and DER bytes of the first PEM block in `text`.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    let start = text.find("-----BEGIN ").ok_or("no PEM \"-----BEGIN\" line")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----").ok_or("PEM BEGIN line not closed")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body.find(&format!("-----END {label}-----")).ok_or_else(|| format!("no PEM END line for {label}"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64).map_err(|_| format!("PEM {label}: body is not base64"))?;
    Ok((label, der))
}

/// One DER TLV at the start of `der`: (tag, contents, rest).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// `SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }`.
fn spki(der: &[u8]) -> Result<(Alg, Material), String> {
    let bad = || "PEM PUBLIC KEY: not a SubjectPublicKeyInfo".to_string();
    let (0x30, spki, _) = tlv(der).ok_or_else(bad)? else { return Err(bad()) };
    let (0x30, algorithm, rest) = tlv(spki).ok_or_else(bad)? else { return Err(bad()) };
    let (0x03, bits, _) = tlv(rest).ok_or_else(bad)? else { return Err(bad()) };
    // The first byte of a BIT STRING counts unused bits: a key has none.
    let key = match bits.split_first() {
        Some((0, key)) => key.to_vec(),
        _ => return Err(bad()),
    };
    let (0x06, oid, params) = tlv(algorithm).ok_or_else(bad)? else { return Err(bad()) };
    if oid == OID_RSA {
        return Ok((Alg::Rs256, Material::RsaDer(key)));
    }
    if oid == OID_EC {
        let curve = tlv(params).filter(|(tag, _, _)| *tag == 0x06).map(|(_, c, _)| c);
        if curve != Some(OID_P256) {
            return Err("PEM PUBLIC KEY: an EC key must be on curve P-256 (ES256)".into());
        }
        if key.len() != 65 || key[0] != 4 {
            return Err("PEM PUBLIC KEY: the P-256 point is not uncompressed".into());
        }
        return Ok((Alg::Es256, Material::P256(key)));
    }
    Err("PEM PUBLIC KEY: not an RSA or EC key".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl ecparam -name prime256v1 -genkey | openssl ec -pubout`
    const EC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEh8XEgDiDHA5jCr7N7Ikzgi03IO53
/eq4tERn8jJLA729dd5KwvPjOqAUSl970DyTuWmzYh0Soa1I9eSspVhn9g==
-----END PUBLIC KEY-----";

    #[test]
    fn pem_keys() {
        let k = Key::from_pem(EC_PEM).unwrap();
        assert_eq!(k.alg, Alg::Es256);
        assert!(Key::from_pem("nothing").is_err());
        assert!(Key::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
        assert!(Key::from_pem("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----").is_err());
    }

    #[test]
    fn jwk_sets() {
        let set = KeySet::from_jwks(
            r#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"},{"kty":"RSA","kid":"enc","use":"enc","n":"AQ","e":"AQ"}]}"#,
        )
        .unwrap();
        assert_eq!(set.len(), 1);
        let sig = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret"), b"x.y");
        assert_eq!(set.verify(Alg::Hs256, Some("a"), b"x.y", sig.as_ref()), Ok(()));
        assert_eq!(set.verify(Alg::Hs256, Some("b"), b"x.y", sig.as_ref()), Err(Refusal::UnknownKid("b".into())));
        assert_eq!(set.verify(Alg::Rs256, Some("a"), b"x.y", sig.as_ref()), Err(Refusal::AlgMismatch("RS256")));
        assert!(KeySet::from_jwks(r#"{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}"#).is_err());
        assert!(KeySet::from_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"RS256"}]}"#).is_err());
        assert!(KeySet::from_jwks("[]").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_der_never_panics(der in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = spki(&der);
        }
    }
}
