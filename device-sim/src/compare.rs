//! `roost-sim compare`: Roost and a reference broker (Debian's mosquitto) side by side.
//!
//! For each scenario, a fresh Roost (the release binary) and then a fresh mosquitto are
//! started on free loopback ports with the same in-flight and queue limits, the same
//! scenario runs against each in turn, and the figures go into one table with the ratio
//! Roost / mosquitto. The `targets` preset runs the issue's five targets in one go.
//!
//! With `--reference-roost-bin` the reference is another Roost build instead of mosquitto
//! (same-run before/after comparisons of two commits), and `--roost-extra-config` appends
//! TOML to the first Roost's config only (e.g. `[[rule]]` tables, to price a hook).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::bench::conn::{self, ConnConfig, ConnReport};
use crate::bench::{FlowConfig, FlowReport, StepReport, flow, run_steps};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Roost,
    Mosquitto,
    /// A second Roost build (`--reference-roost-bin`) in mosquitto's place.
    RoostReference,
}

/// Limits both brokers get.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    pub max_inflight: u32,
    pub max_queued: u32,
}

#[derive(Debug, Clone)]
pub struct Brokers {
    pub roost_bin: PathBuf,
    pub mosquitto_bin: PathBuf,
    pub limits: Limits,
    /// Compare against this Roost binary instead of mosquitto.
    pub reference_roost_bin: Option<PathBuf>,
    /// TOML appended to the config of the Roost under test (not the reference's).
    pub roost_extra_config: String,
}

impl Brokers {
    /// The broker each scenario is compared against.
    pub fn reference(&self) -> Kind {
        if self.reference_roost_bin.is_some() { Kind::RoostReference } else { Kind::Mosquitto }
    }

    /// The reference's column heading in the table.
    pub fn reference_name(&self) -> &'static str {
        match self.reference() {
            Kind::RoostReference => "reference Roost",
            _ => "mosquitto",
        }
    }
}

