//! Simulated MQTT-SN devices, for load tests and `roost-sim mqtt-sn`: each device has its
//! own UDP socket (so the gateway sees one peer per device), connects, registers its topic
//! (or uses a predefined id for QoS -1), and publishes once per period at the chosen QoS,
//! waiting for PUBACK / PUBREC+PUBCOMP with retries; sleepy devices go to sleep after each
//! publish, wake with PINGREQ(client id) before the next and come back with CONNECT. Phases are spread over the period so the gateway sees
//! a steady rate, as a real fleet would produce.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior, timeout};

use crate::codec::{self, Connect, Flags, Message, MsgId, Publish, ReturnCode, SnQos, TopicId, TopicIdType};

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The send time a simulated device put in its payload.
pub fn sent_micros(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload).ok()?.rsplit(' ').next()?.parse().ok()
}

/// What the simulated fleet does.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub gateway: SocketAddr,
    pub devices: usize,
    /// Client ids are `{prefix}-{n}`; topics `{prefix}/{n}`.
    pub prefix: String,
    /// Publish period of each device.
    pub period: Duration,
    /// Publishes per device.
    pub publishes: u64,
    pub qos: SnQos,
    /// For QoS -1: the predefined topic id to publish to.
    pub predefined_topic_id: u16,
    /// Sleep (DISCONNECT with this duration) after each publish, reconnecting before the next.
    pub sleep: Option<Duration>,
    /// New CONNECTs per second while the fleet starts.
    pub connect_rate: u32,
    /// How long to wait for a reply before resending, and how often.
    pub retry: Duration,
    pub retries: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            gateway: SocketAddr::from(([127, 0, 0, 1], 1884)),
            devices: 100,
            prefix: "sim".into(),
            period: Duration::from_secs(1),
            publishes: 10,
            qos: SnQos::AtLeastOnce,
            predefined_topic_id: 1,
            sleep: None,
            connect_rate: 2000,
            retry: Duration::from_secs(3),
            retries: 3,
        }
    }
}

/// Counters of the whole fleet.
#[derive(Debug, Default)]
pub struct SimStats {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub published: AtomicU64,
    /// QoS 1/2 publishes the gateway acknowledged (PUBACK / PUBCOMP accepted).
    pub acknowledged: AtomicU64,
    pub rejected: AtomicU64,
    /// Publishes that got no acknowledgement after every retry.
    pub timed_out: AtomicU64,
    pub retransmissions: AtomicU64,
    /// Acknowledgement round trips, summed and the largest, in microseconds.
    pub ack_rtt_sum_us: AtomicU64,
    pub ack_rtt_max_us: AtomicU64,
    pub finished: AtomicU64,
}

impl SimStats {
    fn rtt(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.ack_rtt_sum_us.fetch_add(us, Relaxed);
        self.ack_rtt_max_us.fetch_max(us, Relaxed);
    }
}

