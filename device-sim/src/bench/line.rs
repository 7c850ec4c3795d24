//! `roost-sim bench line`: devices speaking the `line` codec over TCP to a `[[codec]]`
//! listener, one MQTT subscriber counting what arrives: messages/s delivered end to end, as a
//! user of a custom-codec listener sees it. Given several listeners (e.g. the native `line`
//! codec and the same protocol as a WebAssembly plugin, issue 21), runs the same load against
//! each in turn, in one run, and prints them side by side.
//!
//! Each device connects (`CONNECT`), then sends `PUB`/`PUB1 <topic> <seq> <sent_ns> <pad>`
//! lines keeping `window` of them unanswered (every publish is answered `OK`, so the codec
//! decodes and encodes once per message). The subscriber measures latency from `sent_ns`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use roost_mqtt::codec::{Ack, Packet, QoS};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::client::{self, Client, ConnectOptions};

/// `roost-sim bench line`.
#[derive(clap::Args, Clone)]
pub struct LineArgs {
    /// The broker's MQTT address, for the subscriber.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub target: String,
    /// A `[[codec]]` listener speaking `line`, as `label=host:port`; repeat to compare (the
    /// first is the reference of the ratio column).
    #[arg(long = "listener", required = true)]
    pub listeners: Vec<String>,
    /// The listeners' `mountpoint` (the subscriber's filter starts with it).
    #[arg(long, default_value = "")]
    pub mountpoint: String,
    #[arg(long, default_value_t = 20)]
    pub devices: u32,
    /// Messages per device.
    #[arg(long, default_value_t = 5000)]
    pub count: u64,
    /// 0: `PUB` lines, 1: `PUB1` lines (and a QoS 1 subscriber).
    #[arg(long, default_value_t = 0)]
    pub qos: u8,
    /// Publishes each device keeps unanswered.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    #[arg(long, default_value = "5s", value_parser = crate::bench::parse_duration)]
    pub drain: Duration,
    /// Rounds over all the listeners (alternating, so a drift in the machine's load hits each).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
}

impl LineArgs {
    pub fn config(&self) -> anyhow::Result<LineConfig> {
        let mut listeners = Vec::new();
        for l in &self.listeners {
            let Some((label, addr)) = l.split_once('=') else { bail!("--listener {l:?}: use label=host:port") };
            listeners.push((label.to_string(), addr.to_string()));
        }
        Ok(LineConfig {
            target: self.target.clone(),
            listeners,
            mountpoint: self.mountpoint.clone(),
            devices: self.devices.max(1),
            count: self.count.max(1),
            qos: crate::client::parse_qos(self.qos)?,
            window: self.window.max(1),
            payload: self.payload,
            drain: self.drain,
            rounds: self.rounds.max(1),
            run_id: format!("{:x}", rand::random::<u32>()),
        })
    }
}

/// One `bench line` run.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// The broker's MQTT address (the subscriber).
    pub target: String,
    /// `(label, address)` of each `[[codec]]` listener speaking `line`, run one after another.
    pub listeners: Vec<(String, String)>,
    /// Prefix the listeners put before device topics (their `mountpoint`).
    pub mountpoint: String,
    pub devices: u32,
    /// Messages per device.
    pub count: u64,
    /// 0: `PUB`, 1: `PUB1` (and a QoS 1 subscription).
    pub qos: QoS,
    /// Publishes a device keeps unanswered.
    pub window: usize,
    /// Payload bytes (at least the sequence number and the send time).
    pub payload: usize,
    /// Longest wait for the last deliveries after the devices are done.
    pub drain: Duration,
    pub rounds: u32,
    pub run_id: String,
}

