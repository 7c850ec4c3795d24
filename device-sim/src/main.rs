//! `roost-sim`: simulated devices and benchmarks for Roost (see the crate docs in `lib.rs`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use roost_sim::bench::conn::ConnConfig;
use roost_sim::bench::{FlowConfig, Shape, parse_duration};
use roost_sim::client::{ConnectOptions, parse_qos, parse_version};
use roost_sim::compare::{self, Brokers, Limits, Scenario};
use roost_sim::devices::{self, DeviceSettings};
use roost_sim::payload::DEFAULT_TEMPLATE;

mod udp_cli;

use udp_cli::{CoapArgs, CodecArgs, LorawanCmd, MqttSnArgs, run_coap, run_codec, run_lorawan, run_mqttsn};

/// Longest run any one command accepts.
const MAX_DURATION: Duration = Duration::from_secs(3600);

#[derive(Parser)]
#[command(name = "roost-sim", version, about = "Simulated devices and benchmarks for Roost and other MQTT brokers")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// N simulated MQTT devices: telemetry on devices/{id}/telemetry, commands on
    /// devices/{id}/command answered on devices/{id}/reply.
    Mqtt(MqttArgs),
    /// N simulated MQTT-SN devices over UDP: connect, REGISTER `{prefix}/{n}`, publish every
    /// period (QoS -1, 0, 1 or 2), optionally sleeping between publishes.
    MqttSn(MqttSnArgs),
    /// N simulated CoAP devices over UDP or DTLS (--dtls-psk): each observes
    /// `{prefix}/{n}/command` and PUTs to `/ps/{prefix}/{n}/telemetry` every period (0s: back
    /// to back, for requests/s).
    Coap(CoapArgs),
    /// N simulated LwM2M clients over UDP: Register with objects 1, 3 and 3303, Updates,
    /// answers to reads/writes/executes/observes, notifications, optionally queue mode.
    Lwm2m(roost_sim::lwm2m::Lwm2mArgs),
    /// N simulated sensors of the shipped `tlv-sensor` custom codec over UDP: reports (every
    /// second one confirmable, so acknowledged by the gateway), and commands answered.
    Codec(CodecArgs),
    /// Simulated Semtech UDP packet forwarders carrying simulated LoRaWAN devices (ABP and
    /// OTAA), against Roost's network server; `lorawan config` prints the device registry.
    #[command(subcommand)]
    Lorawan(LorawanCmd),
    /// One benchmark scenario against a running broker.
    Bench {
        /// Print the report as one JSON object.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        scenario: BenchCmd,
    },
    /// Start Roost and mosquitto side by side, run the same scenario against each, print a table.
    Compare {
        #[arg(long, global = true)]
        json: bool,
        /// The roost binary (default: `roost` next to this binary).
        #[arg(long, global = true)]
        roost_bin: Option<PathBuf>,
        #[arg(long, global = true, default_value = "/usr/sbin/mosquitto")]
        mosquitto_bin: PathBuf,
        /// Compare against this second Roost binary instead of mosquitto (e.g. an older
        /// commit's build, for a same-run before/after table).
        #[arg(long, global = true)]
        reference_roost_bin: Option<PathBuf>,
        /// A TOML file appended to the config of the Roost under test only (not the
        /// reference's), e.g. `[[rule]]` tables to measure what a hook costs.
        #[arg(long, global = true)]
        roost_extra_config: Option<PathBuf>,
        /// In-flight QoS 1/2 messages per session, for both brokers.
        #[arg(long, global = true, default_value_t = 32)]
        max_inflight: u32,
        /// Queued messages per session, for both brokers.
        #[arg(long, global = true, default_value_t = 1000)]
        max_queued: u32,
        #[command(subcommand)]
        scenario: CompareCmd,
    },
}

#[derive(Subcommand, Clone)]
enum BenchCmd {
    /// Open N idle connections at a rate and hold them.
    Conn(ConnArgs),
    /// P publishers -> 1 subscriber on a wildcard.
    FanIn(FlowArgs),
    /// 1 publisher -> S subscribers on one topic.
    FanOut(FlowArgs),
    /// P publisher/subscriber pairs on distinct topics.
    Pairs(FlowArgs),
    /// Fan-in with the offered rate stepped up until loss, duplicates or p99 > 50 ms.
    Step(StepArgs),
    /// LwM2M registrations/s of N simulated clients, then read commands' round trip through
    /// MQTT (`lwm2m/{ep}/dn/dm` -> `lwm2m/{ep}/up/resp`). Roost only, not in `compare`.
    Lwm2m(roost_sim::lwm2m::Lwm2mBenchArgs),
}

