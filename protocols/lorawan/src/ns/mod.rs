//! Session layer of network-server mode: a sans-IO LoRaWAN 1.0.x class A network server.
//!
//! Frames come in through [`NetworkServer::handle_rxpk`] and are collected for the
//! de-duplication window (the same frame heard by several gateways is one frame with every
//! gateway's metadata); [`NetworkServer::handle_timeout`] at [`NetworkServer::poll_timeout`]
//! then processes them: joins (§6.2), data uplinks (MIC, 32-bit frame counter, replay,
//! decryption, MAC commands, confirmed uplinks), and answers in the device's receive windows.
//! What to do comes out as [`Output`]s: application messages to publish, transmissions to
//! schedule on a gateway, device state to persist. Time (monotonic and wall clock) is a
//! parameter, so tests drive it with a virtual clock.

mod device;
pub mod events;
mod join;
#[cfg(test)]
mod tests;
mod uplink;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use serde::Deserialize;

pub use device::{Device, DeviceState, Origin, QueueItem, Session, full_fcnt};

use crate::semtech::{DataRate, GatewayEui, Rxpk};
use crate::settings::{Activation, DeviceSettings, NetworkServerSettings};
use crate::types::{DevAddr, DevEui};

/// Frames being collected at once; more are dropped (counted), which bounds memory under a
/// flood of distinct frames.
const MAX_COLLECTING: usize = 200_000;

/// Network-server counters (exposed by the driver).
#[derive(Debug, Default)]
pub struct NsCounters {
    pub uplinks: AtomicU64,
    pub joins: AtomicU64,
    /// Copies of a frame merged into one (heard by several gateways).
    pub duplicates: AtomicU64,
    pub mic_failures: AtomicU64,
    pub replays: AtomicU64,
    pub fcnt_gaps: AtomicU64,
    pub dev_nonce_replays: AtomicU64,
    pub unknown_devices: AtomicU64,
    pub bad_phy: AtomicU64,
    pub crc_errors: AtomicU64,
    pub downlinks: AtomicU64,
    pub downlinks_failed: AtomicU64,
    pub queue_full: AtomicU64,
    pub bad_commands: AtomicU64,
    pub collect_overflow: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// One receive window of a downlink, relative to the uplink's `tmst` at the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct TxWindow {
    pub delay: Duration,
    pub freq_hz: u32,
    pub datr: DataRate,
    pub power: i32,
}

/// What a transmission was for, handed back with its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct TxTag {
    pub dev_eui: DevEui,
    pub downlink_id: u32,
    pub fcnt_down: Option<u32>,
    pub queue_item: Option<QueueItem>,
}

/// A frame to send in one of `windows` (tried in order), through the first of `candidates`
/// (gateway, its uplink `tmst`; best first) that has a downlink path.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub candidates: Vec<(GatewayEui, u32)>,
    pub phy: Vec<u8>,
    pub windows: Vec<TxWindow>,
    pub tag: TxTag,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An application message from device `dev_eui`.
    Publish {
        dev_eui: DevEui,
        topic: String,
        payload: Vec<u8>,
    },
    Transmit(Transmit),
    /// The device's durable state changed (a serialized [`DeviceState`]).
    Persist {
        dev_eui: DevEui,
        value: Vec<u8>,
    },
    /// A frame of the device (uplink or join request) for the running traces, heard best by
    /// `gateway`; only while [`NetworkServer::trace`] is set.
    Trace {
        dev_eui: DevEui,
        gateway: Option<GatewayEui>,
        text: String,
    },
}

/// Copies of one frame gathered until its window closes (the deadline is in `order`).
struct Collecting {
    rx: Vec<(GatewayEui, Rxpk)>,
}

