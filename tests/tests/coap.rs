//! CoAP end to end: libcoap's `coap-client-notls` (Debian libcoap3-bin) and aiocoap (PyPI,
//! driven by `peers/coap_peer.py`), both installed by scripts/test, plus raw datagrams for
//! exact codes, against the gateway's UDP socket, with real MQTT clients (rumqttc) on the
//! other side.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_e2e::coap::{Raw, code, request, resp};
use roost_e2e::mqtt5::Client5;
use roost_e2e::mqtt311::{Client311, qos};
use roost_e2e::{QUIET, TestBroker, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::{Instant, timeout};

const COAP_CLIENT: &str = "coap-client-notls";

/// Runs `coap-client-notls ARGS` (bounded) and returns (stdout, stderr).
pub(crate) async fn coap_client(args: &[&str]) -> (String, String) {
    let out = timeout(Duration::from_secs(20), Command::new(COAP_CLIENT).args(args).kill_on_drop(true).output())
        .await
        .expect("coap-client finished within 20 s")
        .expect("coap-client-notls runs (scripts/test installs libcoap3-bin)");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

pub(crate) fn url(addr: SocketAddr, path: &str) -> String {
    format!("coap://{addr}/{path}")
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn coap_put_and_post_publish_to_mqtt_subscribers() {
    let broker = TestBroker::start().await;
    let mut v3 = Client311::connect(broker.addr(), "watcher3").await;
    v3.subscribe("coap/#", qos(1)).await;
    let mut v5 = Client5::connect(broker.addr(), "watcher5").await;
    v5.subscribe("coap/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await;
    let a = broker.coap_addr();
    coap_client(&["-m", "put", "-e", "from-put", &url(a, "ps/coap/put?qos=1")]).await;
    coap_client(&["-m", "post", "-t", "json", "-e", "{\"t\":21}", &url(a, "ps/coap/post")]).await;
    let p1 = v3.expect_publish(WAIT).await;
    assert_eq!((p1.topic.as_str(), &p1.payload[..]), ("coap/put", &b"from-put"[..]));
    assert_eq!(p1.qos, qos(1));
    let p2 = v3.expect_publish(WAIT).await;
    assert_eq!((p2.topic.as_str(), &p2.payload[..]), ("coap/post", &b"{\"t\":21}"[..]));
    // The Content-Format (50, JSON) arrives as the MQTT 5 content type.
    let q1 = v5.expect_publish(WAIT).await;
    assert_eq!(&q1.payload[..], b"from-put");
    let q2 = v5.expect_publish(WAIT).await;
    let ct = q2.properties.and_then(|p| p.content_type);
    assert_eq!(ct.as_deref(), Some("application/json"));
    // A retained message is read back by a plain GET; a topic without one is 4.04.
    let raw = Raw::new(a).await;
    let r = raw.call(RequestType::Put, "ps/coap/state", &["retain=true"], b"on").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
    let r = raw.call(RequestType::Get, "ps/coap/state", &[], b"").await;
    assert_eq!((code(&r), &r.payload[..]), (resp(ResponseType::Content), &b"on"[..]));
    let r = raw.call(RequestType::Get, "ps/coap/nothing", &[], b"").await;
    assert_eq!(code(&r), resp(ResponseType::NotFound));
    let r = raw.call(RequestType::Delete, "ps/coap/state", &[], b"").await;
    assert_eq!(code(&r), resp(ResponseType::MethodNotAllowed));
    let (out, _) = coap_client(&["-m", "get", &url(a, ".well-known/core")]).await;
    assert!(out.contains("</ps>") && out.contains("</mqtt/connection>"), "{out}");
}

/// The aiocoap peer (`tests/peers/coap_peer.py`); also driven by the cluster tests.
pub(crate) struct Peer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    pub(crate) fn start(args: &[&str]) -> Peer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/coap_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs aiocoap)");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Peer { child, lines }
    }

    pub(crate) async fn line(&mut self) -> String {
        match timeout(Duration::from_secs(10), self.lines.next_line()).await {
            Ok(Ok(Some(l))) => l,
            other => panic!("aiocoap peer said nothing more: {other:?}; exit: {:?}", self.child.try_wait()),
        }
    }

    pub(crate) async fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }
}

