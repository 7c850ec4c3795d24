//! `roost-sim mqtt`: N simulated devices, each its own MQTT connection and client id.
//!
//! Device `{id}` publishes telemetry on `devices/{id}/telemetry` at the given rate, subscribes
//! to `devices/{id}/command` and answers each command on `devices/{id}/reply` with a JSON
//! object that echoes the command. Connections are opened at the ramp-up rate; the run ends
//! after `duration` (or on Ctrl-C), when each device sends DISCONNECT.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use roost_mqtt::codec::{Ack, Disconnect, Packet, Publish, QoS};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;

use crate::client::{self, Client, ConnectOptions};
use crate::payload;

#[derive(Debug, Clone)]
pub struct DeviceSettings {
    pub target: String,
    pub devices: u32,
    pub first_id: u32,
    /// Telemetry messages per second, per device (0: none).
    pub rate: f64,
    pub template: String,
    /// New connections per second.
    pub ramp: f64,
    pub duration: Duration,
    pub qos: QoS,
    pub connect: ConnectOptions,
    pub client_id_prefix: String,
}

/// Counters shared by every device task.
#[derive(Debug, Default)]
pub struct Stats {
    pub connected: AtomicU64,
    pub telemetry_out: AtomicU64,
    pub commands_in: AtomicU64,
    pub replies_out: AtomicU64,
    pub errors: AtomicU64,
}

