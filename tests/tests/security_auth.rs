//! Authentication and ACL (issue 10) through real clients: rumqttc (3.1.1 and 5, raw
//! packets where the exact reason code matters), mosquitto_pub / mosquitto_sub, and the
//! third-party MQTT-SN client.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roost_e2e::raw::{self, RawClient};
use roost_e2e::sn_peer::SnPeer;
use roost_e2e::{TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// The users file, written as `roost passwd` writes it (the command itself is tested in
/// gateway/server/tests/passwd.rs, where Cargo builds the binary it runs).
fn users_file(dir: &Path) -> PathBuf {
    let file = dir.join("users");
    use roost_core::auth::users::set_user;
    set_user(&file, "alice", b"alice-pw", None).unwrap();
    set_user(&file, "bob", b"bob-pw", Some("bob-dev")).unwrap();
    set_user(&file, "carol", b"carol-pw", None).unwrap();
    set_user(&file, "admin", b"admin-pw", None).unwrap();
    file
}

fn v5_login(client_id: &str, user: Option<&str>, pass: &str) -> v5::Packet {
    let login = user.map(|u| v5::Login { username: u.into(), password: pass.into() });
    v5::Packet::Connect(raw::connect_v5(client_id), None, login)
}

async fn connack_v5(addr: std::net::SocketAddr, client_id: &str, user: Option<&str>, pass: &str) -> (RawClient, u8) {
    let mut c = RawClient::connect(addr).await;
    c.send_v5(&v5_login(client_id, user, pass)).await;
    match c.recv_v5(WAIT).await {
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

fn auth_config(users: &Path) -> String {
    format!(
        "[auth]\nallow_anonymous = false\nchain = [\"password_file\", \"client_ids\"]\npassword_file = {:?}\n\
         client_ids = [\"sn-*\"]\nslow_after_failures = 3\n",
        users.display()
    )
}

#[tokio::test]
async fn security_users_file_and_client_ids_through_mqtt_clients() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let broker = TestBroker::start_with(&auth_config(&users)).await;
    let addr = broker.addr();

    // MQTT 5: right credentials in, wrong ones out with 0x86, a bound user on another
    // client id with 0x87, anonymous out, a listed client id in without credentials.
    assert_eq!(connack_v5(addr, "a1", Some("alice"), "alice-pw").await.1, 0x00);
    assert_eq!(connack_v5(addr, "c1", Some("carol"), "carol-pw").await.1, 0x00);
    assert_eq!(connack_v5(addr, "bob-dev", Some("bob"), "bob-pw").await.1, 0x00);
    assert_eq!(connack_v5(addr, "sn-7", None, "").await.1, 0x00);
    let before = broker.broker().metrics().snapshot().auth_failures;
    assert_eq!(connack_v5(addr, "a2", Some("alice"), "wrong").await.1, 0x86);
    assert_eq!(connack_v5(addr, "x", Some("mallory"), "x").await.1, 0x86);
    assert_eq!(connack_v5(addr, "other", Some("bob"), "bob-pw").await.1, 0x87);
    assert_eq!(broker.broker().metrics().snapshot().auth_failures, before + 3);

    // Past slow_after_failures (3) from one address, the next refusal comes slowly.
    let t = Instant::now();
    assert_eq!(connack_v5(addr, "anon", None, "").await.1, 0x86);
    assert!(t.elapsed() >= Duration::from_millis(200), "4th failure answered in {:?}", t.elapsed());

    // MQTT 3.1.1: return code 4 for a wrong password.
    let mut connect = raw::connect_v4("v4-wrong");
    connect.set_login("alice", "nope");
    let mut c = RawClient::connect(addr).await;
    c.send_v4(&v4::Packet::Connect(connect)).await;
    match c.recv_v4(WAIT * 3).await {
        v4::Packet::ConnAck(a) => assert_eq!(a.code, v4::ConnectReturnCode::BadUserNamePassword),
        other => panic!("expected CONNACK, got {other:?}"),
    }

    // mosquitto_pub with the right and a wrong password.
    let pub_run = |pass: &'static str| {
        tokio::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &addr.port().to_string(),
                "-u",
                "alice",
                "-P",
                pass,
                "-t",
                "t",
                "-m",
                "m",
                "-V",
                "mqttv311",
            ])
            .output()
    };
    let ok = tokio::time::timeout(WAIT * 4, pub_run("alice-pw")).await.unwrap().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = tokio::time::timeout(WAIT * 4, pub_run("bad")).await.unwrap().unwrap();
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("bad user name or password"), "{said}");

    // MQTT-SN 1.2 has no credentials: its clients get in by client id.
    let mut sn = SnPeer::start("security", broker.mqttsn_addr().port(), &["sn-sensor", "a/b", "c/d"]);
    sn.expect("connack ok").await;
    let mut stranger = SnPeer::start("security", broker.mqttsn_addr().port(), &["stranger", "a/b", "c/d"]);
    stranger.expect("connack refused").await;
    stranger.finish().await;
    drop(sn);
    broker.stop().await;
}

