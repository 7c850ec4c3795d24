//! schemathesis (PyPI, installed by `scripts/test`) against `/api/v1/openapi.json`: a
//! bounded number of generated requests per operation, valid and invalid, with the key;
//! none may get a server error (5xx).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use roost_e2e::TestBroker;
use roost_e2e::mqtt5::{self, Client5};

const KEY: &str = "schemathesis-key-0123456789";

#[tokio::test]
async fn schemathesis_finds_no_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_with(&format!(
        "[http]\napi_keys = [\"{KEY}\"]\n[storage]\nbackend = \"memory\"\ndata_dir = \"{}\"\n",
        dir.path().display()
    ))
    .await;
    // Something to list: a client with a subscription, a retained message.
    let mut c = Client5::connect(broker.addr(), "fixture").await;
    c.subscribe("s/#", mqtt5::qos(1)).await;
    c.publish("s/retained", mqtt5::qos(1), true, "r").await;
    // A CoAP device, for `/coap/sessions`.
    let coap = roost_e2e::coap::Raw::new(broker.coap_addr()).await;
    let r = coap.call(coap_lite::RequestType::Put, "ps/s/coap", &["clientid=coap-fixture"], b"1").await;
    assert_eq!(roost_e2e::coap::code(&r), roost_e2e::coap::resp(coap_lite::ResponseType::Changed));

    let base = format!("http://{}/api/v1", broker.http_addr());
    let checks = std::env::var("ROOST_SCHEMATHESIS_CHECKS").unwrap_or_else(|_| "not_a_server_error".into());
    let run = tokio::process::Command::new("st")
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["--header", &format!("Authorization: Bearer {KEY}")])
        .args(["--checks", &checks, "--max-examples", "20", "--seed", "1", "--workers", "1", "--request-timeout", "5"])
        // `{topic}` stands for a whole topic, slashes included; most generated strings fit.
        .args(["--suppress-health-check", "filter_too_much"])
        // An event stream stays open until its client leaves: a request timeout, not an error
        // (tests/tests/dashboard.rs reads it).
        .args(["--exclude-path", "/dashboard/watch"])
        .args(["--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache (.schemathesis/) goes to the test's temporary directory, not the repo.
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(240), run).await.expect("schemathesis finished in time") {
        Ok(out) => out,
        Err(e) => panic!("cannot run `st` (PyPI schemathesis; scripts/test installs it): {e}"),
    };
    let report = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    assert!(report.contains("passed"), "{report}");
    eprintln!("{report}");
    broker.stop().await;
}