#[derive(Subcommand, Clone)]
enum CompareCmd {
    #[command(flatten)]
    One(BenchCmd),
    /// The five targets in one run: QoS 0 fan-in 100->1, QoS 1 fan-in highest
    /// zero-loss rate, QoS 0 fan-out 1->1000, QoS 1 fan-in latency at 20,000 msg/s,
    /// 15,000 idle connections.
    Targets {
        /// Duration of each flow run (each step of the stepped run too).
        #[arg(long, value_parser = parse_duration, default_value = "10s")]
        duration: Duration,
        #[arg(long, default_value_t = 15_000)]
        connections: u32,
        #[arg(long, default_value = "10000,20000,30000,40000,50000,60000,80000,100000")]
        rates: String,
    },
}

#[derive(Args, Clone)]
struct MqttArgs {
    #[arg(long, default_value = "127.0.0.1:1883")]
    target: String,
    #[arg(long, default_value_t = 10)]
    devices: u32,
    #[arg(long, default_value_t = 1)]
    first_id: u32,
    /// Telemetry messages per second per device, e.g. "1", "0.2" or "5/s" (0: none).
    #[arg(long, default_value = "1")]
    rate: String,
    /// Telemetry template; placeholders {id} {seq} {ts} {temp} {humidity} {battery} {rand}.
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    payload: String,
    /// New connections per second.
    #[arg(long, default_value_t = 500.0)]
    ramp: f64,
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    duration: Duration,
    #[arg(long, default_value_t = 0)]
    qos: u8,
    #[arg(long, default_value = "3.1.1")]
    mqtt_version: String,
    /// Persistent sessions (clean session / clean start off; v5 session expiry 1 hour).
    #[arg(long)]
    persistent: bool,
    #[arg(long, default_value_t = 60)]
    keep_alive: u16,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// MQTT over TLS (not built yet: Roost has no TLS listener yet either).
    #[arg(long)]
    tls: bool,
    #[arg(long, default_value = "roost-sim-")]
    client_id_prefix: String,
}

#[derive(Args, Clone)]
struct FlowArgs {
    #[arg(long, default_value = "127.0.0.1:1883")]
    target: String,
    #[arg(long, default_value_t = 100)]
    publishers: u32,
    #[arg(long, default_value_t = 100)]
    subscribers: u32,
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Payload bytes (at least 20: publisher, sequence number, timestamp).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Messages per second per publisher, or "unlimited".
    #[arg(long, default_value = "unlimited")]
    rate: String,
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    duration: Duration,
    /// Most messages per publisher.
    #[arg(long)]
    count: Option<u64>,
    /// QoS 1 messages each publisher keeps in flight.
    #[arg(long, default_value_t = 32)]
    window: usize,
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    drain: Duration,
    #[arg(long, default_value = "3.1.1")]
    mqtt_version: String,
    /// Subscribers keep their session (clean start off), so a broker with a store writes
    /// every message to them through it.
    #[arg(long)]
    persistent_subscribers: bool,
    /// Subscribers connect here instead of --target (comma-separated: round robin), e.g.
    /// another node of a cluster.
    #[arg(long, value_delimiter = ',')]
    sub_target: Vec<String>,
    /// Wait after the subscriptions before publishing (default 1s with --sub-target, so a
    /// cluster's routes reach the publishers' node; else 0).
    #[arg(long, value_parser = parse_duration)]
    settle: Option<Duration>,
}

#[derive(Args, Clone)]
struct StepArgs {
    #[command(flatten)]
    flow: FlowArgs,
    /// Total offered rates to step through, msg/s.
    #[arg(long, default_value = "10000,20000,30000,40000,50000,60000,80000,100000")]
    rates: String,
}

#[derive(Args, Clone)]
struct ConnArgs {
    #[arg(long, default_value = "127.0.0.1:1883")]
    target: String,
    #[arg(long, default_value_t = 1000)]
    connections: u32,
    /// New connections per second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    hold: Duration,
    /// The broker's pid, to read its resident memory before and after.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value = "3.1.1")]
    mqtt_version: String,
}

fn run_id() -> String {
    format!("{:x}", rand::random::<u32>())
}

