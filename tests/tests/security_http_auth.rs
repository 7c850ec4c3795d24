//! The HTTP authentication backend (issue 10) against a real HTTP service started by the
//! test (axum): allow, deny and ignore answers, the cache, and the timeout path (denied
//! promptly, never hanging the connect).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{TestBroker, WAIT};
use rumqttc::v5::mqttbytes::v5;

async fn auth(State(calls): State<Arc<AtomicUsize>>, Json(body): Json<serde_json::Value>) -> Json<serde_json::Value> {
    calls.fetch_add(1, Ordering::SeqCst);
    let user = body["username"].as_str().unwrap_or_default();
    let pass = body["password"].as_str().unwrap_or_default();
    assert_eq!(body["protocol"], "mqtt");
    assert_eq!(body["peerhost"], "127.0.0.1");
    let result = match (user, pass) {
        ("http-user", "right") => "allow",
        ("http-user", _) => "deny",
        ("slow", _) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "allow"
        }
        _ => "ignore",
    };
    Json(serde_json::json!({ "result": result }))
}

async fn code(addr: std::net::SocketAddr, id: &str, user: &str, pass: &str) -> v5::ConnectReturnCode {
    let mut c = RawClient::connect(addr).await;
    let login = v5::Login { username: user.into(), password: pass.into() };
    c.send_v5(&v5::Packet::Connect(raw::connect_v5(id), None, Some(login))).await;
    match c.recv_v5(WAIT).await {
        v5::Packet::ConnAck(a) => a.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn security_http_auth_backend_allow_deny_ignore_cache_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route("/mqtt/auth", post(auth)).with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mqtt/auth", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = format!(
        "[auth]\nallow_anonymous = false\nchain = [\"http\"]\nslow_after_failures = 0\n[auth.http]\nurl = {url:?}\ntimeout = \"500ms\"\ncache_ttl = \"1m\"\n"
    );
    let broker = TestBroker::start_with(&config).await;
    let addr = broker.addr();
    use v5::ConnectReturnCode as C;
    assert_eq!(code(addr, "h1", "http-user", "right").await, C::Success);
    let asked = calls.load(Ordering::SeqCst);
    // The same credentials again: answered from the cache.
    assert_eq!(code(addr, "h1", "http-user", "right").await, C::Success);
    assert_eq!(calls.load(Ordering::SeqCst), asked);
    // "deny" keeps the client out; "ignore" from the only source leaves a named user out.
    assert_eq!(code(addr, "h2", "http-user", "wrong").await, C::BadUserNamePassword);
    assert_eq!(code(addr, "h3", "nobody", "x").await, C::BadUserNamePassword);
    // The service does not answer in time: denied after the timeout, not hung.
    let t = Instant::now();
    assert_eq!(code(addr, "h4", "slow", "x").await, C::NotAuthorized);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "timeout path took {took:?}");
    assert_eq!(broker.broker().metrics().snapshot().auth_failures, 3);
    broker.stop().await;
}