const ACL: &str = r##"
[acl]
no_match = "deny"
[[acl.rule]]
permission = "allow"
user = "admin"
topics = ["$SYS/#", "#"]
[[acl.rule]]
permission = "deny"
topics = ["$SYS/#"]
[[acl.rule]]
permission = "allow"
action = "publish"
topics = ["devices/%c/up", "users/%u/out"]
[[acl.rule]]
permission = "allow"
action = "subscribe"
topics = ["users/%u/#", "eq fleet/#", "devices/+/up"]
[[acl.rule]]
permission = "allow"
protocol = "mqtt-sn"
topics = ["sn/%c/#"]
[[acl.rule]]
permission = "deny"
ip = "127.0.0.0/8"
action = "publish"
topics = ["blocked/#"]
[[acl.rule]]
permission = "allow"
topics = ["blocked/#"]
"##;

fn v5_sub(pkid: u16, filter: &str) -> v5::Packet {
    raw::subscribe_v5(pkid, v5::Filter::new(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce), None)
}

async fn suback_v5(c: &mut RawClient, pkid: u16, filter: &str) -> v5::SubscribeReasonCode {
    c.send_v5(&v5_sub(pkid, filter)).await;
    loop {
        if let v5::Packet::SubAck(a) = c.recv_v5(WAIT).await {
            return a.return_codes[0];
        }
    }
}

async fn puback_v5(c: &mut RawClient, pkid: u16, topic: &str) -> v5::PubAckReason {
    let mut p = v5::Publish::new(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, "x", None);
    p.pkid = pkid;
    c.send_v5(&v5::Packet::Publish(p)).await;
    loop {
        if let v5::Packet::PubAck(a) = c.recv_v5(WAIT).await {
            return a.reason;
        }
    }
}

