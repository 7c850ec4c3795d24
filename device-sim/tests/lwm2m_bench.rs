//! `roost-sim bench lwm2m` end to end without the LwM2M gateway: a scripted LwM2M server
//! on a UDP socket takes the registrations, and a stand-in translator on Roost's MQTT
//! answers each EMQX-style read command on `lwm2m/{ep}/dn/#` with its result on
//! `lwm2m/{ep}/up/resp`. Checks that the bench registers every device and times every
//! command.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{start_roost, within};
use roost_mqtt::codec::{Packet, Publish, QoS};
use roost_sim::client::{Client, ConnectOptions, read_packet};
use tokio::io::AsyncWriteExt as _;
use tokio::net::UdpSocket;

/// Answers every CON POST (Register) with 2.01 `rd/{n}` and every DELETE with 2.02.
async fn scripted_server(socket: UdpSocket) {
    let mut buf = vec![0u8; 2048];
    let mut n = 0u8;
    while let Ok((len, from)) = socket.recv_from(&mut buf).await {
        let d = &buf[..len];
        if len < 4 || d[0] >> 6 != 1 || d[0] & 0x30 != 0 {
            continue;
        }
        let tkl = usize::from(d[0] & 0x0F);
        let mut r = vec![0x60 | d[0] & 0x0F, 0, d[2], d[3]];
        r.extend_from_slice(&d[4..4 + tkl]);
        match d[1] {
            0x02 => {
                n = n.wrapping_add(1);
                r[1] = 0x41;
                r.extend_from_slice(&[0x82, b'r', b'd', 0x01, b'a' + n % 26]);
            }
            0x04 => r[1] = 0x42,
            _ => continue,
        }
        let _ = socket.send_to(&r, from).await;
    }
}

/// Answers `{"reqID": k, ...}` on `lwm2m/{ep}/dn/...` with a read result on `lwm2m/{ep}/up/resp`.
async fn translator(c: Client) {
    let (mut stream, mut rbuf, version) = c.into_parts();
    while let Ok(Some(p)) = read_packet(&mut stream, &mut rbuf, version).await {
        let Packet::Publish(p) = p else { continue };
        let ep = p.topic.split('/').nth(1).unwrap().to_string();
        let cmd: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(cmd["msgType"], "read");
        let resp = serde_json::json!({"reqID": cmd["reqID"], "msgType": "read", "data": {"reqPath": cmd["data"]["path"], "code": "2.05", "codeMsg": "content", "content": [{"path": cmd["data"]["path"], "value": 21.5}]}});
        let out = Publish {
            qos: QoS::AtMostOnce,
            topic: format!("lwm2m/{ep}/up/resp"),
            payload: Bytes::from(resp.to_string()),
            ..Publish::default()
        };
        let mut wbuf = BytesMut::new();
        roost_mqtt::codec::encode(&Packet::Publish(out), version, &mut wbuf).unwrap();
        stream.write_all(&wbuf).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_registers_every_device_and_times_every_command() {
    let gw = start_roost("[log]\nlevel = \"warn\"\n").await;
    let mqtt = gw.mqtt_addrs()[0].to_string();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = udp.local_addr().unwrap().to_string();
    tokio::spawn(scripted_server(udp));
    let mut c = Client::connect(&mqtt, "translator", &ConnectOptions::default()).await.unwrap();
    c.subscribe("lwm2m/+/dn/#", QoS::AtMostOnce).await.unwrap();
    tokio::spawn(translator(c));
    let out = within(
        60,
        "roost-sim bench lwm2m",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-sim"))
            .args([
                "bench",
                "--json",
                "lwm2m",
                "--target",
                &server,
                "--mqtt",
                &mqtt,
                "--devices",
                "20",
                "--commands",
                "30",
                "--timeout",
                "5s",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["registered"].as_u64(), v["register_failed"].as_u64()), (Some(20), Some(0)), "{v}");
    assert!(v["registrations_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!((v["answered"].as_u64(), v["timed_out"].as_u64()), (Some(30), Some(0)), "{v}");
    assert!(v["latency"]["max_ms"].as_f64().unwrap() > 0.0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lwm2m_fleet_prints_its_counters() {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = udp.local_addr().unwrap().to_string();
    tokio::spawn(scripted_server(udp));
    let out = within(
        60,
        "roost-sim lwm2m",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-sim"))
            .args([
                "lwm2m",
                "--target",
                &server,
                "--devices",
                "7",
                "--duration",
                "1s",
                "--lifetime",
                "1s",
                "--queue-mode",
                "--queue-window",
                "1s",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("lwm2m: 7 registrations ok, 0 failed;"), "{line}");
    assert!(line.contains("; 7 de-registered;"), "{line}");
}
