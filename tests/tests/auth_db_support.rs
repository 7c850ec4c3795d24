//! What the database and directory auth tests (`auth_db`) share: CONNACK, SUBACK and PUBACK
//! codes through raw MQTT 5 / 3.1.1 clients, the users file of the next source, the
//! password hashes as EMQX stores them, and `roost_auth_backend_total` from `/metrics`.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roost_e2e::raw::{self, RawClient};
use roost_e2e::{TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// The users file of the source after the database one: `dave` is known only there.
pub fn users_file(dir: &Path) -> PathBuf {
    let file = dir.join("users");
    roost_core::auth::users::set_user(&file, "dave", b"dave-pw", None).unwrap();
    file
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// EMQX `sha256` with `salt_position = "suffix"`.
pub fn sha256_suffix(password: &str, salt: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, format!("{password}{salt}").as_bytes()).as_ref())
}

/// EMQX `pbkdf2` with `mac_fun = "sha256"`, 1000 iterations, 32 bytes.
pub fn pbkdf2_sha256(password: &str, salt: &str) -> String {
    let mut out = [0u8; 32];
    let n = std::num::NonZeroU32::new(1000).unwrap();
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA256, n, salt.as_bytes(), password.as_bytes(), &mut out);
    hex(&out)
}

/// An MQTT 5 CONNECT answered; the client (still open when admitted) and the reason code.
pub async fn connect5(addr: SocketAddr, id: &str, user: &str, pass: &str) -> (RawClient, u8) {
    let mut c = RawClient::connect(addr).await;
    let login = v5::Login { username: user.into(), password: pass.into() };
    c.send_v5(&v5::Packet::Connect(raw::connect_v5(id), None, Some(login))).await;
    match c.recv_v5(WAIT * 3).await {
        v5::Packet::ConnAck(a) => {
            let code = match a.code {
                v5::ConnectReturnCode::Success => 0x00,
                v5::ConnectReturnCode::BadUserNamePassword => 0x86,
                v5::ConnectReturnCode::NotAuthorized => 0x87,
                other => panic!("unexpected CONNACK {other:?}"),
            };
            (c, code)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

pub async fn code5(addr: SocketAddr, id: &str, user: &str, pass: &str) -> u8 {
    connect5(addr, id, user, pass).await.1
}

/// The MQTT 3.1.1 CONNACK return code.
pub async fn code4(addr: SocketAddr, id: &str, user: &str, pass: &str) -> v4::ConnectReturnCode {
    let mut connect = raw::connect_v4(id);
    connect.set_login(user, pass);
    let mut c = RawClient::connect(addr).await;
    c.send_v4(&v4::Packet::Connect(connect)).await;
    match c.recv_v4(WAIT * 3).await {
        v4::Packet::ConnAck(a) => a.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

pub async fn suback(c: &mut RawClient, pkid: u16, filter: &str) -> v5::SubscribeReasonCode {
    let f = v5::Filter::new(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce);
    c.send_v5(&raw::subscribe_v5(pkid, f, None)).await;
    loop {
        if let v5::Packet::SubAck(a) = c.recv_v5(WAIT).await {
            return a.return_codes[0];
        }
    }
}

pub async fn puback(c: &mut RawClient, pkid: u16, topic: &str) -> v5::PubAckReason {
    let mut p = v5::Publish::new(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, "x", None);
    p.pkid = pkid;
    c.send_v5(&v5::Packet::Publish(p)).await;
    loop {
        if let v5::Packet::PubAck(a) = c.recv_v5(WAIT).await {
            return a.reason;
        }
    }
}

/// A PUBACK of an allowed publish (with or without subscribers).
pub fn allowed(reason: v5::PubAckReason) -> bool {
    matches!(reason, v5::PubAckReason::Success | v5::PubAckReason::NoMatchingSubscribers)
}

/// `roost_auth_backend_total{source, result}` (0 when not yet counted).
pub async fn counted(broker: &TestBroker, source: &str, result: &str) -> f64 {
    let scrape = roost_e2e::metrics::scrape(broker.http_addr()).await;
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "roost_auth_backend_total"
                && s.labels.get("source") == Some(source)
                && s.labels.get("result") == Some(result)
        })
        .map_or(0.0, |s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("unexpected {other:?}"),
        })
}

/// The checks every backend passes, with users `alice` (ACL rows: publish `alice/#` but not
/// `alice/private`, subscribe `news/#`) and the superuser `root` in the backend, `dave` in
/// the users file only, and `[acl] no_match = "deny"`.
pub async fn admits_refuses_and_applies_acl(broker: &TestBroker, source: &str, acl: bool) {
    let addr = broker.addr();
    let (mut alice, code) = connect5(addr, "alice-1", "alice", "alice-pw").await;
    assert_eq!(code, 0x00, "{source}: right password admitted");
    assert_eq!(code5(addr, "alice-2", "alice", "wrong").await, 0x86, "{source}: wrong password");
    assert_eq!(code4(addr, "alice-3", "alice", "wrong").await, v4::ConnectReturnCode::BadUserNamePassword);
    assert_eq!(code5(addr, "alice-4", "alice", "").await, 0x86, "{source}: empty password");
    // Unknown here: the next source (the users file) decides.
    assert_eq!(code5(addr, "dave-1", "dave", "dave-pw").await, 0x00, "{source}: unknown user passed on");
    // Each would select alice's (or root's) record if pasted into the query or filter, and
    // the password is theirs: only binding / escaping keeps these out.
    let evil = ["' OR '1'='1", "' OR username='alice", "al*", "*", "alice)(uid=alice"];
    for (i, user) in evil.iter().enumerate() {
        for pass in ["alice-pw", "root-pw"] {
            let code = code5(addr, &format!("evil-{i}"), user, pass).await;
            assert_eq!(code, 0x86, "{source}: injection {user:?} refused");
        }
    }
    let (mut root, code) = connect5(addr, "root-1", "root", "root-pw").await;
    assert_eq!(code, 0x00, "{source}: superuser admitted");
    // The superuser passes every ACL check; no file rule allows these.
    assert_eq!(
        suback(&mut root, 1, "secret/#").await,
        v5::SubscribeReasonCode::Success(rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
    );
    assert!(allowed(puback(&mut root, 2, "secret/x").await), "{source}: superuser publishes anywhere");
    if acl {
        let granted = v5::SubscribeReasonCode::Success(rumqttc::v5::mqttbytes::QoS::AtLeastOnce);
        assert_eq!(suback(&mut alice, 1, "news/today").await, granted, "{source}: ACL row allows");
        assert_eq!(suback(&mut alice, 2, "secret/#").await, v5::SubscribeReasonCode::NotAuthorized);
        assert!(allowed(puback(&mut alice, 3, "alice/status").await), "{source}: ACL row allows publish");
        assert_eq!(puback(&mut alice, 4, "alice/private").await, v5::PubAckReason::NotAuthorized, "{source}: deny row");
        assert_eq!(puback(&mut alice, 5, "news/today").await, v5::PubAckReason::NotAuthorized);
    }
    assert!(counted(broker, source, "allow").await >= 2.0, "{source}: allows counted");
    assert!(counted(broker, source, "deny").await >= 1.0, "{source}: denials counted");
    assert!(counted(broker, source, "ignore").await >= 1.0, "{source}: unknown users counted");
}

/// The backend is down: a new login gets `expected` within `within`; `alice` (connected
/// before) goes on publishing; the failure is counted as `error` or `timeout`.
pub async fn down_outcome(
    broker: &TestBroker,
    source: &str,
    alice: &mut RawClient,
    id: &str,
    expected: u8,
    within: Duration,
) {
    let before = counted(broker, source, "error").await + counted(broker, source, "timeout").await;
    let t = Instant::now();
    assert_eq!(code5(broker.addr(), id, "alice", "alice-pw").await, expected, "{source} down: configured outcome");
    assert!(t.elapsed() < within, "{source} down: answered in {:?}", t.elapsed());
    assert!(allowed(puback(alice, 9, "alice/still-here").await), "{source} down: existing client unaffected");
    let after = counted(broker, source, "error").await + counted(broker, source, "timeout").await;
    assert!(after > before, "{source} down: failure counted ({before} -> {after})");
}

/// Logins work again once the backend is back (the pool reconnects), within `within`.
pub async fn works_again(broker: &TestBroker, source: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut n = 0;
    loop {
        n += 1;
        if code5(broker.addr(), &format!("back-{n}"), "alice", "alice-pw").await == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{source}: logins did not work again within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