#[tokio::test]
async fn security_acl_rules_through_mqtt_and_mqttsn_clients() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    // No $SYS traffic: the admin's $SYS subscription would see other clients' events.
    let config = format!("[node]\nsys_interval = \"0s\"\n{}{ACL}", auth_config(&users));
    let broker = TestBroker::start_with(&config).await;
    let addr = broker.addr();

    let (mut admin, code) = connack_v5(addr, "adm", Some("admin"), "admin-pw").await;
    assert_eq!(code, 0);
    let (mut alice, code) = connack_v5(addr, "dev1", Some("alice"), "alice-pw").await;
    assert_eq!(code, 0);
    use v5::SubscribeReasonCode as S;
    // $SYS: the admin only.
    assert!(matches!(suback_v5(&mut admin, 1, "$SYS/#").await, S::Success(_)));
    assert_eq!(suback_v5(&mut alice, 1, "$SYS/#").await, S::NotAuthorized);
    // %u in a subscribe rule; the eq form admits the literal filter only; no_match = deny.
    assert!(matches!(suback_v5(&mut alice, 2, "users/alice/inbox").await, S::Success(_)));
    assert_eq!(suback_v5(&mut alice, 3, "users/bob/inbox").await, S::NotAuthorized);
    assert!(matches!(suback_v5(&mut alice, 4, "fleet/#").await, S::Success(_)));
    assert_eq!(suback_v5(&mut alice, 5, "fleet/a").await, S::NotAuthorized);
    assert_eq!(suback_v5(&mut alice, 6, "elsewhere").await, S::NotAuthorized);
    assert!(matches!(suback_v5(&mut admin, 2, "devices/+/up").await, S::Success(_)));
    // %c in a publish rule: its own topic goes through, another's gets PUBACK 0x87.
    assert_eq!(puback_v5(&mut alice, 10, "devices/dev1/up").await, v5::PubAckReason::Success);
    match admin.recv_v5(WAIT).await {
        v5::Packet::Publish(p) => assert_eq!(raw::topic_v5(&p), "devices/dev1/up"),
        other => panic!("admin expected the allowed publish, got {other:?}"),
    }
    assert_eq!(puback_v5(&mut alice, 11, "devices/dev2/up").await, v5::PubAckReason::NotAuthorized);
    // The IP rule comes first for 127.0.0.0/8, so the later allow never applies.
    assert_eq!(puback_v5(&mut alice, 12, "blocked/x").await, v5::PubAckReason::NotAuthorized);
    admin.assert_silent(roost_e2e::QUIET).await;

    // MQTT 3.1.1: a denied subscribe gets 0x80, a denied publish is dropped (PUBACK, no delivery).
    let mut connect = raw::connect_v4("dev1-v4");
    connect.set_login("carol", "carol-pw");
    let (mut carol, ack) = RawClient::connect_v4(addr, connect).await;
    assert_eq!(ack.code, v4::ConnectReturnCode::Success);
    carol.send_v4(&raw::subscribe_v4(1, "users/alice/#", rumqttc::QoS::AtLeastOnce)).await;
    match carol.recv_v4(WAIT).await {
        v4::Packet::SubAck(a) => assert_eq!(a.return_codes, vec![v4::SubscribeReasonCode::Failure]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    let mut p = v4::Publish::new("devices/other/up", rumqttc::QoS::AtLeastOnce, "x");
    p.pkid = 7;
    carol.send_v4(&v4::Packet::Publish(p)).await;
    assert!(matches!(carol.recv_v4(WAIT).await, v4::Packet::PubAck(_)));
    admin.assert_silent(roost_e2e::QUIET).await;

    // MQTT-SN: a protocol rule with %c; refused publish and subscribe get a rejected code.
    let mut sn = SnPeer::start("security", broker.mqttsn_addr().port(), &["sn-9", "sn/sn-9/t", "sn/other/t"]);
    sn.expect("connack ok").await;
    sn.expect("publish ok sn/sn-9/t").await;
    sn.expect("publish refused sn/other/t").await;
    sn.expect("subscribe ok sn/sn-9/t").await;
    sn.expect("subscribe refused sn/other/t").await;
    sn.finish().await;
    broker.stop().await;
}

#[tokio::test]
async fn security_acl_no_match_allow_and_deny_action_disconnect() {
    let config = "[acl]\nno_match = \"allow\"\ndeny_action = \"disconnect\"\n[[acl.rule]]\npermission = \"deny\"\naction = \"publish\"\ntopics = [\"secret/#\"]\n";
    let broker = TestBroker::start_with(config).await;
    let (mut c, ack) = RawClient::connect_v5(broker.addr(), raw::connect_v5("c"), None).await;
    assert_eq!(ack.code, v5::ConnectReturnCode::Success);
    // no_match = allow: a topic no rule names goes through.
    assert_eq!(puback_v5(&mut c, 1, "open/topic").await, v5::PubAckReason::NoMatchingSubscribers);
    // deny_action = disconnect: a denied publish ends the connection with 0x87.
    let mut p = v5::Publish::new("secret/x", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, "x", None);
    p.pkid = 2;
    c.send_v5(&v5::Packet::Publish(p)).await;
    let d = c.expect_close_v5(WAIT).await.expect("DISCONNECT before close");
    assert_eq!(d.reason_code, v5::DisconnectReasonCode::NotAuthorized);
    broker.stop().await;
}
