//! Simulated `tlv-sensor` devices, the logic behind `roost-sim codec`: each device sends
//! REPORTs (every other one confirmed) from its own UDP socket, keeps its session alive by
//! reporting, acknowledges every COMMAND it receives, and says BYE at the end.
//!
//! Wiring into `roost-sim` (the simulator crate depends on `roost-codec`):
//!
//! ```text
//! roost-sim codec --target 127.0.0.1:5800 --devices 100 --reports 10 --interval 1s
//!   => roost_codec::sim::run(target, devices, reports, interval).await -> SimReport
//! ```
//!
//! [`SensorDevice`] is the single-device building block (frames, send, receive) for
//! scenarios of the simulator's own (latency, loss, address changes).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;

use crate::codecs::tlv_sensor::{RawFrame, kind, tag};

/// One simulated device.
pub struct SensorDevice {
    pub id: [u8; 8],
    socket: UdpSocket,
    seq: u16,
}

/// What a run of simulated devices saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    pub reports_sent: u64,
    pub acks_received: u64,
    pub commands_received: u64,
}

impl SensorDevice {
    /// A device with id `id`, sending to the gateway's `tlv-sensor` listener at `target`.
    pub async fn connect(target: SocketAddr, id: [u8; 8]) -> std::io::Result<SensorDevice> {
        let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(target).await?;
        Ok(SensorDevice { id, socket, seq: 0 })
    }

    /// The datagram of a REPORT with a temperature, a battery level and a counter.
    pub fn report_frame(&mut self, confirmed: bool, temperature_centi_c: i16, counter: u32) -> Bytes {
        self.seq = self.seq.wrapping_add(1);
        let mut body = vec![tag::TEMPERATURE, 2];
        body.extend_from_slice(&temperature_centi_c.to_be_bytes());
        body.extend_from_slice(&[tag::BATTERY, 2, 0x0b, 0xb8, tag::COUNTER, 4]);
        body.extend_from_slice(&counter.to_be_bytes());
        let kind = if confirmed { kind::CONFIRMED_REPORT } else { kind::REPORT };
        RawFrame { device: self.id, seq: self.seq, kind, body: body.into() }.to_bytes()
    }

    /// Sends any frame of this device.
    pub async fn send_frame(&mut self, kind: u8, seq: u16, body: &[u8]) -> std::io::Result<()> {
        let f = RawFrame { device: self.id, seq, kind, body: Bytes::copy_from_slice(body) };
        self.socket.send(&f.to_bytes()).await.map(|_| ())
    }

    pub async fn send_raw(&self, datagram: &[u8]) -> std::io::Result<()> {
        self.socket.send(datagram).await.map(|_| ())
    }

    /// The next frame from the gateway, within `wait`.
    pub async fn recv(&self, wait: Duration) -> Option<RawFrame> {
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(wait, self.socket.recv(&mut buf)).await.ok()?.ok()?;
        RawFrame::decode(&buf[..n]).ok()
    }

    /// Reports `reports` times, `interval` apart; acknowledges commands as they come.
    pub async fn run(&mut self, reports: u32, interval: Duration, report: &mut SimReport) -> std::io::Result<()> {
        for n in 0..reports {
            let frame = self.report_frame(n % 2 == 1, 2000 + (n % 100) as i16, n);
            self.socket.send(&frame).await?;
            report.reports_sent += 1;
            let until = tokio::time::Instant::now() + interval;
            loop {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                let Some(f) = (if left.is_zero() { None } else { self.recv(left).await }) else { break };
                match f.kind {
                    kind::ACK => report.acks_received += 1,
                    kind::COMMAND => {
                        report.commands_received += 1;
                        self.send_frame(kind::COMMAND_ACK, f.seq, &[]).await?;
                    }
                    _ => {}
                }
            }
        }
        self.send_frame(kind::BYE, self.seq.wrapping_add(1), &[]).await
    }
}

/// Runs `devices` simulated sensors (ids 1..=devices) against `target`, each reporting
/// `reports` times every `interval`; returns the totals.
pub async fn run(target: SocketAddr, devices: u32, reports: u32, interval: Duration) -> std::io::Result<SimReport> {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 1..=u64::from(devices) {
        tasks.spawn(async move {
            let mut report = SimReport::default();
            let mut device = SensorDevice::connect(target, n.to_be_bytes()).await?;
            device.run(reports, interval, &mut report).await?;
            Ok::<_, std::io::Error>(report)
        });
    }
    let mut total = SimReport::default();
    while let Some(r) = tasks.join_next().await {
        let r = r.map_err(std::io::Error::other)??;
        total.reports_sent += r.reports_sent;
        total.acks_received += r.acks_received;
        total.commands_received += r.commands_received;
    }
    Ok(total)
}