pub struct NetworkServer {
    pub(crate) settings: NetworkServerSettings,
    pub(crate) devices: HashMap<DevEui, Device>,
    by_addr: HashMap<DevAddr, Vec<DevEui>>,
    /// Stored states of devices not registered (yet): an API-created device's state waits
    /// here until the driver adds the device from its stored settings.
    unclaimed: HashMap<DevEui, DeviceState>,
    collecting: HashMap<Vec<u8>, Collecting>,
    order: VecDeque<(Instant, Vec<u8>)>,
    pub counters: Arc<NsCounters>,
    /// Whether a trace runs: then every frame of a known device also comes out as
    /// [`Output::Trace`] (the driver sets it; untraced traffic formats nothing).
    pub trace: bool,
}

/// `command/down` JSON (ChirpStack's `DownlinkCommand`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DownCommand {
    #[serde(default)]
    id: Option<String>,
    dev_eui: Option<String>,
    #[serde(default)]
    confirmed: bool,
    /// Required with `data`; with `object` the codec may choose it.
    f_port: Option<u8>,
    #[serde(default)]
    data: String,
    /// Encoded by the device's script codec (`encodeDownlink`) instead of `data`.
    #[serde(default)]
    object: Option<serde_json::Value>,
}

/// Why the device registry refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("LoRaWAN device {0} is already registered")]
    Exists(DevEui),
    #[error("LoRaWAN device {0} is not registered")]
    Unknown(DevEui),
    #[error("LoRaWAN device {0} is registered in the config file: remove it there")]
    FromConfig(DevEui),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("LoRaWAN command/down: not JSON of {{devEui, confirmed, fPort, data}}: {0}")]
    Json(String),
    #[error("LoRaWAN command/down: devEui {0} is not the device of the topic")]
    WrongDevice(String),
    #[error("LoRaWAN command/down: fPort {0} is not 1..=223")]
    Port(u8),
    #[error("LoRaWAN command/down: data is not base64 of at most 242 bytes")]
    Data,
    #[error("LoRaWAN command/down: device {0} is not registered")]
    UnknownDevice(DevEui),
    #[error("LoRaWAN command/down: queue of device {0} is full")]
    QueueFull(DevEui),
    #[error("LoRaWAN command/down: object not encoded: {0}")]
    Codec(String),
}

impl NetworkServer {
    /// Builds the server from its settings and the device states the store held
    /// (`(dev_eui hex, serialized DeviceState)`).
    pub fn new(settings: NetworkServerSettings, stored: Vec<(String, bytes::Bytes)>) -> Self {
        let mut saved: HashMap<DevEui, DeviceState> = HashMap::new();
        for (k, v) in stored {
            match (DevEui::parse(&k), serde_json::from_slice::<DeviceState>(&v)) {
                (Some(eui), Ok(state)) => {
                    saved.insert(eui, state);
                }
                (_, Err(e)) => tracing::warn!(key = %k, "stored LoRaWAN device state unreadable, ignored: {e}"),
                (None, _) => tracing::warn!(key = %k, "stored LoRaWAN device key is not a DevEUI, ignored"),
            }
        }
        let mut ns = NetworkServer {
            devices: HashMap::new(),
            by_addr: HashMap::new(),
            unclaimed: saved,
            collecting: HashMap::new(),
            order: VecDeque::new(),
            counters: Arc::default(),
            trace: false,
            settings,
        };
        for d in ns.settings.devices.clone() {
            ns.insert_device(d, Origin::Config);
        }
        ns
    }

    /// Registers `d` with its stored state, if any (an ABP device whose configured session
    /// differs from the stored one starts the configured session afresh).
    fn insert_device(&mut self, d: DeviceSettings, origin: Origin) {
        let mut state = self.unclaimed.remove(&d.dev_eui).unwrap_or_default();
        if let Activation::Abp { dev_addr, nwk_s_key, app_s_key } = &d.activation {
            let same = state
                .session
                .as_ref()
                .is_some_and(|s| s.dev_addr == *dev_addr && s.nwk_s_key == *nwk_s_key && s.app_s_key == *app_s_key);
            if !same {
                state.session = Some(Session::new(*dev_addr, *nwk_s_key, *app_s_key, &self.settings, 1));
            }
        }
        if let Some(s) = &state.session {
            self.by_addr.entry(s.dev_addr).or_default().push(d.dev_eui);
        }
        self.devices.insert(
            d.dev_eui,
            Device { settings: d, origin, last_seen: None, state, queue: VecDeque::new(), awaiting_ack: None },
        );
    }

