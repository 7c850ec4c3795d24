//! `roost-sim bench lwm2m`: registrations/s of N simulated LwM2M clients
//! ([`crate::lwm2m_client`]), then the round trip of read commands through MQTT with the
//! EMQX-compatible JSON: `{"reqID": k, "msgType": "read", "data": {"path": ..}}` published
//! on `lwm2m/{ep}/dn/dm`, timed until the result with that reqID arrives on
//! `lwm2m/{ep}/up/resp`. One command at a time, each bounded by a timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::lwm2m_client::{CancellationToken, SimConfig, SimStats, run_until};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use roost_mqtt::codec::{Packet, Publish, QoS};
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;

use crate::bench::Latency;
use crate::client::{Client, ConnectOptions, read_packet};

#[derive(Debug, Clone)]
pub struct Lwm2mBench {
    /// The gateway's LwM2M (CoAP) address.
    pub server: SocketAddr,
    /// The broker's MQTT address (host:port).
    pub mqtt: String,
    pub devices: usize,
    pub connect_rate: u32,
    pub prefix: String,
    /// Read commands to time (0: registrations only).
    pub commands: u64,
    pub path: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lwm2mReport {
    pub scenario: &'static str,
    pub devices: usize,
    pub registered: u64,
    pub register_failed: u64,
    pub registrations_per_s: f64,
    pub commands: u64,
    pub answered: u64,
    pub timed_out: u64,
    pub latency: Latency,
}

impl Lwm2mReport {
    pub fn summary(&self) -> String {
        let l = &self.latency;
        format!(
            "lwm2m: {}/{} registered ({} failed) at {:.0} registrations/s; {} read commands: {} answered, {} timed out; round trip p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.registered,
            self.devices,
            self.register_failed,
            self.registrations_per_s,
            self.commands,
            self.answered,
            self.timed_out,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.max_ms
        )
    }
}

/// Registers the fleet, times the commands, then de-registers the fleet.
pub async fn bench(b: &Lwm2mBench) -> anyhow::Result<Lwm2mReport> {
    let mqtt = if b.commands > 0 {
        let mut c = Client::connect(&b.mqtt, &format!("{}-bench", b.prefix), &ConnectOptions::default()).await?;
        c.subscribe("lwm2m/+/up/resp", QoS::AtMostOnce).await?;
        Some(c)
    } else {
        None
    };
    let cfg = SimConfig {
        server: b.server,
        devices: b.devices,
        prefix: b.prefix.clone(),
        connect_rate: b.connect_rate,
        duration: Duration::from_secs(24 * 3600),
        ..SimConfig::default()
    };
    let (stats, stop) = (Arc::new(SimStats::default()), CancellationToken::new());
    let fleet = tokio::spawn(run_until(cfg, stats.clone(), stop.clone()));
    let ramp = Duration::from_secs_f64(b.devices as f64 / f64::from(b.connect_rate.max(1)));
    let deadline = Instant::now() + ramp + Duration::from_secs(30);
    let settled = |s: &SimStats| s.registered.load(Relaxed) + s.register_failed.load(Relaxed) >= b.devices as u64;
    while !settled(&stats) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let registered = stats.registered.load(Relaxed);
    let took = Duration::from_micros(stats.registered_by_us.load(Relaxed)).as_secs_f64();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut answered, mut timed_out) = (0, 0);
    if let (Some(client), true) = (mqtt, registered > 0) {
        let (mut stream, mut rbuf, version) = client.into_parts();
        for k in 0..b.commands {
            let ep = format!("{}-{}", b.prefix, k as usize % b.devices.max(1));
            let cmd = serde_json::json!({"reqID": k, "msgType": "read", "data": {"path": b.path}});
            let publish = Publish {
                qos: QoS::AtMostOnce,
                topic: format!("lwm2m/{ep}/dn/dm"),
                payload: Bytes::from(cmd.to_string()),
                ..Publish::default()
            };
            let mut wbuf = BytesMut::new();
            roost_mqtt::codec::encode(&Packet::Publish(publish), version, &mut wbuf)?;
            let sent = Instant::now();
            stream.write_all(&wbuf).await?;
            let want = format!("lwm2m/{ep}/up/resp");
            let wait = async {
                while let Some(p) = read_packet(&mut stream, &mut rbuf, version).await? {
                    if let Packet::Publish(p) = p
                        && p.topic == want
                        && is_result(&p.payload, k)
                    {
                        return anyhow::Ok(true);
                    }
                }
                anyhow::Ok(false)
            };
            match tokio::time::timeout(b.timeout, wait).await {
                Ok(Ok(true)) => {
                    answered += 1;
                    hist.saturating_record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                Ok(Ok(false)) => anyhow::bail!("the broker closed the connection"),
                Ok(Err(e)) => return Err(e),
                Err(_) => timed_out += 1,
            }
        }
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), fleet).await;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Lwm2mReport {
        scenario: "lwm2m",
        devices: b.devices,
        registered,
        register_failed: stats.register_failed.load(Relaxed),
        registrations_per_s: if took > 0.0 { registered as f64 / took } else { 0.0 },
        commands: b.commands,
        answered,
        timed_out,
        latency: Latency {
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: hist.max() as f64 / 1000.0,
        },
    })
}

