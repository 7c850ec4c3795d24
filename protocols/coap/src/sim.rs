//! Simulated CoAP devices for load tests (`roost-sim coap`): each device has its own UDP
//! socket, observes `{prefix}/{n}/command` (so the gateway holds one observer per device)
//! and publishes CON PUTs to `/ps/{prefix}/{n}/telemetry`, one outstanding at a time,
//! every `period` (or back to back with a zero period, for requests/s). Over plain UDP, or
//! over DTLS 1.2 with a PSK (TLS_PSK_WITH_AES_128_CCM_8, the `dtls` crate's client): each
//! device then does its handshake first and runs the same exchanges in the DTLS connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ::dtls::cipher_suite::CipherSuiteId;
use ::dtls::config::{Config, ExtendedMasterSecretType};
use ::dtls::conn::DTLSConn;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub gateway: SocketAddr,
    pub devices: usize,
    pub prefix: String,
    /// Time between two publishes of one device; zero: back to back.
    pub period: Duration,
    /// How long the devices publish (after all have registered their observation).
    pub duration: Duration,
    /// New devices per second while the fleet starts.
    pub connect_rate: u32,
    /// Observe a command topic per device.
    pub observe: bool,
    pub payload_size: usize,
    /// Local address the devices' sockets bind, device n on port 10000 + n: the kernel's
    /// ~28,000 ephemeral ports are too few for large fleets, so those use several loopback
    /// addresses.
    pub source_ip: Option<std::net::IpAddr>,
    /// Speak DTLS with this PSK (the gateway's `dtls_bind` is then `gateway`).
    pub dtls_psk: Option<SimPsk>,
}

/// A PSK identity and key for the simulated devices; `{n}` in the identity is replaced by the
/// device number (one `[[coap.psk]]` entry per device), else all devices share the identity
/// (their sessions are still apart: the `clientid` query names the session).
#[derive(Debug, Clone)]
pub struct SimPsk {
    pub identity: String,
    pub key: Vec<u8>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            gateway: SocketAddr::from(([127, 0, 0, 1], 5683)),
            devices: 100,
            prefix: "sim".into(),
            period: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            connect_rate: 2000,
            observe: true,
            payload_size: 32,
            source_ip: None,
            dtls_psk: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct SimStats {
    pub observing: AtomicU64,
    pub observe_failed: AtomicU64,
    pub published: AtomicU64,
    pub acknowledged: AtomicU64,
    pub refused: AtomicU64,
    pub timed_out: AtomicU64,
    /// Sum and maximum of request round trips (CON PUT -> piggybacked 2.04), microseconds.
    pub rtt_sum_us: AtomicU64,
    pub rtt_max_us: AtomicU64,
    /// Notifications received (commands).
    pub notifications: AtomicU64,
    /// DTLS handshakes completed and failed (or timed out after 10 s); sum and maximum of
    /// their durations, and when the last one completed (from the fleet's launch), in µs.
    pub handshakes_ok: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub handshake_sum_us: AtomicU64,
    pub handshake_max_us: AtomicU64,
    pub handshakes_done_at_us: AtomicU64,
}

/// A device's way to the gateway: its UDP socket, or a DTLS connection over it.
enum Transport {
    Plain(UdpSocket),
    Dtls(Box<DTLSConn>),
}

impl Transport {
    async fn send(&self, bytes: &[u8]) -> bool {
        match self {
            Transport::Plain(s) => s.send(bytes).await.is_ok(),
            Transport::Dtls(c) => c.write(bytes, None).await.is_ok(),
        }
    }

    /// One datagram (cancel safe: both wait on a queue or the socket).
    async fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        match self {
            Transport::Plain(s) => s.recv(buf).await.ok(),
            Transport::Dtls(c) => c.read(buf, None).await.ok(),
        }
    }