/// Runs the simulation to its end and prints the live line and the summary on stdout.
pub async fn run(s: DeviceSettings) -> anyhow::Result<()> {
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let deadline = start + s.duration;
    let s = Arc::new(s);

    let spawner = {
        let (s, stats, stop_rx) = (s.clone(), stats.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / s.ramp.max(0.001));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = Vec::with_capacity(s.devices as usize);
            for n in 0..s.devices {
                tick.tick().await;
                if *stop_rx.borrow() {
                    break;
                }
                let id = s.first_id + n;
                tasks.push(tokio::spawn(device(s.clone(), id, stats.clone(), stop_rx.clone())));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };

    let tty = std::io::stdout().is_terminal();
    let mut report = tokio::time::interval(Duration::from_secs(1));
    let mut last = (0, 0, Instant::now());
    let mut announced = false;
    loop {
        tokio::select! {
            _ = report.tick() => {}
            _ = tokio::time::sleep_until(deadline.into()) => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        let (out, inn) = (stats.telemetry_out.load(Relaxed), stats.commands_in.load(Relaxed));
        let secs = last.2.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "[{:>4}s] connected {}/{}  out {:.0} msg/s  in {:.0} msg/s  replies {}  errors {}",
            start.elapsed().as_secs(),
            stats.connected.load(Relaxed),
            s.devices,
            (out - last.0) as f64 / secs,
            (inn - last.1) as f64 / secs,
            stats.replies_out.load(Relaxed),
            stats.errors.load(Relaxed),
        );
        last = (out, inn, Instant::now());
        if tty {
            print!("\r{line}\x1b[K");
        } else if start.elapsed().as_secs().is_multiple_of(5) {
            println!("{line}");
        }
        if !announced && stats.connected.load(Relaxed) == u64::from(s.devices) {
            announced = true;
            println!(
                "{}all {} devices connected in {:.2}s",
                if tty { "\n" } else { "" },
                s.devices,
                start.elapsed().as_secs_f64()
            );
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), spawner).await;
    println!(
        "{}summary: {} devices, {} connected, {:.1}s, telemetry sent {}, commands received {}, replies sent {}, errors {}",
        if tty { "\n" } else { "" },
        s.devices,
        stats.connected.load(Relaxed),
        start.elapsed().as_secs_f64(),
        stats.telemetry_out.load(Relaxed),
        stats.commands_in.load(Relaxed),
        stats.replies_out.load(Relaxed),
        stats.errors.load(Relaxed),
    );
    Ok(())
}

async fn device(s: Arc<DeviceSettings>, id: u32, stats: Arc<Stats>, stop: watch::Receiver<bool>) {
    if let Err(e) = device_loop(&s, id, &stats, stop).await {
        stats.errors.fetch_add(1, Relaxed);
        eprintln!("device {id}: {e:#}");
    }
}

async fn device_loop(
    s: &DeviceSettings,
    id: u32,
    stats: &Stats,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client_id = format!("{}{id}", s.client_id_prefix);
    let mut c = Client::connect(&s.target, &client_id, &s.connect).await?;
    let command_topic = format!("devices/{id}/command");
    c.subscribe(&command_topic, s.qos).await?;
    stats.connected.fetch_add(1, Relaxed);
    let telemetry_topic = format!("devices/{id}/telemetry");
    let reply_topic = format!("devices/{id}/reply");
    let (mut stream, mut rbuf, version) = c.into_parts();
    let mut wbuf = BytesMut::new();
    let mut seq = 0u64;
    let mut packet_id = 1u16;
    let period = if s.rate > 0.0 { Duration::from_secs_f64(1.0 / s.rate) } else { Duration::from_secs(3600) };
    // Spread the first message of each device over one period so they do not all fire at once.
    let offset = period.mul_f64(rand::random::<f64>());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ka = Duration::from_secs(u64::from(s.connect.keep_alive.max(1)));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ka / 2, ka / 2);
    let mut next_id = move || {
        let id = packet_id;
        packet_id = packet_id.checked_add(1).unwrap_or(1);
        id
    };
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick(), if s.rate > 0.0 => {
                let body = payload::render(&s.template, id, seq);
                seq += 1;
                let p = Publish {
                    qos: s.qos,
                    topic: telemetry_topic.clone(),
                    packet_id: if s.qos == QoS::AtMostOnce { 0 } else { next_id() },
                    payload: Bytes::from(body),
                    ..Publish::default()
                };
                roost_mqtt::codec::encode(&Packet::Publish(p), version, &mut wbuf)?;
                stats.telemetry_out.fetch_add(1, Relaxed);
            }
            _ = ping.tick(), if s.connect.keep_alive > 0 => {
                roost_mqtt::codec::encode(&Packet::PingReq, version, &mut wbuf)?;
            }
            more = client::fill(&mut stream, &mut rbuf) => {
                if !more? {
                    anyhow::bail!("connection closed by the broker");
                }
                while let Some(p) = client::decode(&mut rbuf, version)? {
                    if let Packet::Publish(cmd) = p {
                        stats.commands_in.fetch_add(1, Relaxed);
                        if cmd.qos == QoS::AtLeastOnce {
                            let ack = Ack { packet_id: cmd.packet_id, ..Ack::default() };
                            roost_mqtt::codec::encode(&Packet::PubAck(ack), version, &mut wbuf)?;
                        }
                        let reply = format!(
                            r#"{{"id":"{id}","ok":true,"command":{}}}"#,
                            json_string(&String::from_utf8_lossy(&cmd.payload))
                        );
                        let p = Publish {
                            qos: s.qos,
                            topic: reply_topic.clone(),
                            packet_id: if s.qos == QoS::AtMostOnce { 0 } else { next_id() },
                            payload: Bytes::from(reply),
                            ..Publish::default()
                        };
                        roost_mqtt::codec::encode(&Packet::Publish(p), version, &mut wbuf)?;
                        stats.replies_out.fetch_add(1, Relaxed);
                    }
                    // PUBACK, PINGRESP: nothing to do; the simulator does not retransmit.
                }
                if rbuf.is_empty() {
                    rbuf = BytesMut::new(); // idle devices hold no read buffer
                }
            }
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
    }
    let mut buf = BytesMut::new();
    roost_mqtt::codec::encode(&Packet::Disconnect(Disconnect::default()), version, &mut buf)?;
    let _ = stream.write_all(&buf).await;
    Ok(())
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}