#[tokio::test]
async fn coap_observer_gets_mqtt_publishes_until_it_cancels() {
    let broker = TestBroker::start().await;
    let port = broker.coap_addr().port().to_string();
    let mut peer = Peer::start(&["observe", &port, "ps/cmd/+"]);
    assert_eq!(peer.line().await, "registered 2.05 True");
    assert_eq!(broker.coap_counters().observers.load(Relaxed), 1);
    let mut mqtt = Client311::connect(broker.addr(), "commander").await;
    mqtt.publish("cmd/lamp", qos(0), false, "on").await;
    assert_eq!(peer.line().await, "notify on");
    // QoS 1 goes as a CON notification (notify_type = "qos") and is acknowledged.
    mqtt.publish("cmd/fan", qos(1), false, "off").await;
    assert_eq!(peer.line().await, "notify off");
    peer.say("cancel").await;
    assert_eq!(peer.line().await, "cancelled 2.05");
    // The deregistration (GET with Observe 1) removed the observer and its subscription.
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.coap_counters().observers.load(Relaxed) != 0 {
        assert!(Instant::now() < deadline, "observer not removed after cancel");
        mqtt.publish("cmd/lamp", qos(1), false, "again").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A raw observer: RST to a notification removes it (RFC 7641 §3.6).
    let raw = Raw::new(broker.coap_addr()).await;
    let mut obs = request(MessageType::Confirmable, RequestType::Get, 7, "ps/cmd/raw", &[], b"");
    obs.add_option(CoapOption::Observe, vec![]);
    raw.send(&obs).await;
    let r = raw.recv().await;
    assert_eq!(code(&r), resp(ResponseType::Content));
    assert!(r.get_option(CoapOption::Observe).is_some());
    mqtt.publish("cmd/raw", qos(0), false, "x").await;
    let n = raw.recv().await;
    assert_eq!((n.header.get_type(), &n.payload[..]), (MessageType::NonConfirmable, &b"x"[..]));
    let mut rst = Packet::new();
    rst.header.set_type(MessageType::Reset);
    rst.header.code = MessageClass::Empty;
    rst.header.message_id = n.header.message_id;
    raw.send(&rst).await;
    eventually("observer removed by RST", || broker.coap_counters().observers.load(Relaxed) == 0).await;
    mqtt.publish("cmd/raw", qos(0), false, "y").await;
    assert!(raw.recv_within(QUIET).await.is_none(), "no notification after RST");
    // An observe without a token is 4.00.
    let mut bad = request(MessageType::Confirmable, RequestType::Get, 8, "ps/cmd/raw", &[], b"");
    bad.set_token(Vec::new());
    bad.add_option(CoapOption::Observe, vec![]);
    raw.send(&bad).await;
    assert_eq!(code(&raw.recv().await), resp(ResponseType::BadRequest));
}

#[tokio::test]
async fn coap_10k_body_goes_in_by_block1_and_out_by_block2() {
    let broker = TestBroker::start().await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("big", qos(0)).await;
    let body: String = (0..10_240).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, &body).unwrap();
    let a = broker.coap_addr();
    coap_client(&["-m", "put", "-b", "1024", "-f", file.to_str().unwrap(), &url(a, "ps/big?retain=true")]).await;
    let p = mqtt.expect_publish(WAIT).await;
    assert_eq!(p.payload.len(), 10_240);
    assert_eq!(&p.payload[..], body.as_bytes());
    // Block1 was used: one publish, not ten.
    mqtt.assert_no_publish(QUIET).await;
    let (out, err) = coap_client(&["-m", "get", "-b", "1024", &url(a, "ps/big")]).await;
    let out = out.strip_suffix('\n').unwrap_or(&out);
    assert!(out == body, "Block2 body differs: {} bytes back, stderr: {err}", out.len());
    // And over a 10 kB notification: the first block comes with the notification, the
    // rest by Block2 requests (aiocoap assembles them).
    let port = a.port().to_string();
    let mut peer = Peer::start(&["observe", &port, "ps/big"]);
    assert_eq!(peer.line().await, "registered 2.05 True");
    let note = peer.line().await;
    assert_eq!(note.len(), "notify ".len() + 10_240, "{}", &note[..note.len().min(80)]);
    // A body over coap.max_body_size is refused with 4.13.
    let small = TestBroker::start_with("[coap]\nmax_body_size = 4096\n").await;
    let (_, err) =
        coap_client(&["-m", "put", "-b", "1024", "-f", file.to_str().unwrap(), &url(small.coap_addr(), "ps/big")])
            .await;
    assert!(err.contains("4.13"), "{err}");
}

