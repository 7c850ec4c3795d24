//! Acceptance 2 (the part a test can hold): `roost-sim bench ... --json` prints one JSON
//! object that parses and adds up, for a flow scenario and for `conn`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod common;

use common::{start_roost, within};

async fn run_json(args: &[&str]) -> serde_json::Value {
    let out = within(
        60,
        "roost-sim bench",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-sim")).args(args).kill_on_drop(true).output(),
    )
    .await
    .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_json_parses_and_counts_every_message() {
    let gw = start_roost("[log]\nlevel = \"warn\"\n").await;
    let addr = gw.mqtt_addrs()[0].to_string();
    for qos in ["0", "1"] {
        let v = run_json(&[
            "bench",
            "--json",
            "fan-in",
            "--target",
            &addr,
            "--publishers",
            "3",
            "--count",
            "200",
            "--rate",
            "1000",
            "--duration",
            "10s",
            "--qos",
            qos,
        ])
        .await;
        assert_eq!(v["scenario"], "fan-in");
        assert_eq!(v["sent"], 600, "{v}");
        assert_eq!(v["delivered"], 600, "{v}");
        assert_eq!(v["lost"], 0, "{v}");
        assert_eq!(v["duplicates"], 0, "{v}");
        assert_eq!(v["errors"], 0, "{v}");
        assert!(v["latency"]["p99_ms"].as_f64().unwrap() >= v["latency"]["p50_ms"].as_f64().unwrap());
    }
    gw.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_json_parses_and_reads_memory() {
    let gw = start_roost("[log]\nlevel = \"warn\"\n").await;
    let addr = gw.mqtt_addrs()[0].to_string();
    let pid = std::process::id().to_string(); // in-process Roost: our own pid
    let v = run_json(&[
        "bench",
        "--json",
        "conn",
        "--target",
        &addr,
        "--connections",
        "200",
        "--hold",
        "1s",
        "--pid",
        &pid,
    ])
    .await;
    assert_eq!(v["scenario"], "conn");
    assert_eq!(v["connected"], 200, "{v}");
    assert_eq!(v["failures"], 0, "{v}");
    assert!(v["rss_after_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["bytes_per_connection"].is_number(), "{v}");
    gw.shutdown(std::time::Duration::from_secs(5)).await;
}
