//! Management seam of the driver: what the HTTP management API (in the server crate) asks
//! of the one task that owns the gateway table and the device registry. Requests are
//! commands with a reply channel, handled between datagrams, so that state stays without
//! locks. The views are plain data; the server crate turns them into JSON (no HTTP here).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::ns::{CommandError, DeviceError, Origin};
use crate::semtech::{GatewayEui, Stat};
use crate::settings::{DeviceSettings, PayloadCodec};
use crate::types::{DevAddr, DevEui, JoinEui};

/// Requests waiting for the driver; more make the caller wait (it is an admin API).
const QUEUE: usize = 64;
/// How long a request may wait for the driver's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Devices registered at once (config and API); creating more is refused.
pub const MAX_DEVICES: usize = 100_000;

/// One gateway of the table, as listed.
#[derive(Debug, Clone)]
pub struct GatewayView {
    pub gateway_id: GatewayEui,
    /// Where PULL_RESP goes (the address of its last PULL_DATA), if it sent one.
    pub pull_address: Option<SocketAddr>,
    /// Where its last datagram came from.
    pub address: SocketAddr,
    pub protocol_version: u8,
    pub last_seen: SystemTime,
    /// Radio frames it forwarded (`rxpk`).
    pub rx_frames: u64,
    /// Downlink attempts sent to it (PULL_RESP).
    pub tx_frames: u64,
    /// TX_ACKs with an error, and attempts whose TX_ACK never came.
    pub tx_errors: u64,
    /// Its last `stat` report.
    pub stat: Option<Stat>,
}

/// One registered device, as listed (no keys).
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub dev_eui: DevEui,
    pub name: String,
    pub application_id: String,
    /// `abp` or `otaa`.
    pub activation: &'static str,
    pub join_eui: Option<JoinEui>,
    pub payload_codec: PayloadCodec,
    pub origin: Origin,
    /// The device class (only class A is served).
    pub class: &'static str,
    /// Its session's DevAddr (none for an OTAA device not joined yet).
    pub dev_addr: Option<DevAddr>,
    /// The last accepted uplink counter.
    pub fcnt_up: Option<u32>,
    /// The next downlink counter.
    pub fcnt_down: Option<u32>,
    pub last_seen: Option<SystemTime>,
    /// Downlinks queued.
    pub queued: usize,
}

/// An application payload to queue for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownlinkRequest {
    pub confirmed: bool,
    pub fport: u8,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManageError {
    #[error("LoRaWAN is not running (lorawan.bind is empty, or the gateway is stopping)")]
    NotRunning,
    #[error("LoRaWAN runs in bridge mode (lorawan.mode): there is no device registry")]
    BridgeMode,
    #[error("LoRaWAN devices: at most {MAX_DEVICES} are registered at once")]
    TooManyDevices,
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("LoRaWAN device {0}: the broker refused its connection: {1}")]
    Refused(DevEui, String),
    #[error("the LoRaWAN driver did not answer within {ANSWER_WITHIN:?}")]
    NoAnswer,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ManageError>>;

pub(crate) enum Command {
    Gateways(Reply<Vec<GatewayView>>),
    Devices(Reply<Vec<DeviceView>>),
    Device(DevEui, Reply<DeviceView>),
    /// Answers the view and the store ticket of the stored settings.
    Create(DeviceSettings, Reply<(DeviceView, u64)>),
    /// Answers the store ticket of the deletion.
    Delete(DevEui, Reply<u64>),
    Enqueue(DevEui, DownlinkRequest, Reply<String>),
}

/// The API's handle on the driver (in [`crate::driver::Context`]).
pub struct Manage {
    tx: mpsc::Sender<Command>,
    rx: Mutex<Option<mpsc::Receiver<Command>>>,
    running: AtomicBool,
}

impl Default for Manage {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Manage { tx, rx: Mutex::new(Some(rx)), running: AtomicBool::new(false) }
    }
}

impl Manage {
    /// The driver takes the receiving end once, when it starts.
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Command>> {
        let rx = self.rx.lock().take();
        if rx.is_some() {
            self.running.store(true, Ordering::Release);
        }
        rx
    }

    pub(crate) fn stopped(&self) {
        self.running.store(false, Ordering::Release);
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ManageError> {
        if !self.running.load(Ordering::Acquire) {
            return Err(ManageError::NotRunning);
        }
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| ManageError::NotRunning)?;
        match tokio::time::timeout(ANSWER_WITHIN, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ManageError::NotRunning),
            Err(_) => Err(ManageError::NoAnswer),
        }
    }

    /// Every gateway of the table, by EUI.
    pub async fn gateways(&self) -> Result<Vec<GatewayView>, ManageError> {
        self.call(Command::Gateways).await
    }

    /// Every registered device, by DevEUI.
    pub async fn devices(&self) -> Result<Vec<DeviceView>, ManageError> {
        self.call(Command::Devices).await
    }

    pub async fn device(&self, dev_eui: DevEui) -> Result<DeviceView, ManageError> {
        self.call(|r| Command::Device(dev_eui, r)).await
    }

    /// Registers a device, connects it to the core and stores its settings: it is
    /// registered again at the next start. The ticket resolves with `Broker::durable`.
    pub async fn create(&self, device: DeviceSettings) -> Result<(DeviceView, u64), ManageError> {
        self.call(|r| Command::Create(device, r)).await
    }

    /// Unregisters a device created through the API, and forgets its stored settings and
    /// state.
    pub async fn delete(&self, dev_eui: DevEui) -> Result<u64, ManageError> {
        self.call(|r| Command::Delete(dev_eui, r)).await
    }

    /// Queues a downlink for the device's next receive window; answers its queue item id.
    pub async fn enqueue(&self, dev_eui: DevEui, downlink: DownlinkRequest) -> Result<String, ManageError> {
        self.call(|r| Command::Enqueue(dev_eui, downlink, r)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_running_driver_every_request_is_not_running() {
        let m = Manage::default();
        // LoRaWAN not bound: the driver never took the receiver.
        assert_eq!(m.gateways().await.err(), Some(ManageError::NotRunning));
        // A driver that ended: its receiver is gone.
        drop(m.take_receiver());
        assert_eq!(m.devices().await.err(), Some(ManageError::NotRunning));
        m.stopped();
        assert_eq!(m.delete(DevEui(1)).await.err(), Some(ManageError::NotRunning));
    }

    #[tokio::test]
    async fn a_request_is_answered_by_whoever_holds_the_receiver() {
        let m = std::sync::Arc::new(Manage::default());
        let mut rx = m.take_receiver().unwrap();
        assert!(m.take_receiver().is_none(), "taken once");
        let driver = tokio::spawn(async move {
            if let Some(Command::Enqueue(eui, d, reply)) = rx.recv().await {
                let _ = reply.send(Ok(format!("{eui}/{}/{}", d.fport, d.data.len())));
            }
        });
        let r = m.enqueue(DevEui(2), DownlinkRequest { confirmed: false, fport: 3, data: vec![1, 2] }).await;
        assert_eq!(r, Ok("0000000000000002/3/2".to_string()));
        driver.await.unwrap();
    }
}