#[tokio::test]
async fn coap_repeated_con_is_answered_from_the_cache_and_publishes_once() {
    let broker = TestBroker::start().await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("dup/#", qos(0)).await;
    let raw = Raw::new(broker.coap_addr()).await;
    let p = request(MessageType::Confirmable, RequestType::Post, 0x1234, "ps/dup/a", &[], b"once");
    raw.send(&p).await;
    let first = raw.recv().await;
    raw.send(&p).await;
    let second = raw.recv().await;
    assert_eq!(first, second);
    assert_eq!(code(&first), resp(ResponseType::Changed));
    assert_eq!(first.header.get_type(), MessageType::Acknowledgement);
    let got = mqtt.expect_publish(WAIT).await;
    assert_eq!(&got.payload[..], b"once");
    // The next thing the subscriber sees is a marker, not a second copy.
    raw.call(RequestType::Post, "ps/dup/marker", &[], b"marker").await;
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"marker");
    assert_eq!(broker.coap_counters().duplicates.load(Relaxed), 1);
}

#[tokio::test]
async fn coap_connection_flow_with_connection_required() {
    let broker = TestBroker::start_with("[coap]\nconnection_required = true\nheartbeat = \"1s\"\n").await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("conn/#", qos(0)).await;
    let raw = Raw::new(broker.coap_addr()).await;
    // Without a connection: 4.01.
    let r = raw.call(RequestType::Put, "ps/conn/a", &[], b"x").await;
    assert_eq!(code(&r), resp(ResponseType::Unauthorized));
    let r = raw.call(RequestType::Put, "ps/conn/a", &["clientid=dev1", "token=nope"], b"x").await;
    assert_eq!(code(&r), resp(ResponseType::Unauthorized));
    // Create: 2.01 with the token as body.
    let r = raw.call(RequestType::Post, "mqtt/connection", &["clientid=dev1", "username=u", "password=p"], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Created));
    let token = String::from_utf8(r.payload.clone()).unwrap();
    let tq = format!("token={token}");
    let q = ["clientid=dev1", tq.as_str()];
    let r = raw.call(RequestType::Put, "ps/conn/a", &q, b"with-token").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"with-token");
    let r = raw.call(RequestType::Put, "ps/conn/a", &["clientid=dev1", "token=wrong"], b"x").await;
    assert_eq!(code(&r), resp(ResponseType::Unauthorized));
    // Heartbeat, and from another address (a NAT rebinding) the token still works.
    let r = raw.call(RequestType::Put, "mqtt/connection", &q, b"").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
    let moved = Raw::new(broker.coap_addr()).await;
    let r = moved.call(RequestType::Put, "ps/conn/b", &q, b"moved").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"moved");
    // Close: 2.02, then the token is refused.
    let r = moved.call(RequestType::Delete, "mqtt/connection", &q, b"").await;
    assert_eq!(code(&r), resp(ResponseType::Deleted));
    let r = raw.call(RequestType::Put, "ps/conn/a", &q, b"x").await;
    assert_eq!(code(&r), resp(ResponseType::Unauthorized));
    // A token that misses its heartbeat expires (1.5 heartbeats) and is refused with 4.01.
    let r = raw.call(RequestType::Post, "mqtt/connection", &["clientid=dev2"], b"").await;
    let tq2 = format!("token={}", String::from_utf8(r.payload.clone()).unwrap());
    let q2 = ["clientid=dev2", tq2.as_str()];
    eventually("dev2's session expired", || broker.coap_counters().sessions.load(Relaxed) == 0).await;
    let r = raw.call(RequestType::Put, "ps/conn/a", &q2, b"late").await;
    assert_eq!(code(&r), resp(ResponseType::Unauthorized));
    mqtt.assert_no_publish(QUIET).await;
    // coap-client does the same flow.
    let a = broker.coap_addr();
    let (tok, _) = coap_client(&["-m", "post", &url(a, "mqtt/connection?clientid=dev3")]).await;
    let tok = tok.trim();
    assert_eq!(tok.len(), 16, "{tok:?}");
    coap_client(&["-m", "put", "-e", "via-libcoap", &url(a, &format!("ps/conn/c?clientid=dev3&token={tok}"))]).await;
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"via-libcoap");
}

