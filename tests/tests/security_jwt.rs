//! JWT authentication (issue 25, acceptance 6, first half) against a `roost` process, with
//! MQTT 3.1.1 and 5 clients over TCP. Keys come from the `openssl` CLI, tokens are signed
//! by `openssl dgst`. Valid RS256, ES256 and HS256 tokens are accepted (key chosen by
//! `kid` from a JWK Set file); expired, not yet valid, wrongly signed, `alg: none`,
//! algorithm-confused and unknown-`kid` tokens are refused with "bad user name or password"
//! (v5 0x86, v3.1.1 4), each refusal logged with its reason and never with the token. The
//! username comes from the `sub` claim and a `%{tenant}` ACL rule applies. The JWK Set file
//! is re-read when it changes and when `roost ctl reload` points the config at another.
//! A second test reads the token from an MQTT 5 user property with a PEM public key.
#![allow(clippy::unwrap_used)]

use roost_e2e::raw::{self, RawClient};
use roost_e2e::{TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

use crate::jwt_support::{API_KEY, Keys, Roost, Signer, now, token, write_jwks};

fn config(dir: &std::path::Path, jwks: &std::path::Path) -> String {
    format!(
        r#"
[node]
sys_interval = "0s"
[storage]
backend = "memory"
data_dir = "{data}"
[http]
bind = ["127.0.0.1:0"]
api_keys = ["{API_KEY}"]
[mqtt]
bind = ["127.0.0.1:0"]
[mqttsn]
bind = []
[lwm2m]
bind = []
[lorawan]
bind = []
[coap]
bind = []
[auth]
allow_anonymous = false
chain = ["jwt"]
slow_after_failures = 0
[auth.jwt]
use_jwks = true
jwks_file = "{jwks}"
username_claim = "sub"
leeway = "2s"
[acl]
no_match = "deny"
[[acl.rule]]
permission = "allow"
topics = ["tenants/%{{tenant}}/#", "users/%u/#"]
"#,
        data = dir.join("data").display(),
        jwks = jwks.display(),
    )
}

/// A v5 CONNECT with `token` as password: the CONNACK code and the client.
async fn connect_v5(addr: std::net::SocketAddr, id: &str, token: &str) -> (v5::ConnectReturnCode, RawClient) {
    let mut c = RawClient::connect(addr).await;
    let login = v5::Login { username: "whoever".into(), password: token.into() };
    c.send_v5(&v5::Packet::Connect(raw::connect_v5(id), None, Some(login))).await;
    match c.recv_v5(WAIT).await {
        v5::Packet::ConnAck(a) => (a.code, c),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

async fn connect_v4(addr: std::net::SocketAddr, id: &str, token: &str) -> (v4::ConnectReturnCode, RawClient) {
    let mut connect = raw::connect_v4(id);
    connect.login = Some(v4::Login::new("whoever", token));
    let (c, ack) = RawClient::connect_v4(addr, connect).await;
    (ack.code, c)
}

async fn suback_v5(c: &mut RawClient, pkid: u16, filter: &str) -> v5::SubscribeReasonCode {
    let f = v5::Filter::new(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce);
    c.send_v5(&raw::subscribe_v5(pkid, f, None)).await;
    match c.recv_v5(WAIT).await {
        v5::Packet::SubAck(a) => a.return_codes[0],
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

async fn suback_v4(c: &mut RawClient, pkid: u16, filter: &str) -> v4::SubscribeReasonCode {
    c.send_v4(&raw::subscribe_v4(pkid, filter, rumqttc::QoS::AtLeastOnce)).await;
    match c.recv_v4(WAIT).await {
        v4::Packet::SubAck(a) => a.return_codes[0],
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

fn claims(sub: &str, exp: i64, extra: &str) -> String {
    format!(r#"{{"sub":"{sub}","tenant":"acme","iat":{},"exp":{exp}{extra}}}"#, now())
}

#[tokio::test]
async fn security_jwt_tokens_accepted_refused_logged_and_mapped() {
    let keys = Keys::generate().await;
    let dir = keys.dir.path().to_path_buf();
    let jwks = dir.join("jwks.json");
    let (rsa_jwk, ec_jwk, oct_jwk) =
        (keys.rsa_jwk(&keys.rsa, "r1").await, keys.ec_jwk("e1").await, keys.hmac_jwk("h1"));
    write_jwks(&jwks, &[rsa_jwk.clone(), ec_jwk.clone(), oct_jwk.clone()]);
    let config_file = dir.join("roost.toml");
    std::fs::write(&config_file, config(&dir, &jwks)).unwrap();
    let roost = Roost::spawn(&config_file).await;
    let addr = roost.mqtt;
    let (rsa, ec, hmac) =
        (Signer::Rsa(keys.rsa.clone()), Signer::Ec(keys.ec.clone()), Signer::Hmac(keys.secret.clone()));
    let later = now() + 600;

    // Valid tokens, one per algorithm, over both protocol versions.
    let rs = token(r#"{"alg":"RS256","typ":"JWT","kid":"r1"}"#, &claims("dev-a", later, ""), &rsa).await;
    let (code, mut a) = connect_v5(addr, "jwt-a", &rs).await;
    assert_eq!(code, v5::ConnectReturnCode::Success);
    // The username is the `sub` claim (not "whoever"), and `%{tenant}` is the claim's value.
    assert!(matches!(suback_v5(&mut a, 1, "tenants/acme/#").await, v5::SubscribeReasonCode::Success(_)));
    assert!(matches!(suback_v5(&mut a, 2, "users/dev-a/#").await, v5::SubscribeReasonCode::Success(_)));
    assert_eq!(suback_v5(&mut a, 3, "tenants/other/#").await, v5::SubscribeReasonCode::NotAuthorized);
    assert_eq!(suback_v5(&mut a, 4, "users/whoever/#").await, v5::SubscribeReasonCode::NotAuthorized);

    let es = token(r#"{"alg":"ES256","kid":"e1"}"#, &claims("dev-b", later, ""), &ec).await;
    let (code, mut b) = connect_v4(addr, "jwt-b", &es).await;
    assert_eq!(code, v4::ConnectReturnCode::Success);
    assert!(matches!(suback_v4(&mut b, 1, "tenants/acme/x").await, v4::SubscribeReasonCode::Success(_)));
    assert_eq!(suback_v4(&mut b, 2, "tenants/other/x").await, v4::SubscribeReasonCode::Failure);

    let hs = token(r#"{"alg":"HS256","kid":"h1"}"#, &claims("dev-c", later, ""), &hmac).await;
    assert_eq!(connect_v5(addr, "jwt-c", &hs).await.0, v5::ConnectReturnCode::Success);

    // Refused, each for its reason (v5 0x86, v3.1.1 4), logged without the token.
    let before = now() - 600;
    let wrong_key = Signer::Rsa(keys.rsa2.clone());
    let rsa_pem = std::fs::read(&keys.rsa_pub).unwrap();
    let refused = [
        ("expired", token(r#"{"alg":"RS256","kid":"r1"}"#, &claims("x", now() - 60, ""), &rsa).await),
        (
            "not valid for another",
            token(r#"{"alg":"ES256","kid":"e1"}"#, &claims("x", later, &format!(r#","nbf":{later}"#)), &ec).await,
        ),
        (
            "signature does not verify",
            token(r#"{"alg":"RS256","kid":"r1"}"#, &claims("x", later, ""), &wrong_key).await,
        ),
        ("alg \"none\"", token(r#"{"alg":"none","kid":"r1"}"#, &claims("x", later, ""), &Signer::Unsigned).await),
        // Algorithm confusion: HS256 "signed" with the RSA public key as the HMAC secret.
        (
            "does not match the key",
            token(r#"{"alg":"HS256","kid":"r1"}"#, &claims("x", later, ""), &Signer::Hmac(rsa_pem)).await,
        ),
        ("does not match the key", token(r#"{"alg":"RS256","kid":"e1"}"#, &claims("x", later, ""), &rsa).await),
        ("is not in the key set", token(r#"{"alg":"RS256","kid":"zz"}"#, &claims("x", later, ""), &rsa).await),
        ("expired", token(r#"{"alg":"HS256","kid":"h1"}"#, &claims("x", before, ""), &hmac).await),
    ];
    for (i, (reason, t)) in refused.iter().enumerate() {
        let from = roost.log_len();
        let id = format!("bad-{i}");
        if i % 2 == 0 {
            assert_eq!(connect_v5(addr, &id, t).await.0, v5::ConnectReturnCode::BadUserNamePassword, "{reason}");
        } else {
            assert_eq!(connect_v4(addr, &id, t).await.0, v4::ConnectReturnCode::BadUserNamePassword, "{reason}");
        }
        let line = roost.wait_log(from, &format!("client_id={id}")).await;
        assert!(line.contains("jwt: token refused") && line.contains(reason), "{reason}: {line}");
    }
    // No line of the whole log holds a token, nor any token's signature.
    let log = roost.log();
    for t in refused.iter().map(|(_, t)| t).chain([&rs, &es, &hs]) {
        let sig = t.rsplit('.').next().unwrap();
        let leak = log.iter().find(|l| l.contains(t.as_str()) || (!sig.is_empty() && l.contains(sig)));
        assert!(leak.is_none(), "the log shows a token: {leak:?}");
    }

    // The JWK Set file changes: a new key (kid r2) is used at the next login, no reload.
    let r2 = keys.rsa_jwk(&keys.rsa2, "r2").await;
    let t2 = token(r#"{"alg":"RS256","kid":"r2"}"#, &claims("dev-d", later, ""), &wrong_key).await;
    let from = roost.log_len();
    write_jwks(&jwks, &[rsa_jwk.clone(), ec_jwk, oct_jwk, r2.clone()]);
    assert_eq!(connect_v5(addr, "jwt-d", &t2).await.0, v5::ConnectReturnCode::Success);
    roost.wait_log(from, "jwt: key set reloaded").await;

    // `roost ctl reload` with the config pointing at another set (only r2): r1 is gone.
    let other = dir.join("jwks-b.json");
    write_jwks(&other, &[r2]);
    std::fs::write(&config_file, config(&dir, &other)).unwrap();
    let (ok, out) = roost.ctl_reload().await;
    assert!(ok, "roost ctl reload: {out}");
    assert_eq!(connect_v5(addr, "jwt-e", &t2).await.0, v5::ConnectReturnCode::Success);
    assert_eq!(connect_v5(addr, "jwt-f", &rs).await.0, v5::ConnectReturnCode::BadUserNamePassword);
    drop((a, b));
}

#[tokio::test]
async fn security_jwt_token_in_a_user_property_with_a_pem_key() {
    let keys = Keys::generate().await;
    let config = format!(
        "[auth]\nallow_anonymous = false\nchain = [\"jwt\"]\nslow_after_failures = 0\n\
         [auth.jwt]\nfrom = \"user_property\"\nuser_property = \"token\"\nalgorithm = \"public-key\"\n\
         public_key = {:?}\nverify_claims = {{ client = \"${{clientid}}\" }}\n",
        keys.ec_pub.display().to_string()
    );
    let broker = TestBroker::start_with(&config).await;
    let ec = Signer::Ec(keys.ec.clone());
    let claims = |client: &str| format!(r#"{{"client":"{client}","exp":{}}}"#, now() + 600);
    let connect = |id: &str, token: Option<String>| {
        let mut c = raw::connect_v5(id);
        let mut props = v5::ConnectProperties::new();
        props.user_properties = token.into_iter().map(|t| ("token".to_string(), t)).collect();
        c.properties = Some(props);
        c
    };
    let good = token(r#"{"alg":"ES256"}"#, &claims("up-1"), &ec).await;
    let (_c, ack) = RawClient::connect_v5(broker.addr(), connect("up-1", Some(good.clone())), None).await;
    assert_eq!(ack.code, v5::ConnectReturnCode::Success);
    // verify_claims: the token names another client id.
    let (_c, ack) = RawClient::connect_v5(broker.addr(), connect("up-2", Some(good)), None).await;
    assert_eq!(ack.code, v5::ConnectReturnCode::BadUserNamePassword);
    // No property, no password: nobody's client, and anonymous access is off.
    let mut c = RawClient::connect(broker.addr()).await;
    let login = v5::Login { username: "u".into(), password: String::new() };
    c.send_v5(&v5::Packet::Connect(connect("up-3", None), None, Some(login))).await;
    match c.recv_v5(WAIT).await {
        v5::Packet::ConnAck(a) => assert_eq!(a.code, v5::ConnectReturnCode::BadUserNamePassword),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    broker.stop().await;
}
