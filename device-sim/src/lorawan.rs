//! `roost-sim lorawan`: simulated Semtech UDP packet forwarders carrying many simulated
//! LoRaWAN 1.0 class A devices (ABP and OTAA), against Roost's network-server mode, with an
//! MQTT subscriber on `application/+/device/+/event/up` measuring what comes out.
//!
//! Devices are numbered; their identities and keys derive from the number
//! ([`abp_device`], [`otaa_device`]), so `roost-sim lorawan config` prints the
//! `[[lorawan.device]]` blocks Roost needs for the same fleet. Each device sends an uplink
//! every `interval` on average (the fleet is spread evenly over the interval), heard by
//! `heard_by` gateways; every `confirmed_every`-th uplink is confirmed. OTAA devices join
//! first (JoinRequest, then the JoinAccept read back with the `lorawan` crate). Gateways
//! answer every PULL_RESP with TX_ACK and read the downlinks for ACKs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use lorawan::keys::{AppKey, AppSKey, NewSKey};
use parking_lot::Mutex;
use roost_lorawan::semtech::{self, DataRate, GatewayEui, Modulation, Packet, PushPayload, Rxpk};
use roost_lorawan::types::{AesKey, DevAddr, DevEui, JoinEui};
use roost_mqtt::codec::Packet as MqttPacket;
use tokio::net::UdpSocket;

use crate::client::{Client, ConnectOptions};

pub const JOIN_EUI: JoinEui = JoinEui(0x70b3_d57e_d000_0001);

fn key(tag: u8, i: u32) -> AesKey {
    let mut k = [tag; 16];
    k[12..].copy_from_slice(&i.to_be_bytes());
    AesKey(k)
}

/// ABP device `i`: (DevEUI, DevAddr, NwkSKey, AppSKey).
pub fn abp_device(i: u32) -> (DevEui, DevAddr, AesKey, AesKey) {
    (DevEui(0x00aa_0000_0000_0000 | u64::from(i)), DevAddr(0x0100_0000 | i), key(0x11, i), key(0x22, i))
}

/// OTAA device `i`: (DevEUI, AppKey).
pub fn otaa_device(i: u32) -> (DevEui, AesKey) {
    (DevEui(0x00bb_0000_0000_0000 | u64::from(i)), key(0x33, i))
}

fn hex(b: &[u8]) -> String {
    roost_lorawan::hex::encode(b)
}

