//! Message-flow scenarios (fan-in, fan-out, pairs): one thread of subscribers, one thread of
//! publishers, each a single-threaded tokio runtime, and the calling thread as the clock.
//!
//! Order of a run: subscribers connect and subscribe; publishers connect; the start signal;
//! publishers send until the duration (or count) is reached; the subscribers get up to
//! `drain` to receive what is still on its way; then every stream is accounted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use roost_mqtt::codec::{Ack, Packet, QoS};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Semaphore, watch};

use super::track::{Outcome, Stream};
use super::wire::{self, Frame};
use super::{FlowConfig, FlowReport, Latency, Shape};
use crate::client::{self, Client, ConnectOptions};

/// Longest time for all clients of one side to connect.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Messages one publisher puts into one write.
const BATCH: u64 = 64;

struct Shared {
    base: Instant,
    /// Distinct deliveries so far, all subscribers.
    delivered: AtomicU64,
    /// Messages written per publisher (sequence numbers 0..sent).
    sent: Vec<AtomicU64>,
    errors: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

struct SubTotals {
    hist: Histogram<u64>,
    duplicates: u64,
    lost: u64,
}

fn topic_of(cfg: &FlowConfig, publisher: u32) -> String {
    match cfg.shape {
        Shape::FanIn => format!("bench/{}/in/{publisher}", cfg.run_id),
        Shape::FanOut => format!("bench/{}/out", cfg.run_id),
        Shape::Pairs => format!("bench/{}/pair/{publisher}", cfg.run_id),
    }
}

/// (filter, publishers it expects) for subscriber `s`.
fn subscription_of(cfg: &FlowConfig, s: u32) -> (String, Vec<u32>) {
    match cfg.shape {
        Shape::FanIn => (format!("bench/{}/in/+", cfg.run_id), (0..cfg.publishers).collect()),
        Shape::FanOut => (topic_of(cfg, 0), vec![0]),
        Shape::Pairs => (topic_of(cfg, s), vec![s]),
    }
}

fn connect_options(cfg: &FlowConfig) -> ConnectOptions {
    ConnectOptions { version: cfg.version, ..ConnectOptions::default() }
}

/// Runs one flow scenario to its end. Blocks the calling thread (call it from
/// `spawn_blocking` inside a runtime).
pub fn run(cfg: &FlowConfig) -> anyhow::Result<FlowReport> {
    let mut cfg = cfg.clone();
    match cfg.shape {
        Shape::FanIn => cfg.subscribers = 1,
        Shape::FanOut => cfg.publishers = 1,
        Shape::Pairs => cfg.subscribers = cfg.publishers,
    }
    let shared = Arc::new(Shared {
        base: Instant::now(),
        delivered: AtomicU64::new(0),
        sent: (0..cfg.publishers).map(|_| AtomicU64::new(0)).collect(),
        errors: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (start_tx, start_rx) = watch::channel(false);

    let (sub_ready_tx, sub_ready_rx) = std::sync::mpsc::channel();
    let sub_thread = {
        let (cfg, shared) = (cfg.clone(), shared.clone());
        std::thread::Builder::new().name("bench-subscribers".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, subscribers(cfg, shared, sub_ready_tx, stop_rx))
        })?
    };
    match sub_ready_rx.recv_timeout(SETUP_TIMEOUT) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = stop_tx.send(true);
            return Err(e.context("subscribers did not connect"));
        }
        Err(_) => {
            let _ = stop_tx.send(true);
            bail!("subscribers did not connect within {SETUP_TIMEOUT:?}");
        }
    }

    let (pub_ready_tx, pub_ready_rx) = std::sync::mpsc::channel();
    let pub_thread = {
        let (cfg, shared) = (cfg.clone(), shared.clone());
        std::thread::Builder::new().name("bench-publishers".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(publishers(cfg, shared, pub_ready_tx, start_rx))
        })?
    };
    let ready = pub_ready_rx.recv_timeout(SETUP_TIMEOUT);
    if !matches!(ready, Ok(Ok(()))) {
        let _ = stop_tx.send(true);
        drop(start_tx);
        let _ = sub_thread.join();
        return match ready {
            Ok(Err(e)) => Err(e.context("publishers did not connect")),
            _ => bail!("publishers did not connect within {SETUP_TIMEOUT:?}"),
        };
    }

    let progress = progress_bar(&cfg);
    let t0 = Instant::now();
    let _ = start_tx.send(true);
    while !pub_thread.is_finished() {
        if t0.elapsed() > cfg.duration + cfg.drain + SETUP_TIMEOUT {
            // Publishers bound their own writes; this is the last line of defence.
            let _ = stop_tx.send(true);
            bail!("publishers did not stop within {:?} of the end of the run", cfg.drain + SETUP_TIMEOUT);
        }
        std::thread::sleep(Duration::from_millis(50));
        if let Some(p) = &progress {
            p.set_position(t0.elapsed().as_millis() as u64);
            p.set_message(format!("{} delivered", shared.delivered.load(Relaxed)));
        }
    }
    let window = t0.elapsed();
    let in_window = shared.delivered.load(Relaxed);
    let pub_result = pub_thread.join().map_err(|_| anyhow::anyhow!("publisher thread panicked"))?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }

    let sent: u64 = shared.sent.iter().map(|s| s.load(Relaxed)).sum();
    let expected = match cfg.shape {
        Shape::FanOut => sent * u64::from(cfg.subscribers),
        _ => sent,
    };
    wait_for_drain(&shared, expected, cfg.drain);
    let _ = stop_tx.send(true);
    let totals = sub_thread.join().map_err(|_| anyhow::anyhow!("subscriber thread panicked"))??;
    pub_result?;

    Ok(report(&cfg, &shared, &totals, window, in_window, sent, expected))
}