#[tokio::test]
async fn coap_connection_flow_without_connection_required() {
    let broker = TestBroker::start().await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("free/#", qos(0)).await;
    let raw = Raw::new(broker.coap_addr()).await;
    let r = raw.call(RequestType::Put, "ps/free/a", &[], b"anon").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"anon");
    // A device that did create a connection must then use its token.
    let r = raw.call(RequestType::Post, "mqtt/connection", &["clientid=dev9"], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Created));
    let tq = format!("token={}", String::from_utf8(r.payload.clone()).unwrap());
    let r = raw.call(RequestType::Put, "ps/free/b", &["clientid=dev9", tq.as_str()], b"tok").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"tok");
    let r = raw.call(RequestType::Put, "ps/free/b", &["clientid=dev9"], b"no").await;
    assert_eq!(code(&r), resp(ResponseType::Unauthorized));
    let r = raw.call(RequestType::Delete, "mqtt/connection", &["clientid=dev9", tq.as_str()], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Deleted));
}

struct DenyUser;

impl roost_core::auth::Authenticator for DenyUser {
    fn authenticate<'a>(
        &'a self,
        c: roost_core::auth::Credentials<'a>,
    ) -> roost_core::auth::BoxFuture<'a, roost_core::auth::AuthDecision> {
        let ok = c.password.map(|p| &p[..]) != Some(&b"bad"[..]);
        Box::pin(std::future::ready(if ok {
            roost_core::auth::AuthDecision::Allow
        } else {
            roost_core::auth::AuthDecision::BadCredentials
        }))
    }
}

struct NoSecrets;

impl roost_core::auth::Authorizer for NoSecrets {
    fn check(&self, _c: &roost_core::ClientInfo, _a: roost_core::auth::Action, topic: &str) -> bool {
        !topic.starts_with("secret")
    }
}

#[tokio::test]
async fn coap_auth_refusal_is_4_01_and_acl_refusal_is_4_03() {
    let broker =
        TestBroker::start_custom("", |b| b.authenticator(Box::new(DenyUser)).authorizer(Box::new(NoSecrets))).await;
    let raw = Raw::new(broker.coap_addr()).await;
    let r = raw.call(RequestType::Put, "ps/open", &["clientid=x", "username=u", "password=bad"], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Unauthorized));
    let r = raw.call(RequestType::Post, "mqtt/connection", &["clientid=y", "password=bad"], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Unauthorized));
    let r = raw.call(RequestType::Put, "ps/secret/a", &["clientid=z"], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Forbidden));
    let mut obs = request(MessageType::Confirmable, RequestType::Get, 3, "ps/secret/#", &["clientid=z"], b"");
    obs.add_option(CoapOption::Observe, vec![]);
    raw.send(&obs).await;
    assert_eq!(code(&raw.recv().await), resp(ResponseType::Forbidden));
    let r = raw.call(RequestType::Put, "ps/open", &["clientid=z"], b"").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
}

