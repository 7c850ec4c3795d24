//! The UDP protocol subcommands of `roost-sim`: `lorawan`, `mqtt-sn`, `coap` and `codec`,
//! their arguments and the runs they start.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use roost_sim::bench::parse_duration;

use super::bounded;

#[derive(Subcommand)]
pub(crate) enum LorawanCmd {
    /// Print the `[[lorawan.device]]` blocks of the simulated fleet (append to roost.toml).
    Config {
        #[arg(long, default_value_t = 100)]
        abp: u32,
        #[arg(long, default_value_t = 0)]
        otaa: u32,
        #[arg(long, default_value = "sim")]
        application_id: String,
    },
    /// Run the fleet: joins, periodic uplinks, confirmed uplinks; report what came out on MQTT.
    Run(LorawanRunArgs),
}

#[derive(Args)]
pub(crate) struct LorawanRunArgs {
    /// Roost's packet-forwarder UDP address.
    #[arg(long, default_value = "127.0.0.1:1700")]
    target: std::net::SocketAddr,
    /// Roost's MQTT address (the application-side subscriber).
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    #[arg(long, default_value_t = 10)]
    gateways: u32,
    #[arg(long, default_value_t = 100)]
    abp: u32,
    #[arg(long, default_value_t = 0)]
    otaa: u32,
    /// Gateways hearing each uplink.
    #[arg(long, default_value_t = 1)]
    heard_by: u32,
    /// Mean time between two uplinks of one device.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    interval: Duration,
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Every n-th uplink of a device is confirmed (0: none).
    #[arg(long, default_value_t = 0)]
    confirmed_every: u32,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run_lorawan(cmd: LorawanCmd) -> anyhow::Result<()> {
    match cmd {
        LorawanCmd::Config { abp, otaa, application_id } => {
            print!("{}", roost_sim::lorawan::device_config(abp, otaa, &application_id));
            Ok(())
        }
        LorawanCmd::Run(a) => {
            bounded(a.duration + a.drain)?;
            let cfg = roost_sim::lorawan::SimConfig {
                target: a.target,
                mqtt: a.mqtt,
                gateways: a.gateways,
                abp: a.abp,
                otaa: a.otaa,
                heard_by: a.heard_by,
                interval: a.interval,
                duration: a.duration,
                confirmed_every: a.confirmed_every,
                drain: a.drain,
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let r = rt.block_on(roost_sim::lorawan::run(cfg))?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "lorawan: {} gateways, {} devices, {:.1} s: {} uplinks ({:.1}/s) in {} datagrams -> {} events, {} lost, {} duplicates; \
                     {} confirmed, {} acked; {} joins sent, {} accepted; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    r.gateways,
                    r.devices,
                    r.elapsed_s,
                    r.uplinks,
                    r.uplinks_per_s,
                    r.datagrams,
                    r.events,
                    r.lost,
                    r.duplicates,
                    r.confirmed,
                    r.acks,
                    r.joins_sent,
                    r.joins_accepted,
                    r.latency_p50_ms,
                    r.latency_p99_ms,
                    r.latency_max_ms
                );
            }
            Ok(())
        }
    }
}

#[derive(Args)]
pub(crate) struct MqttSnArgs {
    /// The gateway's MQTT-SN address.
    #[arg(long, default_value = "127.0.0.1:1884")]
    target: std::net::SocketAddr,
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Client ids are `{prefix}-{n}`, topics `{prefix}/{n}`.
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Time between two publishes of one device.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    period: Duration,
    /// Publishes per device.
    #[arg(long, default_value_t = 10)]
    publishes: u64,
    /// -1, 0, 1 or 2.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    qos: i8,
    /// For QoS -1: the predefined topic id to publish to.
    #[arg(long, default_value_t = 1)]
    predefined_topic_id: u16,
    /// Sleep this long (DISCONNECT with a duration) after each publish.
    #[arg(long, value_parser = parse_duration)]
    sleep: Option<Duration>,
    /// New devices per second while the fleet starts.
    #[arg(long, default_value_t = 2000)]
    connect_rate: u32,
    /// The gateway's MQTT address: a subscriber there on `{prefix}/#` counts the distinct
    /// messages that arrive and their delay from the device.
    #[arg(long)]
    mqtt: Option<String>,
    /// The gateway's process id: its resident memory before and once the fleet connected.
    #[arg(long)]
    roost_pid: Option<u32>,
}