/// Whether `payload` is the result of command `req_id` (not a register/update event).
fn is_result(payload: &[u8], req_id: u64) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else { return false };
    v.get("reqID").and_then(serde_json::Value::as_u64) == Some(req_id)
        && v.get("msgType").and_then(|m| m.as_str()) != Some("register")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_matched_by_req_id() {
        let r = br#"{"reqID": 3, "msgType": "read", "data": {"reqPath": "/3/0/0", "code": "2.05", "codeMsg": "content", "content": [{"path": "/3/0/0", "value": "Roost"}]}}"#;
        assert!(is_result(r, 3));
        assert!(!is_result(r, 4));
        assert!(!is_result(br#"{"msgType": "register", "data": {"ep": "sim-0"}}"#, 0));
        assert!(!is_result(b"not json", 0));
    }
}

/// `roost-sim lwm2m`: N simulated LwM2M clients against a server.
#[derive(clap::Args, Clone)]
pub struct Lwm2mArgs {
    /// The LwM2M server (gateway) address.
    #[arg(long, default_value = "127.0.0.1:5783")]
    pub target: SocketAddr,
    #[arg(long, default_value_t = 10)]
    pub devices: usize,
    /// Endpoint names are `{prefix}-{n}`.
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// New devices per second while the fleet starts.
    #[arg(long, default_value_t = 500)]
    pub connect_rate: u32,
    /// Registration lifetime (an Update goes out at 3/4 of it).
    #[arg(long, default_value = "300s", value_parser = crate::bench::parse_duration)]
    pub lifetime: Duration,
    /// Notification period of an observation without pmax.
    #[arg(long, default_value = "10s", value_parser = crate::bench::parse_duration)]
    pub report_period: Duration,
    /// Binding UQ: after sending, reachable for --queue-window, then asleep until the next Update.
    #[arg(long)]
    pub queue_mode: bool,
    #[arg(long, default_value = "20s", value_parser = crate::bench::parse_duration)]
    pub queue_window: Duration,
    /// How long each device stays registered before it de-registers.
    #[arg(long, default_value = "30s", value_parser = crate::bench::parse_duration)]
    pub duration: Duration,
    /// Local IP the devices bind (one IP has ~28,000 ephemeral ports; e.g. 127.0.0.2).
    #[arg(long)]
    pub source: Option<std::net::IpAddr>,
    /// Also report the temperature every --report-period with the LwM2M 1.1 Send operation
    /// (POST /dp, SenML CBOR), published by the gateway on the notify topic.
    #[arg(long)]
    pub send: bool,
    /// Each device's CoAP buffer in bytes (16 to 1024, a power of two): larger requests
    /// must come in Block1 blocks (else 4.13 asking for this size), larger responses go in
    /// Block2 blocks of it.
    #[arg(long, default_value_t = 1024, value_parser = block_size)]
    pub block_size: usize,
}

fn block_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (16..=1024).contains(&n) && n.is_power_of_two() => Ok(n),
        _ => Err(format!("{s} is not a power of two from 16 to 1024")),
    }
}

/// Runs the fleet and prints its counters.
pub async fn run(a: &Lwm2mArgs) -> anyhow::Result<String> {
    let cfg = SimConfig {
        server: a.target,
        devices: a.devices,
        prefix: a.prefix.clone(),
        lifetime: a.lifetime,
        report_period: a.report_period,
        queue_mode: a.queue_mode,
        queue_window: a.queue_window,
        duration: a.duration,
        connect_rate: a.connect_rate,
        source_ip: a.source,
        send: a.send,
        block_size: a.block_size,
    };
    let ramp = Duration::from_secs_f64(a.devices as f64 / f64::from(a.connect_rate.max(1)));
    let stats = Arc::new(SimStats::default());
    let bound = a.duration + ramp + Duration::from_secs(60);
    tokio::time::timeout(bound, crate::lwm2m_client::run_with(cfg, stats.clone()))
        .await
        .map_err(|_| anyhow::anyhow!("the fleet did not finish in time"))?;
    let g = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    Ok(format!(
        "lwm2m: {} registrations ok, {} failed; {} updates ({} failed); {} requests answered; {} notifications sent; {} Send reports ({} refused); {} de-registered; {} datagrams ignored",
        g(&stats.registered),
        g(&stats.register_failed),
        g(&stats.updates),
        g(&stats.update_failed),
        g(&stats.answered),
        g(&stats.notifications),
        g(&stats.sent),
        g(&stats.send_failed),
        g(&stats.deregistered),
        g(&stats.ignored),
    ))
}

/// `roost-sim bench lwm2m`.
#[derive(clap::Args, Clone)]
pub struct Lwm2mBenchArgs {
    /// The gateway's LwM2M (CoAP) address.
    #[arg(long, default_value = "127.0.0.1:5783")]
    pub target: SocketAddr,
    /// The gateway's MQTT address, for the command round trips.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt: String,
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// New devices per second: the registrations/s measured cannot exceed it, so set it
    /// above what the server takes to measure the server.
    #[arg(long, default_value_t = 1000)]
    pub connect_rate: u32,
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Read commands to time, one at a time, round robin over the devices (0: registrations only).
    #[arg(long, default_value_t = 100)]
    pub commands: u64,
    /// The path each command reads.
    #[arg(long, default_value = "/3303/0/5700")]
    pub path: String,
    /// Longest wait for one command's result.
    #[arg(long, default_value = "5s", value_parser = crate::bench::parse_duration)]
    pub timeout: Duration,
}

impl Lwm2mBenchArgs {
    pub fn config(&self) -> Lwm2mBench {
        Lwm2mBench {
            server: self.target,
            mqtt: self.mqtt.clone(),
            devices: self.devices,
            connect_rate: self.connect_rate,
            prefix: self.prefix.clone(),
            commands: self.commands,
            path: self.path.clone(),
            timeout: self.timeout,
        }
    }
}