    /// Registers a device the management API created (now, or before a restart: its
    /// stored state, if any, is taken up). Its state is persisted through `out`.
    pub fn add_device(&mut self, d: DeviceSettings, out: &mut Vec<Output>) -> Result<(), DeviceError> {
        if self.devices.contains_key(&d.dev_eui) {
            return Err(DeviceError::Exists(d.dev_eui));
        }
        let eui = d.dev_eui;
        self.insert_device(d, Origin::Api);
        self.persist(eui, out);
        Ok(())
    }

    /// Unregisters a device the management API created; its queue and pending frames go
    /// with it. Config devices stay (they would come back at the next start).
    pub fn remove_device(&mut self, dev_eui: DevEui) -> Result<Device, DeviceError> {
        let dev = self.devices.get(&dev_eui).ok_or(DeviceError::Unknown(dev_eui))?;
        if dev.origin == Origin::Config {
            return Err(DeviceError::FromConfig(dev_eui));
        }
        let dev = self.devices.remove(&dev_eui).ok_or(DeviceError::Unknown(dev_eui))?;
        if let Some(s) = &dev.state.session
            && let Some(v) = self.by_addr.get_mut(&s.dev_addr)
        {
            v.retain(|e| *e != dev_eui);
            if v.is_empty() {
                self.by_addr.remove(&s.dev_addr);
            }
        }
        Ok(dev)
    }

    pub fn device(&self, dev_eui: DevEui) -> Option<&Device> {
        self.devices.get(&dev_eui)
    }

    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Every registered device (the driver connects each to the core).
    pub fn device_euis(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// A frame one gateway received. CRC-failed frames are dropped here.
    pub fn handle_rxpk(&mut self, now: Instant, gateway: GatewayEui, rxpk: &Rxpk) {
        if rxpk.stat == -1 {
            bump(&self.counters.crc_errors);
            return;
        }
        let Some(phy) = rxpk.payload() else {
            bump(&self.counters.bad_phy);
            tracing::debug!(%gateway, "rxpk data is not base64: dropped");
            return;
        };
        if let Some(c) = self.collecting.get_mut(&phy) {
            bump(&self.counters.duplicates);
            // A gateway repeating itself adds nothing.
            if !c.rx.iter().any(|(g, _)| *g == gateway) {
                c.rx.push((gateway, rxpk.clone()));
            }
            return;
        }
        if self.collecting.len() >= MAX_COLLECTING {
            bump(&self.counters.collect_overflow);
            return;
        }
        let deadline = now + self.settings.deduplication_window;
        self.order.push_back((deadline, phy.clone()));
        self.collecting.insert(phy, Collecting { rx: vec![(gateway, rxpk.clone())] });
    }

    /// When [`NetworkServer::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.order.front().map(|(d, _)| *d)
    }