/// Waits until everything expected arrived, or nothing new came for half a second, or `bound`.
fn wait_for_drain(shared: &Shared, expected: u64, bound: Duration) {
    let drain_end = Instant::now() + bound;
    let mut last = (shared.delivered.load(Relaxed), Instant::now());
    while Instant::now() < drain_end {
        let now = shared.delivered.load(Relaxed);
        if now >= expected {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(500) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn report(
    cfg: &FlowConfig,
    shared: &Shared,
    totals: &SubTotals,
    window: Duration,
    in_window: u64,
    sent: u64,
    expected: u64,
) -> FlowReport {
    let h = &totals.hist;
    let ms = |q: f64| {
        if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 }
    };
    FlowReport {
        scenario: cfg.shape.name(),
        target: cfg.target.clone(),
        qos: cfg.qos as u8,
        mqtt_version: cfg.version.level(),
        publishers: cfg.publishers,
        subscribers: cfg.subscribers,
        payload_bytes: cfg.payload.max(wire::HEADER_LEN),
        offered_rate: cfg.rate.map(|r| r * f64::from(cfg.publishers)),
        duration_s: window.as_secs_f64(),
        sent,
        expected,
        delivered: shared.delivered.load(Relaxed),
        delivered_per_sec: in_window as f64 / window.as_secs_f64().max(1e-9),
        lost: totals.lost,
        duplicates: totals.duplicates,
        errors: shared.errors.load(Relaxed),
        latency: Latency {
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
        },
    }
}

fn progress_bar(cfg: &FlowConfig) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let p = indicatif::ProgressBar::new(cfg.duration.as_millis() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {wide_bar} {elapsed}/{duration} {msg}") {
        p.set_style(style);
    }
    Some(p)
}

async fn subscribers(
    cfg: FlowConfig,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<SubTotals> {
    let mut connects = Vec::new();
    for s in 0..cfg.subscribers {
        let cfg = cfg.clone();
        connects.push(tokio::task::spawn_local(async move {
            let (filter, expects) = subscription_of(&cfg, s);
            let id = format!("bench-{}-sub-{s}", cfg.run_id);
            let mut options = connect_options(&cfg);
            if cfg.persistent_subscribers {
                options.clean_start = false;
                options.session_expiry = Some(300);
            }
            let mut c = Client::connect(&cfg.target, &id, &options).await?;
            c.subscribe(&filter, cfg.qos).await?;
            anyhow::Ok((c, expects))
        }));
    }
    let mut clients = Vec::new();
    for c in connects {
        match c.await.context("subscriber task")? {
            Ok(c) => clients.push(c),
            Err(e) => {
                let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
                return Err(e);
            }
        }
    }
    let totals = Rc::new(RefCell::new(SubTotals {
        hist: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        duplicates: 0,
        lost: 0,
    }));
    let _ = ready.send(Ok(()));
    let mut tasks = Vec::new();
    for (c, expects) in clients {
        let (shared, totals, stop) = (shared.clone(), totals.clone(), stop.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let streams: HashMap<u32, Stream> = expects.iter().map(|&p| (p, Stream::default())).collect();
            let streams = subscriber(c, streams, &shared, &totals, stop).await;
            let mut t = totals.borrow_mut();
            for (p, s) in &streams {
                t.lost += s.lost(shared.sent[*p as usize].load(Relaxed));
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let totals = Rc::try_unwrap(totals).map_err(|_| anyhow::anyhow!("subscriber totals still shared"))?;
    Ok(totals.into_inner())
}

/// Receives until `stop`; returns its streams for the final accounting.
async fn subscriber(
    c: Client,
    mut streams: HashMap<u32, Stream>,
    shared: &Shared,
    totals: &RefCell<SubTotals>,
    mut stop: watch::Receiver<bool>,
) -> HashMap<u32, Stream> {
    let (mut stream, mut rbuf, version) = c.into_parts();
    let mut wbuf = BytesMut::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            more = client::fill(&mut stream, &mut rbuf) => match more {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    shared.errors.fetch_add(1, Relaxed);
                    break;
                }
            }
        }
        let now = shared.now_ns();
        if !take_frames(&mut rbuf, &mut wbuf, version, now, &mut streams, shared, &mut totals.borrow_mut()) {
            return streams;
        }
        if !wbuf.is_empty() {
            if stream.write_all(&wbuf).await.is_err() {
                shared.errors.fetch_add(1, Relaxed);
                break;
            }
            wbuf.clear();
        }
    }
    streams
}

/// Accounts for every whole packet in `rbuf`, queueing PUBACKs in `wbuf`; false on a
/// malformed packet.
fn take_frames(
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    version: roost_mqtt::codec::ProtocolVersion,
    now: u64,
    streams: &mut HashMap<u32, Stream>,
    shared: &Shared,
    t: &mut SubTotals,
) -> bool {
    loop {
        match wire::next(rbuf, version) {
            Ok(Some(Frame::Bench(m))) => {
                if m.qos == 1 {
                    let ack = Packet::PubAck(Ack { packet_id: m.packet_id, ..Ack::default() });
                    let _ = roost_mqtt::codec::encode(&ack, version, wbuf);
                }
                match streams.get_mut(&m.publisher).map(|s| s.record(m.seq)) {
                    Some(Outcome::New) => {
                        shared.delivered.fetch_add(1, Relaxed);
                        let _ = t.hist.record(now.saturating_sub(m.sent_ns) / 1000);
                    }
                    Some(Outcome::Duplicate) => t.duplicates += 1,
                    None => {
                        shared.errors.fetch_add(1, Relaxed);
                    }
                }
            }
            Ok(Some(Frame::Foreign)) => {
                shared.errors.fetch_add(1, Relaxed);
            }
            Ok(Some(Frame::Other(_))) => {}
            Ok(None) => return true,
            Err(_) => {
                shared.errors.fetch_add(1, Relaxed);
                return false;
            }
        }
    }
}

async fn publishers(
    cfg: FlowConfig,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
    mut start: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut connects = Vec::new();
    for p in 0..cfg.publishers {
        let cfg = cfg.clone();
        connects.push(tokio::spawn(async move {
            let id = format!("bench-{}-pub-{p}", cfg.run_id);
            Client::connect(&cfg.target, &id, &connect_options(&cfg)).await
        }));
    }
    let mut clients = Vec::new();
    for c in connects {
        match c.await? {
            Ok(c) => clients.push(c),
            Err(e) => {
                let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
                return Err(e);
            }
        }
    }
    let _ = ready.send(Ok(()));
    if start.wait_for(|s| *s).await.is_err() {
        return Ok(()); // the run was called off
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (p, c) in clients.into_iter().enumerate() {
        let (cfg, shared) = (cfg.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = publisher(p as u32, c, &cfg, &shared, t0).await {
                shared.errors.fetch_add(1, Relaxed);
                eprintln!("publisher {p}: {e:#}");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

async fn publisher(p: u32, c: Client, cfg: &FlowConfig, shared: &Shared, t0: Instant) -> anyhow::Result<()> {
    let (mut reader, mut writer) = c.split();
    let qos1 = cfg.qos == QoS::AtLeastOnce;
    let window = Arc::new(Semaphore::new(if qos1 { cfg.window } else { 0 }));
    let acks = {
        let window = window.clone();
        tokio::spawn(async move {
            // PUBACKs open the window again; anything else from the broker is ignored.
            while let Ok(Some(packet)) = reader.next().await {
                if let Packet::PubAck(_) = packet {
                    window.add_permits(1);
                }
            }
        })
    };
    let topic = topic_of(cfg, p);
    let deadline = t0 + cfg.duration;
    let limit = cfg.count.unwrap_or(u64::MAX);
    let mut seq = 0u64;
    let mut packet_id = 0u16;
    while seq < limit && Instant::now() < deadline {
        let due = match cfg.rate {
            Some(r) => ((t0.elapsed().as_secs_f64() * r) as u64 + 1).min(limit),
            None => limit,
        };
        let mut n = 0;
        while seq < due && n < BATCH {
            if qos1 {
                match window.try_acquire() {
                    Ok(permit) => permit.forget(),
                    Err(_) => break,
                }
                packet_id = packet_id.checked_add(1).unwrap_or(1);
            }
            wire::encode_publish(
                &mut writer.buf,
                cfg.version,
                cfg.qos,
                packet_id,
                &topic,
                cfg.payload,
                p,
                seq,
                shared.now_ns(),
            );
            seq += 1;
            n += 1;
        }
        if n > 0 {
            // A broker that stops reading must not hold the run past its end: write until
            // the deadline, and count only the messages that went out whole (in a batch
            // they all have the same length).
            let msg_len = writer.buf.len() / n as usize;
            let written = write_until(&mut writer, deadline).await?;
            if written < writer.buf.len() {
                seq = seq - n + (written / msg_len) as u64;
                shared.sent[p as usize].store(seq, Relaxed);
                break;
            }
            writer.buf.clear();
            shared.sent[p as usize].store(seq, Relaxed);
            tokio::task::yield_now().await;
        } else if seq < due {
            // The QoS 1 window is full: wait for a PUBACK (or the end).
            if let Ok(Ok(permit)) = tokio::time::timeout_at(deadline.into(), window.acquire()).await {
                drop(permit);
            }
        } else if let Some(r) = cfg.rate {
            let next = t0 + Duration::from_secs_f64(seq as f64 / r);
            let at = next.max(Instant::now() + Duration::from_millis(1)).min(deadline);
            tokio::time::sleep_until(at.into()).await;
        }
    }
    if qos1 {
        // Give the last PUBACKs a moment so the broker is not left mid-flow.
        let _ = tokio::time::timeout(cfg.drain, window.acquire_many(cfg.window as u32)).await;
    }
    acks.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.wr.shutdown()).await;
    Ok(())
}

/// Writes `writer.buf` until done or `deadline`; returns the bytes written.
async fn write_until(writer: &mut client::Writer, deadline: Instant) -> anyhow::Result<usize> {
    let mut off = 0;
    while off < writer.buf.len() {
        match tokio::time::timeout_at(deadline.into(), writer.wr.write(&writer.buf[off..])).await {
            Ok(Ok(0)) => bail!("the broker closed the connection"),
            Ok(Ok(k)) => off += k,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(off)
}
