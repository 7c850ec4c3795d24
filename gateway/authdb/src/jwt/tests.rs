//! The JWT source against credentials as the broker passes them: what it ignores, refuses
//! and grants.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use roost_core::ClientInfo;
use roost_core::auth::{AuthDecision, GrantSlot, Verdict};
use roost_core::types::{ClientId, Protocol};

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn hs256(claims: &str) -> String {
    let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#), URL_SAFE_NO_PAD.encode(claims));
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET), signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn source(from: TokenFrom, username_claim: Option<&str>, verify: &[(&str, &str)]) -> JwtAuth {
    let settings = JwtSettings {
        keys: KeySource::Secret(SECRET.to_vec()),
        from,
        leeway: Duration::from_secs(1),
        verify_claims: verify.iter().map(|(k, v)| (k.to_string(), Template::parse(v).unwrap())).collect(),
        username_claim: username_claim.map(String::from),
    };
    JwtAuth::new(settings, Arc::default()).unwrap()
}

fn client(user: Option<&str>) -> ClientInfo {
    ClientInfo {
        client_id: ClientId::from("c1"),
        protocol: Protocol::Mqtt,
        protocol_detail: None,
        peer: None,
        username: user.map(String::from),
        grants: None,
    }
}

fn judge(s: &JwtAuth, user: Option<&str>, password: Option<&str>, props: &[(String, String)]) -> (Verdict, GrantSlot) {
    let info = client(user);
    let password = password.map(|p| Bytes::from(p.to_string()));
    let slot = GrantSlot::default();
    let creds = Credentials {
        client: &info,
        password: password.as_ref(),
        certificate: None,
        user_properties: props,
        grants: &slot,
    };
    (s.judge(&creds), slot)
}

#[test]
fn ignores_what_is_not_a_token() {
    let s = source(TokenFrom::Password, None, &[]);
    assert_eq!(judge(&s, Some("u"), Some("plain password"), &[]).0, Verdict::Ignore);
    assert_eq!(judge(&s, Some("u"), None, &[]).0, Verdict::Ignore);
    // Shaped like a JWT by chance, but no JSON header: still not a token.
    assert_eq!(judge(&s, Some("u"), Some("a.b.c"), &[]).0, Verdict::Ignore);
}

#[test]
fn grants_username_claims_and_superuser() {
    let s = source(TokenFrom::Password, Some("sub"), &[("client", "${clientid}")]);
    let exp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 60;
    let t = hs256(&format!(
        r#"{{"sub":"dev-7","client":"c1","tenant":"acme","n":3,"list":[1],"is_superuser":true,"exp":{exp}}}"#
    ));
    let (v, slot) = judge(&s, Some("whoever"), Some(&t), &[]);
    assert_eq!(v, Verdict::Allow);
    let g = slot.take();
    assert_eq!(g.username, Some(Some("dev-7".to_string())));
    assert!(g.superuser);
    assert_eq!(g.claim("tenant"), Some("acme"));
    assert_eq!(g.claim("n"), Some("3"));
    assert_eq!(g.claim("list"), None, "arrays are not placeholders");
    // verify_claims: the token names another client.
    let other = hs256(&format!(r#"{{"sub":"dev-7","client":"c2","exp":{exp}}}"#));
    assert_eq!(judge(&s, None, Some(&other), &[]).0, Verdict::Deny(AuthDecision::BadCredentials));
    // No username claim: refused.
    let anonymous = hs256(&format!(r#"{{"client":"c1","exp":{exp}}}"#));
    assert_eq!(judge(&s, None, Some(&anonymous), &[]).0, Verdict::Deny(AuthDecision::BadCredentials));
}

#[test]
fn a_token_in_the_username_never_stays_the_username() {
    let s = source(TokenFrom::Username, None, &[]);
    let expired = hs256(r#"{"sub":"x","exp":1}"#);
    let (v, slot) = judge(&s, Some(&expired), None, &[]);
    assert_eq!(v, Verdict::Deny(AuthDecision::BadCredentials));
    assert_eq!(slot.take().username, Some(None));
}

#[test]
fn reads_the_named_user_property() {
    let s = source(TokenFrom::UserProperty("token".into()), None, &[]);
    let t = hs256(r#"{"sub":"x"}"#);
    let props = vec![("other".to_string(), "y".to_string()), ("token".to_string(), t)];
    assert_eq!(judge(&s, None, None, &props).0, Verdict::Allow);
    assert_eq!(judge(&s, None, None, &props[..1]).0, Verdict::Ignore);
}