/// What one listener delivered.
#[derive(Debug, Clone, Serialize)]
pub struct LineReport {
    pub label: String,
    pub listener: String,
    pub devices: u32,
    pub sent: u64,
    pub delivered: u64,
    pub refused: u64,
    /// From the first publish to the last delivery.
    pub seconds: f64,
    pub delivered_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs the load against every listener in turn.
pub async fn run(cfg: &LineConfig) -> anyhow::Result<Vec<LineReport>> {
    if cfg.listeners.is_empty() {
        bail!("no listener given (--listener label=host:port)");
    }
    let mut reports = Vec::new();
    for round in 0..cfg.rounds {
        for (label, addr) in &cfg.listeners {
            let r = run_one(cfg, round, label, addr).await.with_context(|| format!("listener {label} ({addr})"))?;
            reports.push(r);
        }
    }
    Ok(reports)
}

struct Counters {
    delivered: AtomicU64,
    refused: AtomicU64,
    /// Nanoseconds after t0 of the latest delivery.
    last_ns: AtomicU64,
}

async fn run_one(cfg: &LineConfig, round: u32, label: &str, addr: &str) -> anyhow::Result<LineReport> {
    let topic_root = format!("bench-line/{}/{round}/{label}", cfg.run_id);
    let t0 = Instant::now();
    let counters =
        Arc::new(Counters { delivered: AtomicU64::new(0), refused: AtomicU64::new(0), last_ns: AtomicU64::new(0) });
    let mut sub = Client::connect(
        &cfg.target,
        &format!("bench-line-sub-{}-{round}-{label}", cfg.run_id),
        &ConnectOptions::default(),
    )
    .await?;
    sub.subscribe(&format!("{}{topic_root}/#", cfg.mountpoint), cfg.qos).await?;
    let expected = u64::from(cfg.devices) * cfg.count;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut subscriber = tokio::spawn(subscribe(sub, expected, t0, counters.clone(), stopped));

    let mut devices = Vec::new();
    let started = t0.elapsed();
    for d in 0..cfg.devices {
        let (cfg, addr, topic) = (cfg.clone(), addr.to_string(), format!("{topic_root}/{d}"));
        let counters = counters.clone();
        let id = format!("bench-line-{}-{round}-{label}-{d}", cfg.run_id);
        devices.push(tokio::spawn(async move { device(&cfg, &addr, &id, &topic, t0, &counters).await }));
    }
    for d in devices {
        d.await??;
    }
    // QoS 0 may be dropped on the way: after `drain`, report what arrived.
    let hist = match tokio::time::timeout(cfg.drain, &mut subscriber).await {
        Ok(h) => h??,
        Err(_) => {
            let _ = stop.send(true);
            subscriber.await??
        }
    };
    let delivered = counters.delivered.load(Relaxed);
    let seconds = (Duration::from_nanos(counters.last_ns.load(Relaxed)).saturating_sub(started)).as_secs_f64();
    let ms = |q| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(LineReport {
        label: label.to_string(),
        listener: addr.to_string(),
        devices: cfg.devices,
        sent: expected,
        delivered,
        refused: counters.refused.load(Relaxed),
        seconds,
        delivered_per_s: if seconds > 0.0 { delivered as f64 / seconds } else { 0.0 },
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
    })
}

/// One device: connect, then `count` publishes with at most `window` unanswered.
async fn device(cfg: &LineConfig, addr: &str, id: &str, topic: &str, t0: Instant, c: &Counters) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.split();
    wr.write_all(format!("CONNECT {id}\n").as_bytes()).await?;
    let (mut rbuf, mut wbuf) = (BytesMut::with_capacity(16 * 1024), Vec::with_capacity(64 * 1024));
    let mut answers = Answers::default();
    while answers.ok == 0 {
        read_answers(&mut rd, &mut rbuf, &mut answers).await?;
        if answers.err > 0 {
            bail!("device {id}: CONNECT refused");
        }
    }
    let command = if cfg.qos == QoS::AtMostOnce { "PUB" } else { "PUB1" };
    let pad = "x".repeat(cfg.payload.saturating_sub(24));
    let (mut sent, mut answered) = (0u64, 0u64);
    answers = Answers::default();
    while answered < cfg.count {
        while sent < cfg.count && sent - answered < cfg.window as u64 {
            let now = t0.elapsed().as_nanos() as u64;
            wbuf.extend_from_slice(format!("{command} {topic} {sent} {now} {pad}\n").as_bytes());
            sent += 1;
        }
        if !wbuf.is_empty() {
            wr.write_all(&wbuf).await?;
            wbuf.clear();
        }
        read_answers(&mut rd, &mut rbuf, &mut answers).await?;
        answered = answers.ok + answers.err;
    }
    c.refused.fetch_add(answers.err, Relaxed);
    wr.write_all(b"QUIT\n").await?;
    Ok(())
}

#[derive(Default)]
struct Answers {
    ok: u64,
    err: u64,
}

/// Reads at least one byte and counts the whole answer lines in `rbuf`.
async fn read_answers<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    rbuf: &mut BytesMut,
    a: &mut Answers,
) -> anyhow::Result<()> {
    rbuf.reserve(16 * 1024);
    if rd.read_buf(rbuf).await? == 0 {
        bail!("the listener closed the connection");
    }
    let mut start = 0;
    while let Some(n) = rbuf[start..].iter().position(|&b| b == b'\n') {
        let line = &rbuf[start..start + n];
        if line.starts_with(b"OK") {
            a.ok += 1;
        } else if line.starts_with(b"ERR") {
            a.err += 1;
        }
        start += n + 1;
    }
    let _ = rbuf.split_to(start);
    Ok(())
}

/// Counts deliveries until `expected`; returns the latency histogram (microseconds).
async fn subscribe(
    sub: Client,
    expected: u64,
    t0: Instant,
    c: Arc<Counters>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut stream, mut rbuf, version) = sub.into_parts();
    let mut wbuf = BytesMut::new();
    while c.delivered.load(Relaxed) < expected {
        tokio::select! {
            more = client::fill(&mut stream, &mut rbuf) => if !more? {
                bail!("the broker closed the subscriber's connection");
            },
            _ = stop.wait_for(|s| *s) => break,
        }
        let now = t0.elapsed().as_nanos() as u64;
        while let Some(p) = client::decode(&mut rbuf, version)? {
            let Packet::Publish(p) = p else { continue };
            if p.qos == QoS::AtLeastOnce {
                let ack = Packet::PubAck(Ack { packet_id: p.packet_id, ..Ack::default() });
                roost_mqtt::codec::encode(&ack, version, &mut wbuf)?;
            }
            // "<seq> <sent_ns> <pad>"
            let sent_ns =
                p.payload.split(|&b| b == b' ').nth(1).and_then(|s| std::str::from_utf8(s).ok()?.parse().ok());
            if let Some(sent_ns) = sent_ns {
                let _ = hist.record((now.saturating_sub(sent_ns) / 1000).max(1));
            }
            c.delivered.fetch_add(1, Relaxed);
        }
        c.last_ns.store(now, Relaxed);
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
    }
    Ok(hist)
}

/// The table printed for a run; each round's first listener is the reference for the ratio.
pub fn table(reports: &[LineReport], listeners: usize) -> String {
    let mut out = String::from(
        "| listener | devices | sent | delivered | refused | seconds | delivered/s | vs first | p50 ms | p99 ms |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (i, r) in reports.iter().enumerate() {
        let first = reports[i - i % listeners.max(1)].delivered_per_s;
        let ratio = if first > 0.0 { 100.0 * r.delivered_per_s / first } else { 0.0 };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {ratio:.0} % | {:.2} | {:.2} |\n",
            r.label, r.devices, r.sent, r.delivered, r.refused, r.seconds, r.delivered_per_s, r.p50_ms, r.p99_ms
        ));
    }
    out
}