fn parse_rate(s: &str) -> anyhow::Result<Option<f64>> {
    let s = s.trim().trim_end_matches("/s");
    if s == "unlimited" {
        return Ok(None);
    }
    let r: f64 = s.parse().map_err(|_| anyhow::anyhow!("bad rate {s:?}"))?;
    if r.is_nan() || r <= 0.0 {
        bail!("rate must be more than 0 (or \"unlimited\")");
    }
    Ok(Some(r))
}

fn bounded(d: Duration) -> anyhow::Result<Duration> {
    if d > MAX_DURATION {
        bail!("duration {d:?} is over the bound of {MAX_DURATION:?}");
    }
    Ok(d)
}

impl FlowArgs {
    fn config(&self, shape: Shape) -> anyhow::Result<FlowConfig> {
        Ok(FlowConfig {
            target: self.target.clone(),
            shape,
            publishers: self.publishers,
            subscribers: self.subscribers,
            qos: parse_qos(self.qos)?,
            version: parse_version(&self.mqtt_version)?,
            payload: self.payload,
            rate: parse_rate(&self.rate)?,
            duration: bounded(self.duration)?,
            count: self.count,
            window: self.window.max(1),
            drain: bounded(self.drain)?,
            run_id: run_id(),
            persistent_subscribers: self.persistent_subscribers,
            sub_targets: self.sub_target.clone(),
            settle: bounded(self.settle.unwrap_or(if self.sub_target.is_empty() {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            }))?,
        })
    }
}

fn parse_rates(s: &str) -> anyhow::Result<Vec<f64>> {
    s.split(',').map(|r| r.trim().parse::<f64>().map_err(|_| anyhow::anyhow!("bad rate {r:?}"))).collect()
}