#[derive(Args)]
pub(crate) struct CoapArgs {
    /// The gateway's CoAP address.
    #[arg(long, default_value = "127.0.0.1:5683")]
    target: std::net::SocketAddr,
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Client ids are `{prefix}-{n}`, topics `{prefix}/{n}/...`.
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Time between two publishes of one device; 0s: back to back.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    period: Duration,
    /// How long the fleet publishes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Do not observe a command topic.
    #[arg(long)]
    no_observe: bool,
    #[arg(long, default_value_t = 32)]
    payload_size: usize,
    /// New devices per second while the fleet starts.
    #[arg(long, default_value_t = 2000)]
    connect_rate: u32,
    /// Local IP the devices bind (one IP has ~28,000 ephemeral ports; e.g. 127.0.0.2).
    #[arg(long)]
    source: Option<std::net::IpAddr>,
    /// CoAP over DTLS with this PSK, `IDENTITY:KEY` (--target is then the gateway's
    /// dtls_bind); `{n}` in IDENTITY is the device number, e.g. `dev-{n}:secret`.
    #[arg(long, value_name = "IDENTITY:KEY")]
    dtls_psk: Option<String>,
}

pub(crate) fn run_coap(a: CoapArgs) -> anyhow::Result<()> {
    let total = bounded(a.duration)?;
    let cfg = roost_coap::sim::SimConfig {
        gateway: a.target,
        devices: a.devices,
        prefix: a.prefix,
        period: a.period,
        duration: a.duration,
        connect_rate: a.connect_rate,
        observe: !a.no_observe,
        payload_size: a.payload_size,
        source_ip: a.source,
        dtls_psk: match &a.dtls_psk {
            Some(s) => {
                let (identity, key) = s
                    .split_once(':')
                    .filter(|(i, k)| !i.is_empty() && !k.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("--dtls-psk {s:?}: expected IDENTITY:KEY"))?;
                Some(roost_coap::sim::SimPsk { identity: identity.into(), key: key.as_bytes().to_vec() })
            }
            None => None,
        },
    };
    let devices = a.devices as f64;
    let ramp = Duration::from_secs_f64(devices / f64::from(a.connect_rate.max(1)));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let stats = rt.block_on(async {
        let stats = std::sync::Arc::new(roost_coap::sim::SimStats::default());
        let run = roost_coap::sim::run_with(cfg, stats.clone());
        match tokio::time::timeout(total + ramp + Duration::from_secs(60), run).await {
            Ok(()) => Ok(stats),
            Err(_) => Err(anyhow::anyhow!("the fleet did not finish in time")),
        }
    })?;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let acked = get(&stats.acknowledged);
    println!(
        "coap: {} observing ({} failed), {} published, {} acknowledged ({:.0}/s), {} refused, {} timed out, mean rtt {:.2} ms, max rtt {:.2} ms, {} notifications",
        get(&stats.observing),
        get(&stats.observe_failed),
        get(&stats.published),
        acked,
        acked as f64 / a.duration.as_secs_f64(),
        get(&stats.refused),
        get(&stats.timed_out),
        get(&stats.rtt_sum_us) as f64 / acked.max(1) as f64 / 1000.0,
        get(&stats.rtt_max_us) as f64 / 1000.0,
        get(&stats.notifications),
    );
    if a.dtls_psk.is_some() {
        let ok = get(&stats.handshakes_ok);
        let done_s = get(&stats.handshakes_done_at_us) as f64 / 1e6;
        println!(
            "dtls: {} handshakes ({} failed), mean {:.2} ms, max {:.2} ms, all done {:.2} s after launch ({:.0}/s)",
            ok,
            get(&stats.handshakes_failed),
            get(&stats.handshake_sum_us) as f64 / ok.max(1) as f64 / 1000.0,
            get(&stats.handshake_max_us) as f64 / 1000.0,
            done_s,
            ok as f64 / done_s.max(1e-6),
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct CodecArgs {
    /// The gateway's `tlv-sensor` [[codec]] listener (UDP).
    #[arg(long)]
    target: std::net::SocketAddr,
    #[arg(long, default_value_t = 100)]
    devices: u32,
    /// Reports per device.
    #[arg(long, default_value_t = 10)]
    reports: u32,
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
}

pub(crate) fn run_mqttsn(a: MqttSnArgs) -> anyhow::Result<()> {
    use roost_mqttsn::codec::SnQos;
    let qos = match a.qos {
        -1 => SnQos::MinusOne,
        0 => SnQos::AtMostOnce,
        1 => SnQos::AtLeastOnce,
        2 => SnQos::ExactlyOnce,
        q => bail!("--qos {q}: MQTT-SN QoS is -1, 0, 1 or 2"),
    };
    let total = bounded(a.period * u32::try_from(a.publishes).unwrap_or(u32::MAX))?;
    let cfg = roost_mqttsn::sim::SimConfig {
        gateway: a.target,
        devices: a.devices,
        prefix: a.prefix.clone(),
        period: a.period,
        publishes: a.publishes,
        qos,
        predefined_topic_id: a.predefined_topic_id,
        sleep: a.sleep,
        connect_rate: a.connect_rate,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = std::time::Instant::now();
    let (stats, collected, rss) = rt.block_on(async {
        let collected = match &a.mqtt {
            Some(mqtt) => Some(roost_sim::mqttsn::collect(mqtt, &a.prefix).await?),
            None => None,
        };
        let rss_before = a.roost_pid.and_then(roost_sim::mqttsn::rss_kib);
        let stats = std::sync::Arc::new(roost_mqttsn::sim::SimStats::default());
        let mut run = std::pin::pin!(roost_mqttsn::sim::run_with(cfg, stats.clone()));
        let rss_connected = match tokio::time::timeout(total + Duration::from_secs(60), async {
            tokio::select! {
                connected = connected_rss(&stats, a.devices, a.roost_pid) => {
                    (&mut run).await;
                    connected
                }
                () = &mut run => None,
            }
        })
        .await
        {
            Ok(rss) => rss,
            Err(_) => bail!("the fleet did not finish in time"),
        };
        if let Some(c) = &collected {
            await_collected(c, stats.published.load(std::sync::atomic::Ordering::Relaxed)).await;
        }
        Ok((stats, collected, rss_before.zip(rss_connected)))
    })?;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "mqtt-sn: {} connected ({} failed), {} published, {} acknowledged, {} rejected, {} timed out, {} retransmissions, max ack rtt {} ms",
        get(&stats.connected),
        get(&stats.connect_failed),
        get(&stats.published),
        get(&stats.acknowledged),
        get(&stats.rejected),
        get(&stats.timed_out),
        get(&stats.retransmissions),
        get(&stats.ack_rtt_max_us) / 1000,
    );
    if let Some(mean) = get(&stats.ack_rtt_sum_us).checked_div(get(&stats.acknowledged)) {
        println!("mqtt-sn: ack rtt mean {mean} us, {:.1} s run", started.elapsed().as_secs_f64());
    }
    if let Some(c) = collected {
        let q = |q| c.latency_quantile(q).map_or("-".to_string(), |us| us.to_string());
        let got = get(&c.distinct);
        println!(
            "mqtt subscriber: {got} distinct received; device -> subscriber us p50 {} p99 {} max {}",
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }
    if let Some((before, connected)) = rss {
        let per_client = connected.saturating_sub(before) * 1024 / a.devices.max(1) as u64;
        println!("roost rss: {before} KiB before, {connected} KiB connected, {per_client} bytes per client");
    }
    Ok(())
}

/// The gateway's resident memory once every device is connected (and half a second for it to
/// settle), if `pid` is given; pending until then (the caller races it with the fleet).
async fn connected_rss(stats: &roost_mqttsn::sim::SimStats, devices: usize, pid: Option<u32>) -> Option<u64> {
    let pid = pid?;
    loop {
        if stats.connected.load(std::sync::atomic::Ordering::Relaxed) >= devices as u64 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return roost_sim::mqttsn::rss_kib(pid);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits up to 10 s for the subscriber to have seen `expected` messages.
async fn await_collected(c: &roost_sim::mqttsn::Collected, expected: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.distinct.load(std::sync::atomic::Ordering::Relaxed) < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn run_codec(a: CodecArgs) -> anyhow::Result<()> {
    bounded(a.interval * a.reports)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = rt.block_on(roost_codec::sim::run(a.target, a.devices, a.reports, a.interval))?;
    println!(
        "codec (tlv-sensor): {} reports sent, {} acknowledged, {} commands received",
        report.reports_sent, report.acks_received, report.commands_received
    );
    Ok(())
}