/// A broker process on a loopback port; killed on drop.
pub struct BrokerProcess {
    pub kind: Kind,
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl BrokerProcess {
    pub fn start(kind: Kind, brokers: &Brokers) -> anyhow::Result<BrokerProcess> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let Limits { max_inflight, max_queued } = brokers.limits;
        let roost_toml = dir.path().join("roost.toml");
        let (bin, config_path, args): (&Path, PathBuf, Vec<&str>) = match kind {
            Kind::Roost => (&brokers.roost_bin, roost_toml, vec!["--config"]),
            Kind::RoostReference => {
                let bin = brokers.reference_roost_bin.as_deref().context("no reference roost binary")?;
                (bin, roost_toml, vec!["--config"])
            }
            Kind::Mosquitto => (&brokers.mosquitto_bin, dir.path().join("mosquitto.conf"), vec!["-c"]),
        };
        let config = match kind {
            Kind::Roost => format!("{}{}", roost_config(port, brokers.limits), brokers.roost_extra_config),
            Kind::RoostReference => roost_config(port, brokers.limits),
            Kind::Mosquitto => format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_inflight_messages {max_inflight}\nmax_queued_messages {max_queued}\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n"
            ),
        };
        std::fs::write(&config_path, config)?;
        let child = Command::new(bin)
            .args(args)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut p = BrokerProcess { kind, port, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if Instant::now() > deadline {
                bail!("{kind:?} did not listen on port {port} within 10s");
            }
            if let Some(status) = p.child.try_wait()? {
                bail!("{kind:?} exited at start-up: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(p)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Roost's config in `compare`: MQTT only, the shared limits, in-memory storage.
fn roost_config(port: u16, limits: Limits) -> String {
    let Limits { max_inflight, max_queued } = limits;
    format!(
        "[log]\nlevel = \"warn\"\n[mqtt]\nbind = [\"127.0.0.1:{port}\"]\n\
         [limits]\nmax_inflight = {max_inflight}\nmax_queued_messages = {max_queued}\n\
         [mqttsn]\nbind = []\n[coap]\nbind = []\n[lorawan]\nbind = []\n[lwm2m]\nbind = []\n[http]\nbind = []\n[storage]\nbackend = \"memory\"\n"
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// The roost binary next to this one (both come out of the same `cargo build`).
pub fn default_roost_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("roost")))
        .unwrap_or_else(|| PathBuf::from("roost"))
}

/// A scenario `compare` can run against a broker at an address.
#[derive(Debug, Clone)]
pub enum Scenario {
    Flow(FlowConfig),
    Step(FlowConfig, Vec<f64>),
    Conn(ConnConfig),
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Flow(FlowReport),
    Step(StepReport),
    Conn(ConnReport),
}

impl Outcome {
    pub fn summary(&self) -> String {
        match self {
            Outcome::Flow(r) => r.summary(),
            Outcome::Step(s) => {
                let mut out = String::new();
                for r in &s.steps {
                    let _ = writeln!(out, "step {}: {}", if r.passes_step() { "pass" } else { "FAIL" }, r.summary());
                }
                let _ = write!(
                    out,
                    "highest passing rate: {}",
                    s.max_zero_loss_rate.map_or("none".into(), |r| format!("{r:.0} msg/s"))
                );
                out
            }
            Outcome::Conn(r) => r.summary(),
        }
    }
}

/// Runs `scenario` against a broker at `addr` (with `pid` for memory readings).
pub fn run_scenario(scenario: &Scenario, addr: &str, pid: Option<u32>, tag: &str) -> anyhow::Result<Outcome> {
    Ok(match scenario {
        Scenario::Flow(cfg) => {
            let cfg = FlowConfig { target: addr.to_string(), run_id: format!("{}{tag}", cfg.run_id), ..cfg.clone() };
            Outcome::Flow(flow::run(&cfg)?)
        }
        Scenario::Step(cfg, rates) => {
            let cfg = FlowConfig { target: addr.to_string(), run_id: format!("{}{tag}", cfg.run_id), ..cfg.clone() };
            Outcome::Step(run_steps(&cfg, rates, |r| {
                if verbose_steps() {
                    eprintln!("  {}", r.summary());
                }
            })?)
        }
        Scenario::Conn(cfg) => {
            let cfg = ConnConfig {
                target: addr.to_string(),
                pid: pid.or(cfg.pid),
                run_id: format!("{}{tag}", cfg.run_id),
                ..cfg.clone()
            };
            Outcome::Conn(conn::run(&cfg)?)
        }
    })
}

/// Steps are printed as they finish when stderr is a terminal (the summary repeats them).
fn verbose_steps() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal()
}

/// Whether a larger figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub roost: f64,
    pub mosquitto: f64,
    pub ratio: Option<f64>,
    pub better: Better,
}

fn row(scenario: &str, metric: &str, roost: f64, mosquitto: f64, better: Better) -> Row {
    let ratio = (mosquitto != 0.0).then(|| roost / mosquitto);
    Row { scenario: scenario.into(), metric: metric.into(), roost, mosquitto, ratio, better }
}

/// The rows one scenario contributes to the table.
pub fn rows(name: &str, roost: &Outcome, mosq: &Outcome) -> Vec<Row> {
    use Better::{Higher, Lower};
    match (roost, mosq) {
        (Outcome::Flow(a), Outcome::Flow(b)) => vec![
            row(name, "delivered msg/s", a.delivered_per_sec, b.delivered_per_sec, Higher),
            row(name, "lost", a.lost as f64, b.lost as f64, Lower),
            row(name, "duplicates", a.duplicates as f64, b.duplicates as f64, Lower),
            row(name, "p50 latency ms", a.latency.p50_ms, b.latency.p50_ms, Lower),
            row(name, "p99 latency ms", a.latency.p99_ms, b.latency.p99_ms, Lower),
            row(name, "p99.9 latency ms", a.latency.p999_ms, b.latency.p999_ms, Lower),
            row(name, "errors", a.errors as f64, b.errors as f64, Lower),
        ],
        (Outcome::Step(a), Outcome::Step(b)) => vec![row(
            name,
            "highest zero-loss rate msg/s",
            a.max_zero_loss_rate.unwrap_or(0.0),
            b.max_zero_loss_rate.unwrap_or(0.0),
            Higher,
        )],
        (Outcome::Conn(a), Outcome::Conn(b)) => vec![
            row(name, "connected", a.connected as f64, b.connected as f64, Higher),
            row(name, "connections/s", a.connect_rate, b.connect_rate, Higher),
            row(
                name,
                "own RSS bytes/connection",
                a.bytes_per_connection.unwrap_or(f64::NAN),
                b.bytes_per_connection.unwrap_or(f64::NAN),
                Lower,
            ),
        ],
        _ => Vec::new(),
    }
}

/// The table as Markdown; `reference` heads the second column (`Brokers::reference_name`).
pub fn table(rows: &[Row], reference: &str) -> String {
    let mut out = format!(
        "| scenario | metric | Roost | {reference} | Roost/{reference} |\n| --- | --- | ---: | ---: | ---: |\n"
    );
    for r in rows {
        let ratio = r.ratio.map_or("-".to_string(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {ratio} |",
            r.scenario,
            r.metric,
            fmt_num(r.roost),
            fmt_num(r.mosquitto)
        );
    }
    out
}

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub limits: Limits,
    pub rows: Vec<Row>,
    pub runs: Vec<NamedRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamedRun {
    pub scenario: String,
    pub roost: Outcome,
    pub mosquitto: Outcome,
}

/// Runs each named scenario against a fresh Roost, then a fresh reference (mosquitto, or
/// the reference Roost build).
pub fn compare(brokers: &Brokers, scenarios: &[(String, Scenario)]) -> anyhow::Result<Comparison> {
    let mut all_rows = Vec::new();
    let mut runs = Vec::new();
    for (name, scenario) in scenarios {
        let mut outcomes = Vec::new();
        for kind in [Kind::Roost, brokers.reference()] {
            eprintln!("== {name} against {kind:?}");
            let broker = BrokerProcess::start(kind, brokers)?;
            let tag = match kind {
                Kind::Roost => "r",
                Kind::Mosquitto => "m",
                Kind::RoostReference => "b",
            };
            let outcome = run_scenario(scenario, &broker.addr(), Some(broker.pid()), tag)
                .with_context(|| format!("{name} against {kind:?}"))?;
            eprintln!("{}", outcome.summary());
            drop(broker);
            outcomes.push(outcome);
        }
        let mosquitto = outcomes.pop().context("reference outcome")?;
        let roost = outcomes.pop().context("roost outcome")?;
        all_rows.extend(rows(name, &roost, &mosquitto));
        runs.push(NamedRun { scenario: name.clone(), roost, mosquitto });
    }
    Ok(Comparison { limits: brokers.limits, rows: all_rows, runs })
}