impl BenchCmd {
    fn scenario(&self) -> anyhow::Result<Scenario> {
        Ok(match self {
            BenchCmd::FanIn(a) => Scenario::Flow(a.config(Shape::FanIn)?),
            BenchCmd::FanOut(a) => Scenario::Flow(a.config(Shape::FanOut)?),
            BenchCmd::Pairs(a) => Scenario::Flow(a.config(Shape::Pairs)?),
            BenchCmd::Step(a) => Scenario::Step(a.flow.config(Shape::FanIn)?, parse_rates(&a.rates)?),
            BenchCmd::Conn(a) => Scenario::Conn(ConnConfig {
                target: a.target.clone(),
                connections: a.connections,
                rate: a.rate,
                hold: bounded(a.hold)?,
                pid: a.pid,
                version: parse_version(&a.mqtt_version)?,
                run_id: run_id(),
            }),
            BenchCmd::Lwm2m(_) => bail!("the lwm2m scenario runs with `roost-sim bench lwm2m`, not in compare"),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            BenchCmd::Conn(_) => "conn",
            BenchCmd::FanIn(_) => "fan-in",
            BenchCmd::FanOut(_) => "fan-out",
            BenchCmd::Pairs(_) => "pairs",
            BenchCmd::Step(_) => "step",
            BenchCmd::Lwm2m(_) => "lwm2m",
        }
    }
}

fn targets(duration: Duration, connections: u32, rates: &str) -> anyhow::Result<Vec<(String, Scenario)>> {
    let base = FlowConfig {
        target: String::new(),
        shape: Shape::FanIn,
        publishers: 100,
        subscribers: 1,
        qos: parse_qos(0)?,
        version: parse_version("3.1.1")?,
        payload: 64,
        rate: None,
        duration: bounded(duration)?,
        count: None,
        window: 32,
        drain: Duration::from_secs(3),
        run_id: run_id(),
        persistent_subscribers: false,
        sub_targets: Vec::new(),
        settle: Duration::ZERO,
    };
    let qos1 = FlowConfig { qos: parse_qos(1)?, ..base.clone() };
    Ok(vec![
        (
            "QoS 0 fan-in 100->1, 64 B, unlimited".into(),
            Scenario::Flow(FlowConfig { run_id: run_id(), ..base.clone() }),
        ),
        (
            "QoS 1 fan-in 100->1, stepped rate".into(),
            Scenario::Step(FlowConfig { run_id: run_id(), ..qos1.clone() }, parse_rates(rates)?),
        ),
        (
            "QoS 0 fan-out 1->1000, 64 B, unlimited".into(),
            Scenario::Flow(FlowConfig {
                shape: Shape::FanOut,
                publishers: 1,
                subscribers: 1000,
                run_id: run_id(),
                ..base.clone()
            }),
        ),
        (
            "QoS 1 fan-in 100->1 at 20,000 msg/s".into(),
            Scenario::Flow(FlowConfig { rate: Some(200.0), run_id: run_id(), ..qos1 }),
        ),
        (
            format!("{connections} idle connections"),
            Scenario::Conn(ConnConfig {
                target: String::new(),
                connections,
                rate: 3000.0,
                hold: Duration::from_secs(3),
                pid: None,
                version: parse_version("3.1.1")?,
                run_id: run_id(),
            }),
        ),
    ])
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Mqtt(a) => run_devices(a),
        Cmd::MqttSn(a) => run_mqttsn(a),
        Cmd::Coap(a) => run_coap(a),
        Cmd::Lwm2m(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            println!("{}", rt.block_on(roost_sim::lwm2m::run(&bounded_lwm2m(a)?))?);
            Ok(())
        }
        Cmd::Bench { json, scenario: BenchCmd::Lwm2m(a) } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = rt.block_on(roost_sim::lwm2m::bench(&a.config()))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.summary());
            }
            Ok(())
        }
        Cmd::Codec(a) => run_codec(a),
        Cmd::Lorawan(c) => run_lorawan(c),
        Cmd::Bench { json, scenario } => {
            let outcome = compare::run_scenario(&scenario.scenario()?, &target_of(&scenario), None, "")?;
            if json {
                println!("{}", serde_json::to_string(&outcome)?);
            } else {
                println!("{}", outcome.summary());
            }
            Ok(())
        }
        Cmd::Compare {
            json,
            roost_bin,
            mosquitto_bin,
            reference_roost_bin,
            roost_extra_config,
            max_inflight,
            max_queued,
            scenario,
        } => {
            let roost_extra_config = match roost_extra_config {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("--roost-extra-config {}: {e}", path.display()))?,
                None => String::new(),
            };
            let brokers = Brokers {
                roost_bin: roost_bin.unwrap_or_else(compare::default_roost_bin),
                mosquitto_bin,
                limits: Limits { max_inflight, max_queued },
                reference_roost_bin,
                roost_extra_config: format!("\n{roost_extra_config}"),
            };
            let scenarios = match &scenario {
                CompareCmd::One(b) => vec![(b.name().to_string(), b.scenario()?)],
                CompareCmd::Targets { duration, connections, rates } => targets(*duration, *connections, rates)?,
            };
            let c = compare::compare(&brokers, &scenarios)?;
            if json {
                println!("{}", serde_json::to_string(&c)?);
            } else {
                println!("limits for both brokers: max_inflight {max_inflight}, max_queued_messages {max_queued}\n");
                print!("{}", compare::table(&c.rows, brokers.reference_name()));
            }
            Ok(())
        }
    }
}

fn bounded_lwm2m(a: roost_sim::lwm2m::Lwm2mArgs) -> anyhow::Result<roost_sim::lwm2m::Lwm2mArgs> {
    bounded(a.duration)?;
    Ok(a)
}

fn target_of(b: &BenchCmd) -> String {
    match b {
        BenchCmd::Conn(a) => a.target.clone(),
        BenchCmd::FanIn(a) | BenchCmd::FanOut(a) | BenchCmd::Pairs(a) => a.target.clone(),
        BenchCmd::Step(a) => a.flow.target.clone(),
        BenchCmd::Lwm2m(a) => a.mqtt.clone(),
    }
}

fn run_devices(a: MqttArgs) -> anyhow::Result<()> {
    if a.tls {
        bail!("--tls is not supported yet: Roost has no TLS listener yet, and the simulator has no TLS client");
    }
    let version = parse_version(&a.mqtt_version)?;
    let settings = DeviceSettings {
        target: a.target,
        devices: a.devices,
        first_id: a.first_id,
        rate: parse_rate(&a.rate)?.unwrap_or(0.0),
        template: a.payload,
        ramp: a.ramp,
        duration: bounded(a.duration)?,
        qos: parse_qos(a.qos)?,
        connect: ConnectOptions {
            version,
            clean_start: !a.persistent,
            keep_alive: a.keep_alive,
            session_expiry: (a.persistent && version.is_v5()).then_some(3600),
            username: a.username,
            password: a.password,
        },
        client_id_prefix: a.client_id_prefix,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(devices::run(settings))
}