/// The `[[lorawan.device]]` blocks of a fleet of `abp` + `otaa` devices.
pub fn device_config(abp: u32, otaa: u32, application_id: &str) -> String {
    let mut s = String::new();
    for i in 0..abp {
        let (eui, addr, nwk, app) = abp_device(i);
        s.push_str(&format!(
            "[[lorawan.device]]\ndev_eui = \"{eui}\"\napplication_id = \"{application_id}\"\ndev_addr = \"{addr}\"\nnwk_s_key = \"{}\"\napp_s_key = \"{}\"\n",
            hex(&nwk.0),
            hex(&app.0)
        ));
    }
    for i in 0..otaa {
        let (eui, app_key) = otaa_device(i);
        s.push_str(&format!(
            "[[lorawan.device]]\ndev_eui = \"{eui}\"\napplication_id = \"{application_id}\"\njoin_eui = \"{JOIN_EUI}\"\napp_key = \"{}\"\n",
            hex(&app_key.0)
        ));
    }
    s
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Roost's packet-forwarder UDP address.
    pub target: SocketAddr,
    /// Roost's MQTT address, for the application-side subscriber.
    pub mqtt: String,
    pub gateways: u32,
    pub abp: u32,
    pub otaa: u32,
    /// Gateways hearing each uplink (1..=gateways).
    pub heard_by: u32,
    /// Mean time between two uplinks of one device.
    pub interval: Duration,
    /// How long uplinks are sent.
    pub duration: Duration,
    /// Every n-th uplink of a device is confirmed (0: none).
    pub confirmed_every: u32,
    /// How long to wait for the last events after the last uplink.
    pub drain: Duration,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub uplinks: AtomicU64,
    pub confirmed: AtomicU64,
    pub joins_sent: AtomicU64,
    pub joins_accepted: AtomicU64,
    pub datagrams: AtomicU64,
    pub pull_resp: AtomicU64,
    pub acks: AtomicU64,
    pub events: AtomicU64,
    pub duplicates: AtomicU64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub gateways: u32,
    pub devices: u32,
    pub elapsed_s: f64,
    pub uplinks: u64,
    pub uplinks_per_s: f64,
    pub datagrams: u64,
    pub events: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub confirmed: u64,
    pub acks: u64,
    pub joins_sent: u64,
    pub joins_accepted: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

struct Device {
    eui: DevEui,
    addr: Option<DevAddr>,
    nwk: AesKey,
    app: AesKey,
    app_key: Option<AesKey>,
    fcnt: u32,
    dev_nonce: u16,
}

struct Shared {
    devices: Vec<Device>,
    /// OTAA devices waiting for a JoinAccept, by gateway.
    joining: HashMap<u32, Vec<usize>>,
    /// (DevEUI, FCnt) of every uplink sent and not yet seen as an event.
    outstanding: HashMap<(u64, u32), ()>,
}

fn micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn rxpk(phy: &[u8], tmst: u32, snr: f64) -> Rxpk {
    Rxpk {
        time: None,
        tmms: None,
        tmst,
        freq: 868.1,
        chan: 0,
        rfch: 0,
        stat: 1,
        modu: Modulation::Lora,
        datr: DataRate::lora(7, 125),
        codr: Some("4/5".into()),
        rssi: Some(-60),
        lsnr: Some(snr),
        size: phy.len() as u16,
        data: base64::engine::general_purpose::STANDARD.encode(phy),
        rsig: Vec::new(),
    }
}

fn uplink_frame(d: &Device, confirmed: bool) -> Vec<u8> {
    let mut payload = micros().to_be_bytes().to_vec();
    payload.extend_from_slice(&d.fcnt.to_be_bytes());
    let mut c = lorawan::creator::DataPayloadCreator::new();
    c.set_uplink(true)
        .set_confirmed(confirmed)
        .set_dev_addr(&d.addr.unwrap_or_default().to_le())
        .set_fcnt(d.fcnt)
        .set_f_port(1);
    c.build(&payload, &[], &NewSKey::from(d.nwk.0), &AppSKey::from(d.app.0)).map(<[u8]>::to_vec).unwrap_or_default()
}

fn join_request(d: &Device) -> Vec<u8> {
    let mut c = lorawan::creator::JoinRequestCreator::new();
    c.set_app_eui(&JOIN_EUI.to_le()).set_dev_eui(&d.eui.to_le()).set_dev_nonce(&d.dev_nonce.to_le_bytes());
    c.build(&AppKey::from(d.app_key.map_or([0; 16], |k| k.0))).to_vec()
}

/// One gateway: its socket, and the task answering PULL_RESP.
struct Gateway {
    eui: GatewayEui,
    socket: Arc<UdpSocket>,
    token: AtomicU64,
}

impl Gateway {
    async fn push(&self, target: SocketAddr, rxpk: Vec<Rxpk>, stats: &Stats) {
        let token = self.token.fetch_add(1, Relaxed) as u16;
        let p = Packet::PushData { version: 2, token, gateway: self.eui, payload: PushPayload { rxpk, stat: None } };
        stats.datagrams.fetch_add(1, Relaxed);
        let _ = self.socket.send_to(&semtech::encode(&p), target).await;
    }
}

async fn gateway_rx(
    index: u32,
    gw: Arc<Gateway>,
    target: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stats: Arc<Stats>,
    stop: tokio_util_stop::Stop,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tokio::select! {
            _ = stop.wait() => break,
            r = gw.socket.recv(&mut buf) => match r { Ok(n) => n, Err(_) => continue },
        };
        let Ok(Packet::PullResp { token, txpk, .. }) = semtech::decode(&buf[..n]) else { continue };
        stats.pull_resp.fetch_add(1, Relaxed);
        let ack = Packet::TxAck { version: 2, token, gateway: gw.eui, error: None };
        let _ = gw.socket.send_to(&semtech::encode(&ack), target).await;
        let Some(phy) = txpk.payload() else { continue };
        match phy.first().map(|m| m >> 5) {
            Some(1) => {
                // A JoinAccept: whose? Try the devices joining through this gateway.
                let mut sh = shared.lock();
                let waiting = sh.joining.get(&index).cloned().unwrap_or_default();
                for di in waiting {
                    let Some(d) = sh.devices.get(di) else { continue };
                    let Some(app_key) = d.app_key else { continue };
                    let Ok(ja) =
                        lorawan::parser::DecryptedJoinAcceptPayload::new(phy.clone(), &AppKey::from(app_key.0))
                    else {
                        continue;
                    };
                    let nonce_bytes = d.dev_nonce.to_le_bytes();
                    let Some(nonce) = lorawan::parser::DevNonce::new(&nonce_bytes[..]) else { continue };
                    let nwk = ja.derive_newskey(&nonce, &AppKey::from(app_key.0));
                    let app = ja.derive_appskey(&nonce, &AppKey::from(app_key.0));
                    let addr = DevAddr::from_le(ja.dev_addr().as_ref().try_into().unwrap_or([0; 4]));
                    if let Some(d) = sh.devices.get_mut(di) {
                        d.addr = Some(addr);
                        d.nwk = AesKey(nwk.inner().0);
                        d.app = AesKey(app.inner().0);
                        d.fcnt = 0;
                    }
                    if let Some(v) = sh.joining.get_mut(&index) {
                        v.retain(|x| *x != di);
                    }
                    stats.joins_accepted.fetch_add(1, Relaxed);
                    break;
                }
            }
            Some(3 | 5) if phy.len() > 5 && phy[5] & 0x20 != 0 => {
                stats.acks.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
}

/// A tiny stop signal without another dependency.
mod tokio_util_stop {
    use std::sync::Arc;
    use tokio::sync::watch;

    #[derive(Clone)]
    pub struct Stop(Arc<watch::Sender<bool>>, watch::Receiver<bool>);

    impl Stop {
        pub fn new() -> Stop {
            let (tx, rx) = watch::channel(false);
            Stop(Arc::new(tx), rx)
        }
        pub fn stop(&self) {
            self.0.send_replace(true);
        }
        pub async fn wait(&self) {
            let mut rx = self.1.clone();
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}

pub async fn run(cfg: SimConfig) -> anyhow::Result<Report> {
    anyhow::ensure!(
        cfg.gateways >= 1 && cfg.heard_by >= 1 && cfg.heard_by <= cfg.gateways,
        "need 1 <= heard_by <= gateways"
    );
    let total = cfg.abp + cfg.otaa;
    anyhow::ensure!(total >= 1, "no devices");
    let stats = Arc::new(Stats::default());
    let stop = tokio_util_stop::Stop::new();
    let devices = fleet(&cfg);
    let shared = Arc::new(Mutex::new(Shared { devices, joining: HashMap::new(), outstanding: HashMap::new() }));

    // The application side first, so no event is missed.
    let latencies = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?));
    let sub = application(&cfg, shared.clone(), stats.clone(), latencies.clone(), stop.clone()).await?;
    // Gateways: PULL_DATA first, so downlinks have a path.
    let gateways = start_gateways(&cfg, &shared, &stats, &stop).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let start = Instant::now();
    send_fleet(&cfg, &shared, &stats, &gateways).await;
    let sent_for = start.elapsed();
    // Drain: until every uplink is seen or the drain time is over.
    let drain_end = Instant::now() + cfg.drain;
    while Instant::now() < drain_end && !shared.lock().outstanding.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.stop();
    let _ = sub.await;
    let h = latencies.lock();
    let ms = |v: u64| v as f64 / 1000.0;
    let uplinks = stats.uplinks.load(Relaxed);
    let lost = shared.lock().outstanding.len() as u64;
    Ok(Report {
        gateways: cfg.gateways,
        devices: total,
        elapsed_s: sent_for.as_secs_f64(),
        uplinks,
        uplinks_per_s: uplinks as f64 / sent_for.as_secs_f64(),
        datagrams: stats.datagrams.load(Relaxed),
        events: stats.events.load(Relaxed),
        lost,
        duplicates: stats.duplicates.load(Relaxed),
        confirmed: stats.confirmed.load(Relaxed),
        acks: stats.acks.load(Relaxed),
        joins_sent: stats.joins_sent.load(Relaxed),
        joins_accepted: stats.joins_accepted.load(Relaxed),
        latency_p50_ms: ms(h.value_at_quantile(0.5)),
        latency_p99_ms: ms(h.value_at_quantile(0.99)),
        latency_max_ms: ms(h.max()),
    })
}

/// The simulated devices: ABP ones first, then OTAA ones (not joined yet).
fn fleet(cfg: &SimConfig) -> Vec<Device> {
    let mut devices = Vec::with_capacity((cfg.abp + cfg.otaa) as usize);
    for i in 0..cfg.abp {
        let (eui, addr, nwk, app) = abp_device(i);
        devices.push(Device { eui, addr: Some(addr), nwk, app, app_key: None, fcnt: 0, dev_nonce: 0 });
    }
    for i in 0..cfg.otaa {
        let (eui, app_key) = otaa_device(i);
        devices.push(Device {
            eui,
            addr: None,
            nwk: AesKey([0; 16]),
            app: AesKey([0; 16]),
            app_key: Some(app_key),
            fcnt: 0,
            dev_nonce: rand::random(),
        });
    }
    devices
}

/// The application: one MQTT subscriber to every `event/up`, matching each to its uplink
/// (duplicates counted) and recording the end-to-end latency carried in the payload.
async fn application(
    cfg: &SimConfig,
    shared: Arc<Mutex<Shared>>,
    stats: Arc<Stats>,
    latencies: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    stop: tokio_util_stop::Stop,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut client = Client::connect(&cfg.mqtt, "roost-sim-lorawan-app", &ConnectOptions::default())
        .await
        .context("MQTT subscriber")?;
    client.subscribe("application/+/device/+/event/up", roost_mqtt::codec::QoS::AtMostOnce).await?;
    let (stream, buf, version) = client.into_parts();
    let (rd, wr) = stream.into_split();
    Ok(tokio::spawn(async move {
        let _wr = wr;
        let mut reader = crate::client::Reader { rd, buf, version };
        loop {
            let p = tokio::select! {
                _ = stop.wait() => break,
                p = reader.next() => p,
            };
            let p = match p {
                Ok(Some(p)) => p,
                _ => break,
            };
            let MqttPacket::Publish(p) = p else { continue };
            let now = micros();
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) else { continue };
            let (Some(eui), Some(fcnt)) =
                (v["deviceInfo"]["devEui"].as_str().and_then(DevEui::parse), v["fCnt"].as_u64())
            else {
                continue;
            };
            let data = v["data"]
                .as_str()
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .unwrap_or_default();
            if data.len() >= 8 {
                let sent = u64::from_be_bytes(data[..8].try_into().unwrap_or([0; 8]));
                let _ = latencies.lock().record(now.saturating_sub(sent).max(1));
            }
            if shared.lock().outstanding.remove(&(eui.0, fcnt as u32)).is_some() {
                stats.events.fetch_add(1, Relaxed);
            } else {
                stats.duplicates.fetch_add(1, Relaxed);
            }
        }
    }))
}

/// The packet forwarders, each announcing its downlink path with PULL_DATA (again every 10 s).
async fn start_gateways(
    cfg: &SimConfig,
    shared: &Arc<Mutex<Shared>>,
    stats: &Arc<Stats>,
    stop: &tokio_util_stop::Stop,
) -> anyhow::Result<Vec<Arc<Gateway>>> {
    let mut gateways = Vec::new();
    for g in 0..cfg.gateways {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let gw = Arc::new(Gateway {
            eui: GatewayEui::from_u64(0x00cc_0000_0000_0000 | u64::from(g)),
            socket,
            token: AtomicU64::new(1),
        });
        let pull = Packet::PullData { version: 2, token: 0, gateway: gw.eui };
        gw.socket.send_to(&semtech::encode(&pull), cfg.target).await?;
        tokio::spawn(gateway_rx(g, gw.clone(), cfg.target, shared.clone(), stats.clone(), stop.clone()));
        gateways.push(gw);
    }
    {
        // Keep-alive PULL_DATA every 10 s, as forwarders do.
        let (gateways, stop, target) = (gateways.clone(), stop.clone(), cfg.target);
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = stop.wait() => break,
                    _ = t.tick() => for gw in &gateways {
                        let pull = Packet::PullData { version: 2, token: 0, gateway: gw.eui };
                        let _ = gw.socket.send_to(&semtech::encode(&pull), target).await;
                    },
                }
            }
        });
    }
    Ok(gateways)
}

