//! Acceptance 1: `roost-sim mqtt --devices 1000` against a running Roost: every device
//! connects, telemetry flows, and a command on `devices/42/command` is answered on
//! `devices/42/reply`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;

use bytes::Bytes;
use common::{start_roost, within};
use roost_mqtt::codec::{Packet, Publish, QoS};
use roost_sim::client::{Client, ConnectOptions};
use tokio::io::{AsyncBufReadExt as _, BufReader};

async fn next_publish(c: &mut roost_sim::client::Reader) -> Publish {
    loop {
        match c.next().await.unwrap() {
            Some(Packet::Publish(p)) => return p,
            Some(_) => continue,
            None => panic!("connection closed"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_devices_connect_send_telemetry_and_answer_commands() {
    let gw = start_roost("[log]\nlevel = \"warn\"\n").await;
    let addr = gw.mqtt_addrs()[0].to_string();

    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-sim"))
        .args(["mqtt", "--target", &addr, "--devices", "1000", "--ramp", "2000", "--rate", "1", "--duration", "60s"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    within(30, "all 1000 devices connected", async {
        loop {
            let line = lines.next_line().await.unwrap().expect("simulator ended early");
            if line.contains("all 1000 devices connected") {
                break;
            }
        }
    })
    .await;
    assert!(gw.broker().connection_count() >= 1000, "broker sees {}", gw.broker().connection_count());

    let opts = ConnectOptions::default();
    let mut watcher = Client::connect(&addr, "test-watcher", &opts).await.unwrap();
    watcher.subscribe("devices/+/telemetry", QoS::AtMostOnce).await.unwrap();
    watcher.subscribe("devices/42/reply", QoS::AtMostOnce).await.unwrap();
    let (mut rd, _wr) = watcher.split();

    // Telemetry flows: one message from some device, in the template's JSON shape.
    let t = within(10, "telemetry", next_publish(&mut rd)).await;
    assert!(t.topic.starts_with("devices/") && t.topic.ends_with("/telemetry"), "{}", t.topic);
    let v: serde_json::Value = serde_json::from_slice(&t.payload).unwrap();
    assert!(v["temperature"].is_number() && v["battery"].is_number(), "{v}");

    // A command to device 42 is answered on its reply topic.
    let mut commander = Client::connect(&addr, "test-commander", &opts).await.unwrap();
    let cmd =
        Publish { topic: "devices/42/command".into(), payload: Bytes::from_static(b"reboot"), ..Publish::default() };
    commander.send(&Packet::Publish(cmd)).await.unwrap();
    let reply = within(10, "reply on devices/42/reply", async {
        loop {
            let p = next_publish(&mut rd).await;
            if p.topic == "devices/42/reply" {
                return p;
            }
        }
    })
    .await;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["id"], "42");
    assert_eq!(v["ok"], true);
    assert_eq!(v["command"], "reboot");

    sim.start_kill().unwrap();
    let _ = within(10, "simulator exit", sim.wait()).await;
    gw.shutdown(std::time::Duration::from_secs(5)).await;
}
