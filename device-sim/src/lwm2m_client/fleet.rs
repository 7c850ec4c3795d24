//! The socket loop around [`Device`]: one UDP socket per simulated client, a fleet started
//! at a connect rate (`roost-sim lwm2m`), and [`spawn_device`] for tests that drive one
//! device and watch its events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
pub use tokio_util::sync::CancellationToken;

use super::device::{Device, DeviceConfig, Event};

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub server: SocketAddr,
    pub devices: usize,
    /// Endpoint names are `{prefix}-{n}`.
    pub prefix: String,
    pub lifetime: Duration,
    pub report_period: Duration,
    pub queue_mode: bool,
    pub queue_window: Duration,
    /// How long each device stays registered before it de-registers.
    pub duration: Duration,
    /// New devices per second while the fleet starts.
    pub connect_rate: u32,
    /// Local address the sockets bind, device n on port 10000 + n (for fleets larger than
    /// the ephemeral port range).
    pub source_ip: Option<std::net::IpAddr>,
    /// Devices also report with the 1.1 Send operation every `report_period`.
    pub send: bool,
    /// Each device's CoAP buffer (16..=1024, a power of two): see [`DeviceConfig::block_size`].
    pub block_size: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            server: SocketAddr::from(([127, 0, 0, 1], 5783)),
            devices: 10,
            prefix: "sim".into(),
            lifetime: Duration::from_secs(300),
            report_period: Duration::from_secs(10),
            queue_mode: false,
            queue_window: Duration::from_secs(20),
            duration: Duration::from_secs(30),
            connect_rate: 500,
            source_ip: None,
            send: false,
            block_size: 1024,
        }
    }
}

#[derive(Debug, Default)]
pub struct SimStats {
    pub registered: AtomicU64,
    pub register_failed: AtomicU64,
    /// From the launch of the fleet to the last successful Register, µs.
    pub registered_by_us: AtomicU64,
    pub updates: AtomicU64,
    pub update_failed: AtomicU64,
    pub deregistered: AtomicU64,
    pub answered: AtomicU64,
    pub notifications: AtomicU64,
    /// 1.1 Send reports answered 2.04, and refused or unanswered.
    pub sent: AtomicU64,
    pub send_failed: AtomicU64,
    pub ignored: AtomicU64,
}

