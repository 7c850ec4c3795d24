//! JWS compact serialization (RFC 7515 §7.1) of a JWT (RFC 7519): split, decode, check the
//! header's `alg` against the key (RFC 8725 §3.1: `none` and algorithm confusion refused),
//! verify the signature, then the time claims `exp` and `nbf` (RFC 7519 §4.1.4, §4.1.5).
//! The signature comes first: nothing of an unverified payload is trusted.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::keys::{Alg, KeySet};

/// A token longer than this is refused before it is decoded (an MQTT password may be 64 KiB).
pub const MAX_TOKEN: usize = 8 * 1024;

/// Why a token was refused: logged (never with the token), never sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("token is not a JWT (JWS compact: three base64url parts)")]
    Malformed,
    #[error("token is longer than {MAX_TOKEN} bytes")]
    TooLong,
    #[error("JWT header: {0}")]
    Header(&'static str),
    #[error("JWT alg \"none\" (unsigned) is refused")]
    AlgNone,
    #[error("JWT alg {0:?} is not supported (HS256, RS256, ES256)")]
    UnsupportedAlg(String),
    #[error("JWT kid {0:?} is not in the key set")]
    UnknownKid(String),
    #[error("JWT alg {0} does not match the key")]
    AlgMismatch(&'static str),
    #[error("JWT signature does not verify")]
    BadSignature,
    #[error("JWT payload is not a JSON object")]
    Payload,
    #[error("JWT claim {0:?} is not a number")]
    BadTime(&'static str),
    #[error("JWT expired {0}s ago")]
    Expired(i64),
    #[error("JWT not valid for another {0}s (nbf)")]
    NotYetValid(i64),
    #[error("JWT claim {0:?} is missing or does not match")]
    Claim(String),
}

/// The three parts of `header.payload.signature`, or `None` if it is not that shape
/// (the credential is not a JWT at all: another source's, e.g. a plain password).
pub fn looks_like_jwt(token: &[u8]) -> bool {
    token.iter().filter(|b| **b == b'.').count() == 2
        && token.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A token whose signature verified: its claims.
#[derive(Debug)]
pub struct Verified {
    pub claims: Map<String, Value>,
}

/// Verifies `token` with `keys` at `now` (seconds since the epoch), `leeway` seconds allowed
/// on `exp` and `nbf` for clock skew.
pub fn verify(token: &str, keys: &KeySet, now: i64, leeway: i64) -> Result<Verified, Refusal> {
    if token.len() > MAX_TOKEN {
        return Err(Refusal::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Malformed);
    };
    let header = decode_json(h64).ok_or(Refusal::Header("not base64url JSON"))?;
    let header = header.as_object().ok_or(Refusal::Header("not a JSON object"))?;
    // RFC 7515 §4.1.11: extensions we do not understand must be refused.
    if header.contains_key("crit") {
        return Err(Refusal::Header("\"crit\" extensions are not supported"));
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        None => return Err(Refusal::Header("no \"alg\"")),
        Some(a) if a.eq_ignore_ascii_case("none") => return Err(Refusal::AlgNone),
        Some(a) => Alg::parse(a).ok_or_else(|| Refusal::UnsupportedAlg(a.chars().take(16).collect()))?,
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(Refusal::Header("\"kid\" is not a string")),
    };
    let signature = URL_SAFE_NO_PAD.decode(s64).map_err(|_| Refusal::Malformed)?;
    let signed = &token[..h64.len() + 1 + p64.len()];
    keys.verify(alg, kid, signed.as_bytes(), &signature)?;
    let payload = decode_json(p64).ok_or(Refusal::Payload)?;
    let Value::Object(claims) = payload else { return Err(Refusal::Payload) };
    check_times(&claims, now, leeway)?;
    Ok(Verified { claims })
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A NumericDate claim (seconds, possibly fractional), if present.
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => {
            let t = v.as_f64().filter(|t| t.is_finite()).ok_or(Refusal::BadTime(name))?;
            // Saturating: a date past i64 is "never" / "long ago", not a panic.
            Ok(Some(t as i64))
        }
    }
}

fn check_times(claims: &Map<String, Value>, now: i64, leeway: i64) -> Result<(), Refusal> {
    if let Some(exp) = time_claim(claims, "exp")?
        && now >= exp.saturating_add(leeway)
    {
        return Err(Refusal::Expired(now.saturating_sub(exp)));
    }
    if let Some(nbf) = time_claim(claims, "nbf")?
        && now.saturating_add(leeway) < nbf
    {
        return Err(Refusal::NotYetValid(nbf.saturating_sub(now)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::keys::Key;

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn hs256(secret: &[u8], header: &str, payload: &str) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, signed.as_bytes());
        format!("{signed}.{}", b64(tag.as_ref()))
    }

    fn keys() -> KeySet {
        KeySet::single(Key::hmac(b"secret".to_vec()))
    }

    #[test]
    fn rfc7515_a1_hs256_example() {
        // RFC 7515 Appendix A.1: the example HMAC key and token (its exp, 1300819380, is past).
        let k = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let keys = KeySet::single(Key::hmac(k));
        let v = verify(token, &keys, 1_300_819_000, 0).unwrap();
        assert_eq!(v.claims["iss"], "joe");
        assert_eq!(verify(token, &keys, 1_300_819_400, 0).unwrap_err(), Refusal::Expired(20));
        assert!(verify(token, &keys, 1_300_819_400, 30).is_ok(), "within the leeway");
    }

    #[test]
    fn refusals() {
        let ok = hs256(b"secret", r#"{"alg":"HS256"}"#, r#"{"sub":"a","nbf":100,"exp":200}"#);
        assert!(verify(&ok, &keys(), 150, 0).is_ok());
        assert_eq!(verify(&ok, &keys(), 50, 0).unwrap_err(), Refusal::NotYetValid(50));
        assert_eq!(verify(&ok, &keys(), 250, 0).unwrap_err(), Refusal::Expired(50));
        let wrong = hs256(b"other", r#"{"alg":"HS256"}"#, r#"{"sub":"a"}"#);
        assert_eq!(verify(&wrong, &keys(), 0, 0).unwrap_err(), Refusal::BadSignature);
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(br#"{"sub":"a"}"#));
        assert_eq!(verify(&none, &keys(), 0, 0).unwrap_err(), Refusal::AlgNone);
        // RS256 claimed for an HMAC key: refused before any verification.
        let confused = hs256(b"secret", r#"{"alg":"RS256"}"#, r#"{"sub":"a"}"#);
        assert_eq!(verify(&confused, &keys(), 0, 0).unwrap_err(), Refusal::AlgMismatch("RS256"));
        let crit = hs256(b"secret", r#"{"alg":"HS256","crit":["x"]}"#, "{}");
        assert!(matches!(verify(&crit, &keys(), 0, 0), Err(Refusal::Header(_))));
        let bad_exp = hs256(b"secret", r#"{"alg":"HS256"}"#, r#"{"exp":"soon"}"#);
        assert_eq!(verify(&bad_exp, &keys(), 0, 0).unwrap_err(), Refusal::BadTime("exp"));
        let array = hs256(b"secret", r#"{"alg":"HS256"}"#, "[1]");
        assert_eq!(verify(&array, &keys(), 0, 0).unwrap_err(), Refusal::Payload);
        assert_eq!(verify("a.b", &keys(), 0, 0).unwrap_err(), Refusal::Malformed);
        assert_eq!(verify(&"a".repeat(MAX_TOKEN + 1), &keys(), 0, 0).unwrap_err(), Refusal::TooLong);
        assert!(looks_like_jwt(ok.as_bytes()));
        assert!(!looks_like_jwt(b"plain password"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(s in "[A-Za-z0-9_.-]{0,200}") {
            let _ = verify(&s, &keys(), 0, 0);
        }
    }
}