/// Why a device gave up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no {0} from the gateway")]
    NoReply(&'static str),
    #[error("gateway refused {0}: {1:?}")]
    Refused(&'static str, ReturnCode),
}

struct Device {
    sock: UdpSocket,
    cfg: Arc<SimConfig>,
    stats: Arc<SimStats>,
    client_id: String,
    topic: String,
    msg_id: u16,
    buf: Vec<u8>,
}

impl Device {
    async fn send(&self, m: &Message) -> Result<(), SimError> {
        let b = codec::to_bytes(m).map_err(|e| std::io::Error::other(e.to_string()))?;
        self.sock.send(&b).await?;
        Ok(())
    }

    /// Sends `m` and waits for the reply `want` picks, resending on timeout.
    async fn request(
        &mut self,
        m: Message,
        what: &'static str,
        want: impl Fn(&Message) -> bool,
    ) -> Result<Message, SimError> {
        let mut m = m;
        for attempt in 0..=self.cfg.retries {
            if attempt > 0 {
                self.stats.retransmissions.fetch_add(1, Relaxed);
                if let Message::Publish(p) = &mut m {
                    p.flags.dup = true;
                }
            }
            self.send(&m).await?;
            let deadline = Instant::now() + self.cfg.retry;
            loop {
                let Ok(r) =
                    timeout(deadline.saturating_duration_since(Instant::now()), self.sock.recv(&mut self.buf)).await
                else {
                    break;
                };
                let n = r?;
                let Ok(reply) = codec::decode(&Bytes::copy_from_slice(&self.buf[..n])) else {
                    continue;
                };
                if want(&reply) {
                    return Ok(reply);
                }
            }
        }
        Err(SimError::NoReply(what))
    }

    fn next_id(&mut self) -> MsgId {
        self.msg_id = self.msg_id.wrapping_add(1).max(1);
        MsgId(self.msg_id)
    }

    async fn connect(&mut self, clean: bool) -> Result<(), SimError> {
        let keep_alive = u16::try_from((self.cfg.period * 3).as_secs().max(60)).unwrap_or(u16::MAX);
        let m = Message::Connect(Connect {
            flags: Flags { clean_session: clean, ..Flags::default() },
            duration: keep_alive,
            client_id: self.client_id.clone(),
        });
        match self.request(m, "CONNACK", |r| matches!(r, Message::ConnAck { .. })).await? {
            Message::ConnAck { rc: ReturnCode::Accepted } => Ok(()),
            Message::ConnAck { rc } => Err(SimError::Refused("CONNECT", rc)),
            _ => Err(SimError::NoReply("CONNACK")),
        }
    }

    async fn register(&mut self) -> Result<TopicId, SimError> {
        let msg_id = self.next_id();
        let m = Message::Register { topic_id: TopicId(0), msg_id, topic_name: self.topic.clone() };
        match self
            .request(m, "REGACK", move |r| matches!(r, Message::RegAck { msg_id: id, .. } if *id == msg_id))
            .await?
        {
            Message::RegAck { topic_id, rc: ReturnCode::Accepted, .. } => Ok(topic_id),
            Message::RegAck { rc, .. } => Err(SimError::Refused("REGISTER", rc)),
            _ => Err(SimError::NoReply("REGACK")),
        }
    }

    async fn publish(&mut self, topic_id: TopicId, tt: TopicIdType, seq: u64) -> Result<(), SimError> {
        let qos = self.cfg.qos;
        let msg_id = if matches!(qos, SnQos::AtLeastOnce | SnQos::ExactlyOnce) { self.next_id() } else { MsgId(0) };
        // "{client id} {seq} {sent at, µs since the Unix epoch}": distinct per publish, and a
        // subscriber on the same machine can compute the end-to-end latency.
        let data = Bytes::from(format!("{} {seq} {}", self.client_id, unix_micros()));
        let m = Message::Publish(Publish {
            flags: Flags { qos, topic_id_type: tt, ..Flags::default() },
            topic_id,
            msg_id,
            data,
        });
        self.stats.published.fetch_add(1, Relaxed);
        let started = Instant::now();
        let ok = match qos {
            SnQos::AtMostOnce | SnQos::MinusOne => return self.send(&m).await,
            SnQos::AtLeastOnce => {
                let r = self
                    .request(m, "PUBACK", move |r| matches!(r, Message::PubAck { msg_id: id, .. } if *id == msg_id))
                    .await;
                matches!(r, Ok(Message::PubAck { rc: ReturnCode::Accepted, .. })) || {
                    if r.is_err() {
                        self.stats.timed_out.fetch_add(1, Relaxed);
                    } else {
                        self.stats.rejected.fetch_add(1, Relaxed);
                    }
                    false
                }
            }
            SnQos::ExactlyOnce => {
                let r = self.request(m, "PUBREC", move |r| matches!(r, Message::PubRec { msg_id: id } | Message::PubAck { msg_id: id, .. } if *id == msg_id)).await;
                match r {
                    Ok(Message::PubRec { .. }) => {
                        let done = self
                            .request(
                                Message::PubRel { msg_id },
                                "PUBCOMP",
                                move |r| matches!(r, Message::PubComp { msg_id: id } if *id == msg_id),
                            )
                            .await;
                        if done.is_err() {
                            self.stats.timed_out.fetch_add(1, Relaxed);
                        }
                        done.is_ok()
                    }
                    Ok(_) => {
                        self.stats.rejected.fetch_add(1, Relaxed);
                        false
                    }
                    Err(_) => {
                        self.stats.timed_out.fetch_add(1, Relaxed);
                        false
                    }
                }
            }
        };
        if ok {
            self.stats.acknowledged.fetch_add(1, Relaxed);
            self.stats.rtt(started.elapsed());
        }
        Ok(())
    }

    /// Wakes from sleep with PINGREQ(client id) (§6.14), acknowledging whatever the gateway
    /// buffered, until PINGRESP.
    async fn wake(&mut self) -> Result<(), SimError> {
        let ping = Message::PingReq { client_id: Some(self.client_id.clone()) };
        let reply = self
            .request(ping, "PINGRESP", |r| {
                matches!(r, Message::PingResp | Message::Publish(_) | Message::Register { .. })
            })
            .await?;
        let mut next = Some(reply);
        loop {
            match next.take() {
                Some(Message::PingResp) => return Ok(()),
                Some(Message::Publish(p)) if p.flags.qos == SnQos::AtLeastOnce => {
                    let ack = Message::PubAck { topic_id: p.topic_id, msg_id: p.msg_id, rc: ReturnCode::Accepted };
                    self.send(&ack).await?;
                }
                Some(Message::Register { topic_id, msg_id, .. }) => {
                    self.send(&Message::RegAck { topic_id, msg_id, rc: ReturnCode::Accepted }).await?;
                }
                _ => {}
            }
            let n = timeout(self.cfg.retry, self.sock.recv(&mut self.buf))
                .await
                .map_err(|_| SimError::NoReply("PINGRESP"))??;
            next = codec::decode(&Bytes::copy_from_slice(&self.buf[..n])).ok();
        }
    }

    async fn sleep(&mut self, d: Duration) -> Result<(), SimError> {
        let secs = u16::try_from(d.as_secs().max(1)).unwrap_or(u16::MAX);
        self.request(Message::Disconnect { duration: Some(secs) }, "DISCONNECT", |r| {
            matches!(r, Message::Disconnect { .. })
        })
        .await?;
        Ok(())
    }

    async fn disconnect(&mut self) -> Result<(), SimError> {
        self.request(Message::Disconnect { duration: None }, "DISCONNECT", |r| matches!(r, Message::Disconnect { .. }))
            .await?;
        Ok(())
    }
}

/// One device's life: connect, register, `publishes` publishes one period apart (starting at
/// `phase`), disconnect.
async fn device(
    n: usize,
    phase: Duration,
    cfg: Arc<SimConfig>,
    stats: Arc<SimStats>,
    start: Instant,
) -> Result<(), SimError> {
    let bind: SocketAddr =
        if cfg.gateway.is_ipv4() { SocketAddr::from(([0, 0, 0, 0], 0)) } else { SocketAddr::from(([0u16; 8], 0)) };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(cfg.gateway).await?;
    let mut d = Device {
        sock,
        client_id: format!("{}-{n}", cfg.prefix),
        topic: format!("{}/{n}", cfg.prefix),
        cfg: cfg.clone(),
        stats: stats.clone(),
        msg_id: 0,
        buf: vec![0u8; 2048],
    };
    let (topic_id, tt) = if cfg.qos == SnQos::MinusOne {
        (TopicId(cfg.predefined_topic_id), TopicIdType::Predefined)
    } else {
        if let Err(e) = d.connect(true).await {
            stats.connect_failed.fetch_add(1, Relaxed);
            return Err(e);
        }
        stats.connected.fetch_add(1, Relaxed);
        (d.register().await?, TopicIdType::Normal)
    };
    let mut tick = tokio::time::interval_at(start + phase, cfg.period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for seq in 0..cfg.publishes {
        tick.tick().await;
        if seq > 0 && cfg.sleep.is_some() && cfg.qos != SnQos::MinusOne {
            // Wake to collect what was buffered, then become active to publish.
            d.wake().await?;
            d.connect(false).await?;
        }
        d.publish(topic_id, tt, seq).await?;
        if let Some(s) = cfg.sleep
            && cfg.qos != SnQos::MinusOne
            && seq + 1 < cfg.publishes
        {
            d.sleep(s).await?;
        }
    }
    if cfg.qos != SnQos::MinusOne {
        d.disconnect().await?;
    }
    stats.finished.fetch_add(1, Relaxed);
    Ok(())
}

/// Runs the fleet to the end; returns its counters. Devices that fail are logged and
/// counted (connect_failed / timed_out), never panicked on.
pub async fn run(cfg: SimConfig) -> Arc<SimStats> {
    let stats = Arc::new(SimStats::default());
    run_with(cfg, stats.clone()).await;
    stats
}

/// [`run`] with counters the caller can watch while it runs.
pub async fn run_with(cfg: SimConfig, stats: Arc<SimStats>) {
    let cfg = Arc::new(cfg);
    let ramp = Duration::from_secs_f64(cfg.devices as f64 / f64::from(cfg.connect_rate.max(1)));
    let start = Instant::now() + ramp + Duration::from_millis(500);
    let mut tasks = tokio::task::JoinSet::new();
    let launch = Instant::now();
    for n in 0..cfg.devices {
        // Spread the connects at connect_rate, and the publishes evenly over one period.
        let at = launch + Duration::from_secs_f64(n as f64 / f64::from(cfg.connect_rate.max(1)));
        tokio::time::sleep_until(at).await;
        let phase = cfg.period.mul_f64(n as f64 / cfg.devices.max(1) as f64);
        let (cfg, stats) = (cfg.clone(), stats.clone());
        tasks.spawn(async move {
            if let Err(e) = device(n, phase, cfg, stats, start).await {
                tracing::warn!(device = n, "simulated MQTT-SN device: {e}");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