impl SimStats {
    fn count(&self, e: &Event, launch: Instant) {
        let c = match e {
            Event::Registered(_) => {
                let us = u64::try_from(launch.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.registered_by_us.fetch_max(us, Relaxed);
                &self.registered
            }
            Event::RegisterFailed(_) => &self.register_failed,
            Event::Updated => &self.updates,
            Event::UpdateFailed => &self.update_failed,
            Event::Deregistered => &self.deregistered,
            Event::Answered(_) => &self.answered,
            Event::Notified(_) => &self.notifications,
            Event::Sent => &self.sent,
            Event::SendFailed(_) => &self.send_failed,
            Event::Ignored => &self.ignored,
        };
        c.fetch_add(1, Relaxed);
    }
}

/// Runs the fleet to its end (every device de-registered or given up).
pub async fn run_with(cfg: SimConfig, stats: Arc<SimStats>) {
    run_until(cfg, stats, CancellationToken::new()).await;
}

/// [`run_with`], and every device de-registers early when `stop` is cancelled.
pub async fn run_until(cfg: SimConfig, stats: Arc<SimStats>, stop: CancellationToken) {
    let launch = Instant::now();
    let rate = f64::from(cfg.connect_rate.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..cfg.devices {
        if stop.is_cancelled() {
            break;
        }
        tokio::time::sleep_until(launch + Duration::from_secs_f64(n as f64 / rate)).await;
        let local = match cfg.source_ip {
            Some(ip) => SocketAddr::new(ip, u16::try_from(10_000 + n).unwrap_or(0)),
            None if cfg.server.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
            None => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
        };
        let dc = DeviceConfig {
            lifetime: cfg.lifetime,
            queue_mode: cfg.queue_mode,
            queue_window: cfg.queue_window,
            report_period: cfg.report_period,
            seed: n as u32,
            send: cfg.send,
            block_size: cfg.block_size,
            ..DeviceConfig::new(format!("{}-{n}", cfg.prefix))
        };
        let (server, stats, stop) = (cfg.server, stats.clone(), stop.child_token());
        let end = Instant::now() + cfg.duration;
        tasks.spawn(async move {
            let stopper = stop.clone();
            let run = run_device(server, local, dc, stop, |e| stats.count(&e, launch));
            tokio::pin!(run);
            tokio::select! {
                r = &mut run => r,
                () = tokio::time::sleep_until(end) => { stopper.cancel(); run.await }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// What a test can make a running device do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Send a registration Update now (wakes a queue-mode device).
    Update,
}

/// A device run by [`spawn_device`]: its events, `control`, and `stop` to de-register and
/// end it (aborting `task` instead ends it silently, for lifetime expiry).
pub struct DeviceHandle {
    pub events: mpsc::UnboundedReceiver<Event>,
    pub control: mpsc::UnboundedSender<Control>,
    pub stop: CancellationToken,
    pub local: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts one device that registers with `server` and runs until `stop`.
pub async fn spawn_device(server: SocketAddr, cfg: DeviceConfig) -> std::io::Result<DeviceHandle> {
    let socket = UdpSocket::bind(if server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }).await?;
    let local = socket.local_addr()?;
    drop(socket);
    let (tx, events) = mpsc::unbounded_channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_controlled(server, local, cfg, stop.clone(), control_rx, move |e| {
        let _ = tx.send(e);
    }));
    Ok(DeviceHandle { events, control, stop, local, task })
}

/// The socket loop of one device: registers, answers, notifies, updates; when `stop` is
/// cancelled it de-registers (waiting at most 10 s for the answer) and returns.
pub async fn run_device(
    server: SocketAddr,
    local: SocketAddr,
    cfg: DeviceConfig,
    stop: CancellationToken,
    on_event: impl FnMut(Event),
) -> std::io::Result<()> {
    let (_keep, control) = mpsc::unbounded_channel();
    run_controlled(server, local, cfg, stop, control, on_event).await
}

async fn run_controlled(
    server: SocketAddr,
    local: SocketAddr,
    cfg: DeviceConfig,
    stop: CancellationToken,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut on_event: impl FnMut(Event),
) -> std::io::Result<()> {
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let mut dev = Device::new(cfg, Instant::now().into_std());
    dev.register(Instant::now().into_std());
    // A constrained device's buffer: larger requests must come in Block1 blocks. A larger
    // datagram is cut; its payload then exceeds the device's block size and is refused 4.13.
    let mut buf = vec![0u8; 4096];
    let mut leaving: Option<Instant> = None;
    loop {
        while let Some(bytes) = dev.poll_transmit() {
            // A lost datagram is what UDP does; the state machine retransmits.
            let _ = socket.send(&bytes).await;
        }
        let mut done = false;
        while let Some(e) = dev.poll_event() {
            done |= matches!(e, Event::Deregistered) && leaving.is_some();
            done |= matches!(e, Event::RegisterFailed(_));
            on_event(e);
        }
        if done || leaving.is_some_and(|t| Instant::now() >= t) {
            return Ok(());
        }
        let far = Instant::now() + Duration::from_secs(3600);
        let wake = dev.poll_timeout().map_or(far, Instant::from_std).min(leaving.unwrap_or(far));
        tokio::select! {
            r = socket.recv(&mut buf) => {
                // ICMP port unreachable surfaces here: the server is not there (yet).
                if let Ok(n) = r {
                    dev.handle(&buf[..n], Instant::now().into_std());
                }
            }
            () = tokio::time::sleep_until(wake) => dev.handle_timeout(Instant::now().into_std()),
            Some(c) = control.recv() => match c {
                Control::Update => dev.update(Instant::now().into_std()),
            },
            () = stop.cancelled(), if leaving.is_none() => {
                leaving = Some(Instant::now() + Duration::from_secs(10));
                dev.deregister(Instant::now().into_std());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
    use roost_coap::codec;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    /// A scripted server's next datagram and its sender.
    async fn next(server: &UdpSocket) -> (Packet, SocketAddr) {
        let mut buf = vec![0u8; 2048];
        let (n, from) = tokio::time::timeout(WAIT, server.recv_from(&mut buf)).await.unwrap().unwrap();
        (codec::decode(&buf[..n]).unwrap(), from)
    }

    async fn ack(server: &UdpSocket, to: SocketAddr, req: &Packet, code: ResponseType, location: &[&str]) {
        let mut r = codec::empty(MessageType::Acknowledgement, req.header.message_id);
        r.header.code = MessageClass::Response(code);
        r.set_token(req.get_token().to_vec());
        for l in location {
            r.add_option(CoapOption::LocationPath, l.as_bytes().to_vec());
        }
        server.send_to(&codec::encode(&r).unwrap(), to).await.unwrap();
    }

    #[tokio::test]
    async fn one_device_registers_answers_a_read_and_deregisters_over_udp() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut h = spawn_device(server.local_addr().unwrap(), DeviceConfig::new("udp-1")).await.unwrap();
        let (reg, from) = next(&server).await;
        assert_eq!(codec::uri_path(&reg).unwrap(), ["rd"]);
        assert!(codec::uri_query(&reg).contains(&("ep".into(), "udp-1".into())));
        ack(&server, from, &reg, ResponseType::Created, &["rd", "7"]).await;
        let first = tokio::time::timeout(WAIT, h.events.recv()).await.unwrap();
        assert_eq!(first, Some(Event::Registered(vec!["rd".into(), "7".into()])));
        let mut read = codec::empty(MessageType::Confirmable, 4242);
        read.header.code = MessageClass::Request(RequestType::Get);
        read.set_token(vec![1, 2]);
        for s in ["3", "0", "0"] {
            read.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        server.send_to(&codec::encode(&read).unwrap(), from).await.unwrap();
        let (resp, _) = next(&server).await;
        assert_eq!((resp.header.message_id, resp.payload.as_slice()), (4242, b"Roost".as_slice()));
        h.control.send(Control::Update).unwrap();
        let (upd, _) = next(&server).await;
        assert_eq!(
            (upd.header.code, codec::uri_path(&upd).unwrap()),
            (MessageClass::Request(RequestType::Post), vec!["rd".to_string(), "7".to_string()])
        );
        ack(&server, from, &upd, ResponseType::Changed, &[]).await;
        h.stop.cancel();
        let (del, _) = next(&server).await;
        assert_eq!(
            (del.header.code, codec::uri_path(&del).unwrap()),
            (MessageClass::Request(RequestType::Delete), vec!["rd".to_string(), "7".to_string()])
        );
        ack(&server, from, &del, ResponseType::Deleted, &[]).await;
        tokio::time::timeout(WAIT, h.task).await.unwrap().unwrap().unwrap();
        let mut rest = Vec::new();
        while let Ok(e) = h.events.try_recv() {
            rest.push(e);
        }
        assert_eq!(rest, [Event::Answered("2.05".into()), Event::Updated, Event::Deregistered]);
    }

    #[tokio::test]
    async fn a_fleet_registers_every_device_and_stops_on_cancel() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let cfg = SimConfig {
            server: server.local_addr().unwrap(),
            devices: 5,
            prefix: "f".into(),
            duration: Duration::from_secs(60),
            ..SimConfig::default()
        };
        let (stats, stop) = (Arc::new(SimStats::default()), CancellationToken::new());
        let fleet = tokio::spawn(run_until(cfg, stats.clone(), stop.clone()));
        let mut eps = Vec::new();
        let mut deleted = 0;
        while deleted < 5 {
            let (p, from) = next(&server).await;
            match p.header.code {
                MessageClass::Request(RequestType::Post) => {
                    let ep = codec::uri_query(&p).into_iter().find(|(k, _)| k == "ep").unwrap().1;
                    eps.push(ep.clone());
                    ack(&server, from, &p, ResponseType::Created, &["rd", &ep]).await;
                    if eps.len() == 5 {
                        // Let the last 2.01 arrive before stopping.
                        let all = async {
                            while stats.registered.load(Relaxed) < 5 {
                                tokio::task::yield_now().await;
                            }
                        };
                        tokio::time::timeout(WAIT, all).await.unwrap();
                        stop.cancel();
                    }
                }
                MessageClass::Request(RequestType::Delete) => {
                    ack(&server, from, &p, ResponseType::Deleted, &[]).await;
                    deleted += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        tokio::time::timeout(WAIT, fleet).await.unwrap().unwrap();
        eps.sort();
        assert_eq!(eps, ["f-0", "f-1", "f-2", "f-3", "f-4"]);
        assert_eq!(
            (stats.registered.load(Relaxed), stats.deregistered.load(Relaxed), stats.register_failed.load(Relaxed)),
            (5, 5, 0)
        );
    }
}