    /// Processes every frame whose collection window has closed.
    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime, out: &mut Vec<Output>) {
        while let Some((deadline, _)) = self.order.front() {
            if *deadline > now {
                break;
            }
            let Some((_, phy)) = self.order.pop_front() else { break };
            let Some(c) = self.collecting.remove(&phy) else { continue };
            self.process(wall, &phy, c.rx, out);
        }
    }

    fn process(&mut self, wall: SystemTime, phy: &[u8], mut rx: Vec<(GatewayEui, Rxpk)>, out: &mut Vec<Output>) {
        // Best reception first: it is the gateway that answers.
        rx.sort_by(|a, b| b.1.best_snr().total_cmp(&a.1.best_snr()).then(b.1.best_rssi().cmp(&a.1.best_rssi())));
        match crate::phy::decode(phy) {
            Ok(crate::phy::Frame::JoinRequest(jr)) => self.join(wall, phy, jr, &rx, out),
            Ok(crate::phy::Frame::Data(f)) if f.uplink() => self.data_uplink(wall, phy, &f, &rx, out),
            Ok(crate::phy::Frame::Data(_)) => {
                bump(&self.counters.bad_phy);
                tracing::debug!("downlink frame received as an uplink: dropped");
            }
            Err(e) => {
                bump(&self.counters.bad_phy);
                tracing::debug!("{e}");
            }
        }
    }

    /// A `command/down` message for `dev_eui` from MQTT: queued for the device's next
    /// receive window. Returns the queue item id.
    pub fn enqueue(&mut self, dev_eui: DevEui, payload: &[u8]) -> Result<String, CommandError> {
        let r = self.enqueue_inner(dev_eui, payload);
        if let Err(e) = &r {
            match e {
                CommandError::QueueFull(_) => bump(&self.counters.queue_full),
                _ => bump(&self.counters.bad_commands),
            }
        }
        r
    }

    fn enqueue_inner(&mut self, dev_eui: DevEui, payload: &[u8]) -> Result<String, CommandError> {
        let cmd: DownCommand = serde_json::from_slice(payload).map_err(|e| CommandError::Json(e.to_string()))?;
        if let Some(e) = &cmd.dev_eui
            && DevEui::parse(e) != Some(dev_eui)
        {
            return Err(CommandError::WrongDevice(e.clone()));
        }
        let (fport, data) = match &cmd.object {
            Some(object) => self.encode_object(dev_eui, object, cmd.f_port)?,
            None => {
                let fport = cmd.f_port.ok_or_else(|| CommandError::Json("missing field `fPort`".into()))?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(cmd.data.as_bytes())
                    .map_err(|_| CommandError::Data)?;
                (fport, data)
            }
        };
        if !(1..=223).contains(&fport) {
            return Err(CommandError::Port(fport));
        }
        self.enqueue_checked(dev_eui, cmd.id, cmd.confirmed, fport, data)
    }

    /// `object` of a `command/down` through the device's script codec (`encodeDownlink`);
    /// the command's `fPort` wins over the codec's.
    fn encode_object(
        &self,
        dev_eui: DevEui,
        object: &serde_json::Value,
        fport: Option<u8>,
    ) -> Result<(u8, Vec<u8>), CommandError> {
        let dev = self.devices.get(&dev_eui).ok_or(CommandError::UnknownDevice(dev_eui))?;
        let crate::settings::PayloadCodec::Script(name) = &dev.settings.payload_codec else {
            return Err(CommandError::Codec(format!(
                "device {dev_eui} has payload_codec {:?}, not a [[payload_codec]] with encodeDownlink",
                dev.settings.payload_codec.as_str()
            )));
        };
        let (chosen, bytes) =
            self.settings.scripts.encode(name, object).map_err(|e| CommandError::Codec(e.join("; ")))?;
        let fport =
            fport.or(chosen).ok_or_else(|| CommandError::Codec("no fPort in the command or from the codec".into()))?;
        Ok((fport, bytes))
    }

    /// Queues an application payload for `dev_eui` (from MQTT `command/down` or the
    /// management API). Returns the queue item id (`id`, or a new UUID).
    pub fn enqueue_item(
        &mut self,
        dev_eui: DevEui,
        id: Option<String>,
        confirmed: bool,
        fport: u8,
        data: Vec<u8>,
    ) -> Result<String, CommandError> {
        let r = self.enqueue_checked(dev_eui, id, confirmed, fport, data);
        if let Err(CommandError::QueueFull(_)) = &r {
            bump(&self.counters.queue_full);
        }
        r
    }

    fn enqueue_checked(
        &mut self,
        dev_eui: DevEui,
        id: Option<String>,
        confirmed: bool,
        fport: u8,
        data: Vec<u8>,
    ) -> Result<String, CommandError> {
        if !(1..=223).contains(&fport) {
            return Err(CommandError::Port(fport));
        }
        if data.len() > crate::phy::MAX_DOWNLINK_PAYLOAD {
            return Err(CommandError::Data);
        }
        let max = self.settings.max_queue;
        let dev = self.devices.get_mut(&dev_eui).ok_or(CommandError::UnknownDevice(dev_eui))?;
        if dev.queue.len() >= max {
            return Err(CommandError::QueueFull(dev_eui));
        }
        let id = id.unwrap_or_else(events::uuid);
        dev.queue.push_back(QueueItem { id: id.clone(), confirmed, fport, data });
        Ok(id)
    }

    /// The gateway sent the frame of `tag` in `window`: `event/txack` (and, for a confirmed
    /// downlink, wait for the device's ACK).
    pub fn tx_sent(
        &mut self,
        wall: SystemTime,
        tag: TxTag,
        gateway: GatewayEui,
        window: &TxWindow,
        out: &mut Vec<Output>,
    ) {
        bump(&self.counters.downlinks);
        let Some(dev) = self.devices.get_mut(&tag.dev_eui) else { return };
        let (sf, bw) = window.datr.sf_bw().unwrap_or((0, 0));
        if let Some(item) = &tag.queue_item {
            let body = serde_json::json!({
                "downlinkId": tag.downlink_id,
                "time": events::rfc3339(wall),
                "deviceInfo": events::device_info(&dev.settings),
                "queueItemId": item.id,
                "fCntDown": tag.fcnt_down,
                "gatewayId": gateway.to_string(),
                "txInfo": {
                    "frequency": window.freq_hz,
                    "power": window.power,
                    "modulation": { "lora": { "bandwidth": bw * 1000, "spreadingFactor": sf, "codeRate": "CR_4_5", "polarizationInversion": true } },
                },
            });
            out.push(Output::Publish {
                dev_eui: tag.dev_eui,
                topic: events::event_topic(&dev.settings, "txack"),
                payload: body.to_string().into_bytes(),
            });
            if item.confirmed {
                dev.awaiting_ack = Some((item.clone(), tag.fcnt_down.unwrap_or(0)));
            }
        }
    }

    /// Every window of `tag` failed (TX_ACK errors, or no gateway with a downlink path): the
    /// application payload goes back to the head of the queue for the next uplink.
    pub fn tx_failed(&mut self, tag: TxTag) {
        bump(&self.counters.downlinks_failed);
        if let (Some(item), Some(dev)) = (tag.queue_item, self.devices.get_mut(&tag.dev_eui)) {
            dev.queue.push_front(item);
        }
    }

    /// An uplink of `dev_eui` (`what`: its summary) for the traces, with where it was heard.
    fn trace(&self, dev_eui: DevEui, what: std::fmt::Arguments<'_>, rx: &[(GatewayEui, Rxpk)], out: &mut Vec<Output>) {
        if !self.trace {
            return;
        }
        use std::fmt::Write as _;
        let mut text = what.to_string();
        for (g, r) in rx {
            let _ = write!(
                text,
                " [gateway={g} tmst={} freq={} datr={:?} rssi={} snr={}]",
                r.tmst,
                r.freq,
                r.datr,
                r.best_rssi(),
                r.best_snr()
            );
        }
        out.push(Output::Trace { dev_eui, gateway: rx.first().map(|(g, _)| *g), text });
    }

    fn persist(&self, dev_eui: DevEui, out: &mut Vec<Output>) {
        if let Some(d) = self.devices.get(&dev_eui) {
            match serde_json::to_vec(&d.state) {
                Ok(value) => out.push(Output::Persist { dev_eui, value }),
                Err(e) => tracing::error!(%dev_eui, "LoRaWAN device state not serializable: {e}"),
            }
        }
    }

    fn set_addr(&mut self, dev_eui: DevEui, old: Option<DevAddr>, new: DevAddr) {
        if let Some(old) = old
            && let Some(v) = self.by_addr.get_mut(&old)
        {
            v.retain(|e| *e != dev_eui);
            if v.is_empty() {
                self.by_addr.remove(&old);
            }
        }
        self.by_addr.entry(new).or_default().push(dev_eui);
    }
}
