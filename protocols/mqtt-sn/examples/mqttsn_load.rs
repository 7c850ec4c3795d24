//! Load run: N simulated MQTT-SN devices against a running Roost (`roost --config FILE`),
//! each publishing once per period, with an MQTT subscriber counting what arrives.
//!
//! ```sh
//! cargo run --release --example mqttsn_load -p roost-mqttsn -- \
//!     --devices 10000 --publishes 30 --qos 1 --prefix a [--roost-pid PID] [--mqtt 127.0.0.1:1883]
//! ```
//!
//! Several can run side by side (distinct `--prefix`) when one process cannot open enough
//! sockets. It prints the fleet's counters, what the subscriber received, and with
//! `--roost-pid` the gateway's resident memory before and after the fleet connected.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use roost_mqttsn::codec::SnQos;
use roost_mqttsn::sim::{SimConfig, SimStats, run_with, sent_micros, unix_micros};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let devices: usize = arg("--devices").map_or(1000, |v| v.parse().unwrap());
    let publishes: u64 = arg("--publishes").map_or(10, |v| v.parse().unwrap());
    let prefix = arg("--prefix").unwrap_or_else(|| "load".into());
    let qos = match arg("--qos").as_deref() {
        Some("0") => SnQos::AtMostOnce,
        Some("2") => SnQos::ExactlyOnce,
        Some("-1") => SnQos::MinusOne,
        _ => SnQos::AtLeastOnce,
    };
    let gateway = arg("--gateway").map_or("127.0.0.1:1884".parse().unwrap(), |v| v.parse().unwrap());
    let mqtt: std::net::SocketAddr = arg("--mqtt").map_or("127.0.0.1:1883".parse().unwrap(), |v| v.parse().unwrap());
    let pid = arg("--roost-pid");
    let sleep = arg("--sleep").map(|s| Duration::from_secs(s.parse().unwrap()));

    // The subscriber counts distinct payloads ("{prefix}-{n} {seq}").
    let mut options = MqttOptions::new(format!("{prefix}-collector"), mqtt.ip().to_string(), mqtt.port());
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 100_000);
    client.subscribe(format!("{prefix}/#"), QoS::AtMostOnce).await.unwrap();
    let seen = Arc::new(parking_lot_free::Counter::default());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let (seen2, lat2) = (seen.clone(), latencies.clone());
    tokio::spawn(async move {
        let mut distinct = HashSet::new();
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some(sent) = sent_micros(&p.payload) {
                        lat2.lock().unwrap().push(unix_micros().saturating_sub(sent));
                    }
                    if distinct.insert(p.payload) {
                        seen2.0.fetch_add(1, Relaxed);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("subscriber: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rss_before = pid.as_deref().and_then(rss_kib);
    let started = std::time::Instant::now();
    // Devices publish for `publishes` periods of 1 s after the connect ramp.
    let publish_window = Duration::from_secs(publishes.max(1));
    let stats = Arc::new(SimStats::default());
    let cfg = SimConfig { gateway, devices, publishes, qos, sleep, prefix: prefix.clone(), ..SimConfig::default() };
    let run = tokio::spawn(run_with(cfg, stats.clone()));
    // Memory once every device is connected and registered (before the first publish ends).
    let mut rss_connected = None;
    while !run.is_finished() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if rss_connected.is_none() && stats.connected.load(Relaxed) >= devices as u64 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_connected = pid.as_deref().and_then(rss_kib);
        }
    }
    run.await.unwrap();
    let expected = stats.published.load(Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.0.load(Relaxed) < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked = stats.acknowledged.load(Relaxed);
    println!("devices            {devices}");
    println!("connected          {}", stats.connected.load(Relaxed));
    println!("connect_failed     {}", stats.connect_failed.load(Relaxed));
    println!("finished           {}", stats.finished.load(Relaxed));
    println!("published          {expected}");
    println!("acknowledged       {acked}");
    println!("timed_out          {}", stats.timed_out.load(Relaxed));
    println!("rejected           {}", stats.rejected.load(Relaxed));
    println!("retransmissions    {}", stats.retransmissions.load(Relaxed));
    if let Some(mean) = stats.ack_rtt_sum_us.load(Relaxed).checked_div(acked) {
        println!("ack_rtt_mean_us    {mean}");
        println!("ack_rtt_max_us     {}", stats.ack_rtt_max_us.load(Relaxed));
    }
    println!("subscriber_got     {}", seen.0.load(Relaxed));
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    if !lat.is_empty() {
        let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
        println!("latency_to_mqtt_us p50 {} p99 {} max {}", pct(0.5), pct(0.99), pct(1.0));
    }
    println!("run_seconds        {:.1}", started.elapsed().as_secs_f64());
    println!("publishes_per_s    {:.0}", expected as f64 / publish_window.as_secs_f64());
    if let (Some(b), Some(a)) = (rss_before, rss_connected) {
        println!("roost_rss_before_kib     {b}");
        println!("roost_rss_connected_kib  {a}");
        println!("bytes_per_client         {}", (a.saturating_sub(b)) * 1024 / devices.max(1) as u64);
    }
}

mod parking_lot_free {
    #[derive(Default)]
    pub struct Counter(pub std::sync::atomic::AtomicU64);
}