/// Sends the fleet's frames for `cfg.duration`, spread evenly over the interval: device k
/// sends at k * interval / total.
async fn send_fleet(cfg: &SimConfig, shared: &Mutex<Shared>, stats: &Stats, gateways: &[Arc<Gateway>]) {
    let total = cfg.abp + cfg.otaa;
    let start = Instant::now();
    let step = cfg.interval.as_secs_f64() / f64::from(total);
    let mut next: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut tmst: u32 = 0;
    while start.elapsed() < cfg.duration {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() / step) as u64;
        // Gather this tick's frames per gateway (one PUSH_DATA each, as forwarders batch).
        let mut per_gw: HashMap<u32, Vec<Rxpk>> = HashMap::new();
        {
            let mut sh = shared.lock();
            while next <= due {
                let k = (next % u64::from(total)) as usize;
                let round = next / u64::from(total);
                next += 1;
                let first_gw = (k as u32) % cfg.gateways;
                tmst = tmst.wrapping_add(1_000);
                let Shared { devices, joining, outstanding } = &mut *sh;
                let Some(d) = devices.get_mut(k) else { continue };
                let frame = if d.addr.is_none() {
                    // OTAA and not joined yet (or its JoinAccept was lost): (re)join.
                    d.dev_nonce = d.dev_nonce.wrapping_add(1);
                    joining.entry(first_gw).or_default().push(k);
                    stats.joins_sent.fetch_add(1, Relaxed);
                    join_request(d)
                } else {
                    d.fcnt += 1;
                    let confirmed =
                        cfg.confirmed_every > 0 && (round + 1).is_multiple_of(u64::from(cfg.confirmed_every));
                    if confirmed {
                        stats.confirmed.fetch_add(1, Relaxed);
                    }
                    stats.uplinks.fetch_add(1, Relaxed);
                    outstanding.insert((d.eui.0, d.fcnt), ());
                    uplink_frame(d, confirmed)
                };
                for h in 0..cfg.heard_by {
                    let g = (first_gw + h) % cfg.gateways;
                    per_gw.entry(g).or_default().push(rxpk(&frame, tmst, 5.0 - f64::from(h)));
                }
            }
        }
        for (g, rx) in per_gw {
            // Semtech forwarders send at most a few frames per datagram.
            for chunk in rx.chunks(8) {
                gateways[g as usize].push(cfg.target, chunk.to_vec(), stats).await;
            }
        }
    }
}