#[tokio::test]
async fn coap_malformed_datagrams_get_rst_or_are_dropped() {
    let broker = TestBroker::start().await;
    let raw = Raw::new(broker.coap_addr()).await;
    // A CON whose option runs past the end: RST with its message id.
    raw.send_bytes(&[0x40, 0x03, 0x12, 0x34, 0xB5, b'p']).await;
    let r = raw.recv().await;
    assert_eq!((r.header.get_type(), r.header.message_id), (MessageType::Reset, 0x1234));
    // A NON that does not parse, a short datagram, version 2: dropped, counted.
    raw.send_bytes(&[0x50, 0x03, 0, 1, 0xF0]).await;
    raw.send_bytes(&[0x40]).await;
    raw.send_bytes(&[0x80, 0x01, 0, 2]).await;
    assert!(raw.recv_within(QUIET).await.is_none());
    eventually("4 malformed counted", || broker.coap_counters().malformed.load(Relaxed) == 4).await;
    // An unknown critical option: 4.02; an unknown path: 4.04; a ping: RST.
    let mut p = request(MessageType::Confirmable, RequestType::Put, 9, "ps/a", &[], b"");
    p.add_option(CoapOption::Unknown(2049), vec![1]);
    raw.send(&p).await;
    assert_eq!(code(&raw.recv().await), resp(ResponseType::BadOption));
    let r = raw.call(RequestType::Get, "nowhere", &[], b"").await;
    assert_eq!(code(&r), resp(ResponseType::NotFound));
    raw.send_bytes(&[0x40, 0x00, 0x00, 0x07]).await;
    let r = raw.recv().await;
    assert_eq!((r.header.get_type(), r.header.message_id), (MessageType::Reset, 7));
    // Bad query values: 4.00.
    let r = raw.call(RequestType::Put, "ps/a", &["qos=7"], b"").await;
    assert_eq!(code(&r), resp(ResponseType::BadRequest));
    // The gateway still serves.
    let r = raw.call(RequestType::Put, "ps/a", &[], b"ok").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
}

/// The shipped auth and ACL sources, configured as a user would (a users file written by
/// `roost passwd`'s code, `[[acl.rule]]` with `%c`, `no_match = "deny"`), through CoAP.
#[tokio::test]
async fn coap_users_file_and_acl_rules_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    roost_core::auth::users::set_user(&users, "meter", b"right-pw", None).unwrap();
    let config = format!(
        "[auth]\nallow_anonymous = false\nchain = [\"password_file\"]\npassword_file = {:?}\n\
         [acl]\nno_match = \"deny\"\n\
         [[acl.rule]]\npermission = \"allow\"\naction = \"publish\"\ntopics = [\"devices/%c/#\"]\n\
         [[acl.rule]]\npermission = \"allow\"\naction = \"subscribe\"\ntopics = [\"devices/%c/cmd/#\"]\n",
        users.display().to_string()
    );
    let broker = TestBroker::start_with(&config).await;
    let raw = Raw::new(broker.coap_addr()).await;
    // Wrong password, unknown user, no credentials: 4.01.
    for q in [
        &["clientid=c1", "username=meter", "password=wrong"][..],
        &["clientid=c1", "username=nobody", "password=x"],
        &["clientid=c1"],
    ] {
        let r = raw.call(RequestType::Post, "mqtt/connection", q, b"").await;
        assert_eq!(code(&r), resp(ResponseType::Unauthorized), "{q:?}");
    }
    let r = raw
        .call(RequestType::Post, "mqtt/connection", &["clientid=c1", "username=meter", "password=right-pw"], b"")
        .await;
    assert_eq!(code(&r), resp(ResponseType::Created));
    let tq = format!("token={}", String::from_utf8(r.payload.clone()).unwrap());
    let q = ["clientid=c1", tq.as_str()];
    // Publish under its own client id (%c): allowed; under another's or elsewhere: 4.03 (no_match = deny).
    assert_eq!(code(&raw.call(RequestType::Put, "ps/devices/c1/temp", &q, b"21").await), resp(ResponseType::Changed));
    assert_eq!(code(&raw.call(RequestType::Put, "ps/devices/c2/temp", &q, b"21").await), resp(ResponseType::Forbidden));
    assert_eq!(code(&raw.call(RequestType::Put, "ps/other", &q, b"21").await), resp(ResponseType::Forbidden));
    // Observe its own commands: allowed; another device's: 4.03.
    let mut obs = request(MessageType::Confirmable, RequestType::Get, 7, "ps/devices/c1/cmd/#", &q, b"");
    obs.add_option(CoapOption::Observe, vec![]);
    raw.send(&obs).await;
    assert_eq!(code(&raw.recv().await), resp(ResponseType::Content));
    let mut obs = request(MessageType::Confirmable, RequestType::Get, 8, "ps/devices/c2/cmd/#", &q, b"");
    obs.add_option(CoapOption::Observe, vec![]);
    raw.send(&obs).await;
    assert_eq!(code(&raw.recv().await), resp(ResponseType::Forbidden));
    broker.stop().await;
}
