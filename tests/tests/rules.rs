//! Rules (roost-rules) end to end: the EMQX documentation examples through
//! `/api/v1/rules/test`, rule CRUD applied without restart, bad input counted and refused,
//! a PostgreSQL outage (initdb in a temp dir) held in the queue, and an HTTPS receiver
//! trusting a test CA. Every other sink, with messages from every protocol: `rules_sinks`.
//!
//! Message counts: `ROOST_RULES_MESSAGES` (default 1,000; the acceptance run uses 10,000).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::postgres::Postgres;
use roost_e2e::{TestBroker, WAIT};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Long enough for a batch to reach a database on a loaded 2-core box.
pub(crate) const SINK_WAIT: Duration = Duration::from_secs(60);

pub(crate) fn messages() -> usize {
    std::env::var("ROOST_RULES_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000)
}

/// Polls `f` until it is true, at most `within`.
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn rule(broker: &TestBroker, id: &str) -> Value {
    let (status, r) = broker.api().get(&format!("/api/v1/rules/{id}")).await;
    assert_eq!(status, 200, "{r}");
    r
}

pub(crate) fn sqlite_count(db: &Path, sql: &str) -> i64 {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sqlite3 (Debian `sqlite3`; scripts/test installs it): {e}"));
    assert!(out.status.success(), "sqlite3: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(-1)
}

#[tokio::test]
async fn emqx_documentation_examples_evaluate_through_the_test_api() {
    let broker = TestBroker::start().await;
    let api = broker.api();
    let table: Vec<Value> = serde_json::from_str(include_str!("../../gateway/rules/tests/emqx_examples.json")).unwrap();
    assert!(table.len() >= 20);
    for row in &table {
        let (status, got) =
            api.call("POST", "/api/v1/rules/test", Some(&json!({"sql": row["sql"], "context": row["context"]}))).await;
        assert_eq!(status, 200, "{}: {got}", row["doc"]);
        let want = row["result"].as_str().unwrap_or("output");
        assert_eq!(got["result"], want, "{}: {got}", row["doc"]);
        if want == "output" {
            assert_eq!(got["output"], row["output"], "{}", row["doc"]);
        }
    }
    // No side effects: testing made no rule.
    let (_, list) = api.get("/api/v1/rules").await;
    assert_eq!(list["meta"]["count"], 0);
    let (status, e) = api.call("POST", "/api/v1/rules/test", Some(&json!({"sql": "SELECT x\nFROM t"}))).await;
    assert_eq!((status, &e["line"], &e["column"]), (400, &json!(2), &json!(6)), "{e}");
    broker.stop().await;
}

#[tokio::test]
async fn rules_crud_applies_at_once_and_bad_input_is_counted_not_fatal() {
    let broker = TestBroker::start().await;
    let api = broker.api();
    let mut sub = Client5::connect(broker.addr(), "watcher").await;
    sub.subscribe("alerts/#", mqtt5::qos(1)).await;
    let hot = json!({
        "id": "hot",
        "sql": "SELECT payload.temp AS t, clientid FROM \"sensors/#\" WHERE payload.temp > 30",
        "actions": [{"type": "republish", "topic": "alerts/${clientid}", "payload": "{\"t\": ${t}}", "qos": 1}]
    });
    let (status, r) = api.call("POST", "/api/v1/rules", Some(&hot)).await;
    assert_eq!(status, 201, "{r}");
    let (status, _) = api.call("POST", "/api/v1/rules", Some(&hot)).await;
    assert_eq!(status, 409);

    let mut dev = Client5::connect(broker.addr(), "dev1").await;
    dev.publish("sensors/a", mqtt5::qos(1), false, "{\"temp\": 35}").await;
    dev.publish("sensors/a", mqtt5::qos(1), false, "{\"temp\": 20}").await;
    dev.publish("sensors/a", mqtt5::qos(1), false, "not json at all").await;
    let p = sub.expect_publish(WAIT).await;
    assert_eq!((p.topic.as_ref(), p.payload.as_ref()), (&b"alerts/dev1"[..], &b"{\"t\": 35}"[..]));

    // An invalid rule is refused with its position; the running rule is unaffected.
    let bad = json!({"id": "bad", "sql": "SELECT payload.t\nFROM \"x\" WHER t > 1"});
    let (status, e) = api.call("POST", "/api/v1/rules", Some(&bad)).await;
    assert_eq!(
        (status, e["code"].as_str(), &e["line"], &e["column"]),
        (400, Some("BAD_SQL"), &json!(2), &json!(10)),
        "{e}"
    );
    dev.publish("sensors/b", mqtt5::qos(1), false, "{\"temp\": 40}").await;
    assert_eq!(sub.expect_publish(WAIT).await.topic.as_ref(), b"alerts/dev1");
    eventually("the rule's counters", WAIT, || async {
        let m = rule(&broker, "hot").await["metrics"].clone();
        m["matched"] == 4 && m["passed"] == 2 && m["no_result"] == 2 && m["failed"] == 0
    })
    .await;
    let (_, text) = api.call_raw("GET", "/metrics", None).await;
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("roost_rule_no_result_total{rule=\"hot\"} 2"), "{text}");
    assert!(text.contains("roost_rule_action_success_total{rule=\"hot\",action=\"0:republish\"} 2"), "{text}");

    // Replace: the new SQL applies to the next message; delete: nothing more is republished.
    let mut hotter = hot.clone();
    hotter["sql"] = json!("SELECT payload.temp AS t, clientid FROM \"sensors/#\" WHERE payload.temp > 50");
    let (status, _) = api.call("PUT", "/api/v1/rules/hot", Some(&hotter)).await;
    assert_eq!(status, 200);
    dev.publish("sensors/a", mqtt5::qos(1), false, "{\"temp\": 45}").await;
    dev.publish("sensors/a", mqtt5::qos(1), false, "{\"temp\": 55}").await;
    assert_eq!(sub.expect_publish(WAIT).await.payload.as_ref(), b"{\"t\": 55}");
    let (status, _) = api.call("DELETE", "/api/v1/rules/hot", None).await;
    assert_eq!(status, 204);
    dev.publish("sensors/a", mqtt5::qos(1), false, "{\"temp\": 99}").await;
    sub.assert_no_publish(roost_e2e::QUIET).await;
    assert_eq!(api.get("/api/v1/rules/hot").await.0, 404);
    broker.stop().await;
}

#[tokio::test]
async fn api_rules_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[storage]\nbackend = \"disk\"\ndata_dir = \"{}\"\n", dir.path().display());
    let broker = TestBroker::start_with(&config).await;
    let r = json!({"id": "kept", "sql": "SELECT * FROM \"k/#\"", "actions": [{"type": "log"}]});
    assert_eq!(broker.api().call("POST", "/api/v1/rules", Some(&r)).await.0, 201);
    broker.stop().await;
    let broker = TestBroker::start_with(&config).await;
    let got = rule(&broker, "kept").await;
    assert_eq!((got["origin"].as_str(), got["actions"][0]["type"].as_str()), (Some("api"), Some("log")));
    broker.stop().await;
}

