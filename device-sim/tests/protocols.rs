//! `roost-sim mqtt-sn` and `roost-sim codec` against Roost in-process: every simulated
//! device connects and every publish/report is acknowledged.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing

mod common;

use common::{start_roost, within};

async fn run_sim(args: &[String]) -> String {
    let out =
        within(60, "roost-sim", tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-sim")).args(args).output())
            .await
            .expect("roost-sim runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "roost-sim failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttsn_fleet_is_acknowledged() {
    let gateway = start_roost("").await;
    let target = gateway.mqttsn_addrs()[0].to_string();
    let args: Vec<String> =
        ["mqtt-sn", "--target", &target, "--devices", "20", "--publishes", "2", "--period", "200ms", "--qos", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let out = run_sim(&args).await;
    assert!(
        out.contains("20 connected (0 failed), 0 gave up, 40 published, 40 acknowledged, 0 rejected, 0 timed out"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_sensors_are_acknowledged() {
    let gateway = start_roost(
        "[[codec]]\nname = \"sensors\"\ncodec = \"tlv-sensor\"\ntransport = \"udp\"\nbind = \"127.0.0.1:0\"\n",
    )
    .await;
    let target = gateway.codec_addr("sensors").expect("codec listener").to_string();
    let args: Vec<String> = ["codec", "--target", &target, "--devices", "10", "--reports", "3", "--interval", "100ms"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = run_sim(&args).await;
    // Every second report asks for confirmation: one each of three per device.
    assert!(out.contains("30 reports sent, 10 acknowledged"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lorawan_fleet_joins_and_every_uplink_comes_out() {
    let config =
        format!("[lorawan]\ndeduplication_window = \"50ms\"\n{}", roost_sim::lorawan::device_config(20, 5, "sim"));
    let gateway = start_roost(&config).await;
    let target = gateway.lorawan_addrs()[0].to_string();
    let mqtt = gateway.mqtt_addrs()[0].to_string();
    let args: Vec<String> = [
        "lorawan",
        "run",
        "--json",
        "--target",
        &target,
        "--mqtt",
        &mqtt,
        "--gateways",
        "3",
        "--abp",
        "20",
        "--otaa",
        "5",
        "--heard-by",
        "2",
        "--interval",
        "500ms",
        "--duration",
        "3s",
        "--confirmed-every",
        "2",
        "--drain",
        "5s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_sim(&args).await;
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(r["joins_accepted"], 5, "{out}");
    assert!(r["uplinks"].as_u64().unwrap_or(0) >= 100, "{out}");
    assert_eq!(r["lost"], 0, "{out}");
    assert_eq!(r["duplicates"], 0, "{out}");
    assert_eq!(r["events"], r["uplinks"], "{out}");
    assert!(r["acks"].as_u64().unwrap_or(0) >= 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coap_dtls_fleet_is_acknowledged() {
    // One PSK identity per device, as `--dtls-psk dev-{n}:KEY` names them.
    let mut config = String::from("[coap]\ndtls_bind = [\"127.0.0.1:0\"]\n");
    for n in 0..5 {
        config += &format!("[[coap.psk]]\nidentity = \"dev-{n}\"\nkey = \"key-of-the-fleet\"\n");
    }
    let gateway = start_roost(&config).await;
    let target = gateway.coaps_addrs()[0].to_string();
    let args: Vec<String> = [
        "coap",
        "--target",
        &target,
        "--dtls-psk",
        "dev-{n}:key-of-the-fleet",
        "--devices",
        "5",
        "--period",
        "100ms",
        "--duration",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_sim(&args).await;
    let count =
        |label: &str| out.split(label).next().and_then(|s| s.rsplit(' ').next()).and_then(|s| s.parse::<u64>().ok());
    assert!(out.contains("coap: 5 observing (0 failed)") && out.contains("0 refused, 0 timed out"), "{out}");
    assert!(out.contains("dtls: 5 handshakes (0 failed)"), "{out}");
    assert!(count(" published").is_some_and(|n| n > 0) && count(" published") == count(" acknowledged"), "{out}");
    assert_eq!(gateway.dtls_counters().handshakes_ok.load(std::sync::atomic::Ordering::Relaxed), 5);
}