    async fn close(self) {
        if let Transport::Dtls(c) = self {
            let _ = c.close().await;
        }
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The DTLS client handshake on `socket` (connected to the gateway), bounded by 10 s.
async fn handshake(
    socket: UdpSocket,
    psk: &SimPsk,
    n: usize,
    stats: &SimStats,
    launch: Instant,
) -> std::io::Result<Transport> {
    let key = psk.key.clone();
    let config = Config {
        psk: Some(Arc::new(move |_hint: &[u8]| {
            let key = key.clone();
            Box::pin(async move { Ok(key) })
        })),
        psk_identity_hint: Some(psk.identity.replace("{n}", &n.to_string()).into_bytes()),
        cipher_suites: vec![CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8],
        extended_master_secret: ExtendedMasterSecretType::Request,
        ..Config::default()
    };
    let began = Instant::now();
    let conn: Arc<dyn webrtc_util::Conn + Send + Sync> = Arc::new(socket);
    match timeout(Duration::from_secs(10), DTLSConn::new(conn, config, true, None)).await {
        Ok(Ok(c)) => {
            stats.handshakes_ok.fetch_add(1, Relaxed);
            let took = us(began.elapsed());
            stats.handshake_sum_us.fetch_add(took, Relaxed);
            stats.handshake_max_us.fetch_max(took, Relaxed);
            stats.handshakes_done_at_us.fetch_max(us(launch.elapsed()), Relaxed);
            Ok(Transport::Dtls(Box::new(c)))
        }
        Ok(Err(e)) => {
            stats.handshakes_failed.fetch_add(1, Relaxed);
            Err(std::io::Error::other(format!("DTLS handshake: {e}")))
        }
        Err(_) => {
            stats.handshakes_failed.fetch_add(1, Relaxed);
            Err(std::io::Error::other("DTLS handshake: no answer within 10 s"))
        }
    }
}

fn request(method: RequestType, mid: u16, token: u32, path: &str, query: &[&str]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(token.to_be_bytes().to_vec());
    for s in path.split('/') {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p
}

/// Runs the fleet; the counters can be watched while it runs.
pub async fn run_with(cfg: SimConfig, stats: Arc<SimStats>) {
    let cfg = Arc::new(cfg);
    let launch = Instant::now();
    let ramp = Duration::from_secs_f64(cfg.devices as f64 / f64::from(cfg.connect_rate.max(1)));
    let start = launch + ramp + Duration::from_millis(500);
    let end = start + cfg.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..cfg.devices {
        tokio::time::sleep_until(launch + Duration::from_secs_f64(n as f64 / f64::from(cfg.connect_rate.max(1)))).await;
        let (cfg, stats) = (cfg.clone(), stats.clone());
        tasks.spawn(async move {
            if let Err(e) = device(n, &cfg, &stats, launch, start, end).await {
                tracing::debug!("sim device {n}: {e}");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn device(
    n: usize,
    cfg: &SimConfig,
    stats: &SimStats,
    launch: Instant,
    start: Instant,
    end: Instant,
) -> std::io::Result<()> {
    let local = match cfg.source_ip {
        // Explicit ports: the kernel's ephemeral range (~28,000) is shared by every address.
        Some(ip) => SocketAddr::new(ip, u16::try_from(10_000 + n).unwrap_or(0)),
        None if cfg.gateway.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
        None => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(cfg.gateway).await?;
    let socket = match &cfg.dtls_psk {
        Some(psk) => handshake(socket, psk, n, stats, launch).await?,
        None => Transport::Plain(socket),
    };
    let mut buf = vec![0u8; 2048];
    let mut mid: u16 = rand::random();
    let clientid = format!("clientid={}-{n}", cfg.prefix);
    if cfg.observe {
        mid = mid.wrapping_add(1);
        let mut obs = request(RequestType::Get, mid, n as u32, &format!("ps/{}/{n}/command", cfg.prefix), &[&clientid]);
        obs.add_option(CoapOption::Observe, Vec::new());
        match exchange(&socket, &obs, &mut buf, stats).await {
            Some(r) if r.header.code == MessageClass::Response(ResponseType::Content) => {
                stats.observing.fetch_add(1, Relaxed);
            }
            _ => {
                stats.observe_failed.fetch_add(1, Relaxed);
            }
        }
    }
    tokio::time::sleep_until(start).await;
    let path = format!("ps/{}/{n}/telemetry", cfg.prefix);
    let payload = vec![b'x'; cfg.payload_size];
    let mut next = start + cfg.period.mul_f64(n as f64 / cfg.devices.max(1) as f64);
    while Instant::now() < end {
        if !cfg.period.is_zero() {
            tokio::time::sleep_until(next).await;
            next += cfg.period;
        }
        mid = mid.wrapping_add(1);
        let mut p = request(RequestType::Put, mid, n as u32 ^ 0x8000_0000, &path, &[&clientid]);
        p.payload = payload.clone();
        stats.published.fetch_add(1, Relaxed);
        let sent = Instant::now();
        match exchange(&socket, &p, &mut buf, stats).await {
            Some(r) if r.header.code == MessageClass::Response(ResponseType::Changed) => {
                stats.acknowledged.fetch_add(1, Relaxed);
                let rtt = us(sent.elapsed());
                stats.rtt_sum_us.fetch_add(rtt, Relaxed);
                stats.rtt_max_us.fetch_max(rtt, Relaxed);
            }
            Some(_) => {
                stats.refused.fetch_add(1, Relaxed);
            }
            None => {
                stats.timed_out.fetch_add(1, Relaxed);
            }
        }
    }
    socket.close().await;
    Ok(())
}

/// Sends a CON and waits for the ACK with its message id (answering notifications on the
/// way); one retransmission after 2 s, then gives up.
async fn exchange(socket: &Transport, p: &Packet, buf: &mut [u8], stats: &SimStats) -> Option<Packet> {
    let bytes = p.to_bytes().ok()?;
    for _ in 0..2 {
        if !socket.send(&bytes).await {
            return None;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(Some(n)) = timeout(deadline.saturating_duration_since(Instant::now()), socket.recv(buf)).await {
            let Ok(r) = Packet::from_bytes(&buf[..n]) else { continue };
            if r.header.get_type() == MessageType::Acknowledgement && r.header.message_id == p.header.message_id {
                return Some(r);
            }
            if r.get_option(CoapOption::Observe).is_some() {
                stats.notifications.fetch_add(1, Relaxed);
                if r.header.get_type() == MessageType::Confirmable {
                    let ack = crate::codec::empty(MessageType::Acknowledgement, r.header.message_id);
                    if let Ok(b) = ack.to_bytes() {
                        socket.send(&b).await;
                    }
                }
            }
        }
    }
    None
}