#[tokio::test]
async fn postgres_down_holds_rows_up_to_the_queue_and_writes_them_after_the_restart() {
    let mut pg = Postgres::start().await;
    let conn = pg.conninfo();
    let broker = TestBroker::start_with(&format!(
        r#"
[[rule]]
id = "hot"
sql = 'SELECT payload.temp AS t, clientid, topic FROM "sensors/#" WHERE payload.temp > 30'
[[rule.action]]
type = "postgres"
conninfo = "{conn}"
init_sql = "CREATE TABLE IF NOT EXISTS hot (t double precision, clientid text, topic text)"
sql = "INSERT INTO hot (t, clientid, topic) VALUES (${{t}}, ${{clientid}}, ${{topic}})"
queue = 200
batch_size = 10
retries = 100000
retry_backoff_ms = 100
"#
    ))
    .await;
    let mut dev = Client5::connect(broker.addr(), "dev").await;
    let outage = 500;
    // The same number of acknowledged publishes with the sink up and with it down: the
    // second run must not be slower than the first by more than noise (the action queue
    // absorbs the outage; the publish path never waits for a sink).
    let started = Instant::now();
    for i in 0..outage {
        dev.publish(&format!("sensors/{i}"), mqtt5::qos(1), false, "{\"temp\": 40}").await;
    }
    let took_up = started.elapsed();
    // Whatever the sink could not take while up is counted as dropped: wait until every
    // message is accounted for, so the outage's figures below start from a drained queue.
    let settled = || async {
        let m = rule(&broker, "hot").await["metrics"]["actions"][0].clone();
        m["queue_depth"] == 0 && m["success"].as_i64().unwrap_or(0) + m["dropped"].as_i64().unwrap_or(0) == outage
    };
    eventually("the first rows", SINK_WAIT, settled).await;
    let m = rule(&broker, "hot").await["metrics"]["actions"][0].clone();
    let (first_rows, dropped_up) = (m["success"].as_i64().unwrap_or(0), m["dropped"].as_i64().unwrap_or(0));
    assert_eq!(pg.count("SELECT count(*) FROM hot").await, first_rows);
    eprintln!("sink up: {first_rows} rows written, {dropped_up} dropped at the queue bound");

    pg.down().await;
    let down_since = Instant::now();
    for i in 0..outage {
        dev.publish(&format!("sensors/down/{i}"), mqtt5::qos(1), false, "{\"temp\": 41}").await;
    }
    let took = down_since.elapsed();
    eprintln!("{outage} publishes took {took_up:?} with PostgreSQL up, {took:?} with it down");
    assert!(
        took <= took_up * 3 + Duration::from_millis(500),
        "publishing slowed while the sink was down: {took:?} vs {took_up:?}"
    );
    let m = rule(&broker, "hot").await["metrics"]["actions"][0].clone();
    let dropped = m["dropped"].as_i64().unwrap() - dropped_up;
    // Held: the queue (200) and the batch being retried (up to 10).
    assert!((outage - 210..=outage - 200).contains(&dropped), "dropped {dropped}: {m}");
    assert_eq!(m["queue_depth"], 200, "{m}");
    // The issue's outage: PostgreSQL stays down for 10 s in all.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down_since.elapsed())).await;
    let m = rule(&broker, "hot").await["metrics"]["actions"][0].clone();
    assert_eq!(m["queue_depth"], 200, "the held rows stay held through the outage: {m}");

    pg.up().await;
    let want = first_rows + outage - dropped;
    eventually("the held rows after the restart", SINK_WAIT, || async {
        pg.count("SELECT count(*) FROM hot").await == want
    })
    .await;
    let m = rule(&broker, "hot").await["metrics"]["actions"][0].clone();
    assert_eq!(
        (m["success"].as_i64(), m["failed"].as_i64(), m["queue_depth"].as_i64()),
        (Some(want), Some(0), Some(0)),
        "{m}"
    );
    broker.stop().await;
}

/// An HTTPS server (rustls) with a certificate from a test CA: each request's body goes to
/// the channel, answered 200.
async fn https_receiver(dir: &Path) -> (u16, std::path::PathBuf, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "roost rules test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                // Enough HTTP/1.1 for one request with a Content-Length body.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(n) = tls.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                        }
                    }
                };
                let _ = tx.send(body);
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, ca_path, rx)
}

#[tokio::test]
async fn https_action_posts_to_a_receiver_trusting_a_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, mut rx) = https_receiver(dir.path()).await;
    let broker = TestBroker::start().await;
    let r = json!({
        "id": "web",
        "sql": "SELECT payload.temp AS t, clientid FROM \"sensors/#\" WHERE payload.temp > 30",
        "actions": [{"type": "http", "url": format!("https://localhost:{port}/ingest"), "ca_file": ca,
                     "body": "{\"device\": \"${clientid}\", \"t\": ${t}}", "batch_size": 1}]
    });
    assert_eq!(broker.api().call("POST", "/api/v1/rules", Some(&r)).await.0, 201);
    let mut dev = Client5::connect(broker.addr(), "d7").await;
    dev.publish("sensors/x", mqtt5::qos(1), false, "{\"temp\": 31}").await;
    dev.publish("sensors/x", mqtt5::qos(1), false, "{\"temp\": 3}").await;
    dev.publish("sensors/x", mqtt5::qos(1), false, "{\"temp\": 33}").await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let body = tokio::time::timeout(SINK_WAIT, rx.recv()).await.expect("an HTTPS POST in time").unwrap();
        got.push(serde_json::from_str::<Value>(&body).unwrap());
    }
    got.sort_by_key(|v| v["t"].as_i64());
    assert_eq!(got, vec![json!({"device": "d7", "t": 31}), json!({"device": "d7", "t": 33})]);
    eventually("success counted", WAIT, || async {
        rule(&broker, "web").await["metrics"]["actions"][0]["success"] == 2
    })
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn webhooks_post_over_https_too() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, mut rx) = https_receiver(dir.path()).await;
    let broker = TestBroker::start_with(&format!(
        "[[webhook]]\nurl = \"https://localhost:{port}/events\"\nca_file = \"{}\"\nevents = [\"client.connected\"]\nbatch_delay = \"10ms\"\n",
        ca.display()
    ))
    .await;
    let _dev = Client5::connect(broker.addr(), "tls-hooked").await;
    let body = tokio::time::timeout(SINK_WAIT, rx.recv()).await.expect("an HTTPS webhook POST in time").unwrap();
    let events: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(events[0]["event"], "client.connected", "{events}");
    assert_eq!(events[0]["clientid"], "tls-hooked");
    // Without the CA the certificate is refused: a config error for a missing file.
    let missing =
        roost::config::parse("[[webhook]]\nurl = \"https://localhost:1/\"\nca_file = \"/nonexistent/ca.pem\"\n");
    assert_eq!(missing.unwrap_err().key(), Some("webhook[0].ca_file"));
    broker.stop().await;
}
