//! The driver's side of the management seam ([`crate::manage`]): answers the HTTP API from
//! the gateway table and the device registry it owns, and applies device creations,
//! deletions and queued downlinks as it would an MQTT command.

use std::time::SystemTime;

use bytes::Bytes;
use roost_core::DisconnectReason;

use super::{DEVICE_SPACE, Driver, STORE_SPACE};
use crate::manage::{Command, DeviceView, GatewayView, MAX_DEVICES, ManageError};
use crate::ns::Device;
use crate::settings::{Activation, DeviceSettings, Mode};
use crate::types::DevEui;

fn device_view(d: &Device) -> DeviceView {
    let s = d.state.session.as_ref();
    let (activation, join_eui) = match &d.settings.activation {
        Activation::Abp { .. } => ("abp", None),
        Activation::Otaa { join_eui, .. } => ("otaa", *join_eui),
    };
    DeviceView {
        dev_eui: d.settings.dev_eui,
        name: d.settings.name.clone(),
        application_id: d.settings.application_id.clone(),
        activation,
        join_eui,
        payload_codec: d.settings.payload_codec.clone(),
        origin: d.origin,
        class: "A",
        dev_addr: s.map(|s| s.dev_addr),
        fcnt_up: s.and_then(|s| s.fcnt_up),
        fcnt_down: s.map(|s| s.fcnt_down),
        last_seen: d.last_seen,
        queued: d.queue.len(),
    }
}

impl Driver {
    pub(super) async fn manage(&mut self, cmd: Command) {
        // A caller that gave up has dropped its receiver: nothing to tell it.
        match cmd {
            Command::Gateways(reply) => {
                let _ = reply.send(Ok(self.gateway_views()));
            }
            Command::Devices(reply) => {
                let r = self.registry().map(|ns| {
                    let mut v: Vec<DeviceView> = ns.device_euis().map(device_view).collect();
                    v.sort_by_key(|d| d.dev_eui);
                    v
                });
                let _ = reply.send(r);
            }
            Command::Device(eui, reply) => {
                let r = self.registry().and_then(|ns| {
                    ns.device(eui).map(device_view).ok_or(ManageError::Device(crate::ns::DeviceError::Unknown(eui)))
                });
                let _ = reply.send(r);
            }
            Command::Create(settings, reply) => {
                let r = self.create_device(settings).await;
                let _ = reply.send(r);
            }
            Command::Delete(eui, reply) => {
                let r = self.delete_device(eui).await;
                let _ = reply.send(r);
            }
            Command::Enqueue(eui, d, reply) => {
                let r = match self.ns.as_mut() {
                    Some(ns) => ns.enqueue_item(eui, None, d.confirmed, d.fport, d.data).map_err(ManageError::from),
                    None => Err(self.no_registry()),
                };
                if let Ok(id) = &r {
                    tracing::debug!(dev_eui = %eui, id, "LoRaWAN downlink queued through the API");
                }
                let _ = reply.send(r);
            }
        }
    }

    fn no_registry(&self) -> ManageError {
        if self.ctx.settings.mode == Mode::Bridge { ManageError::BridgeMode } else { ManageError::NotRunning }
    }

    fn registry(&self) -> Result<&crate::ns::NetworkServer, ManageError> {
        self.ns.as_ref().ok_or_else(|| self.no_registry())
    }

    fn gateway_views(&self) -> Vec<GatewayView> {
        let now = tokio::time::Instant::now();
        let wall = SystemTime::now();
        let mut v: Vec<GatewayView> = self
            .gateways
            .iter()
            .map(|(eui, g)| GatewayView {
                gateway_id: *eui,
                pull_address: g.pull.map(|(_, a)| a),
                address: g.address,
                protocol_version: g.version,
                last_seen: wall.checked_sub(now.duration_since(g.last_seen)).unwrap_or(wall),
                rx_frames: g.rx_frames,
                tx_frames: g.tx_frames,
                tx_errors: g.tx_errors,
                stat: g.stat.clone(),
            })
            .collect();
        v.sort_by_key(|g| g.gateway_id.0);
        v
    }

    async fn create_device(&mut self, settings: DeviceSettings) -> Result<(DeviceView, u64), ManageError> {
        let eui = settings.dev_eui;
        let stored = serde_json::to_vec(&settings)
            .map_err(|e| ManageError::Refused(eui, format!("settings not serializable: {e}")))?;
        let missing = self.no_registry();
        let ns = self.ns.as_mut().ok_or(missing)?;
        if ns.device(eui).is_some() {
            return Err(crate::ns::DeviceError::Exists(eui).into());
        }
        if ns.device_count() >= MAX_DEVICES {
            return Err(ManageError::TooManyDevices);
        }
        self.connect_device(&settings).await?;
        let Some(ns) = self.ns.as_mut() else { return Err(ManageError::NotRunning) };
        if let Err(e) = ns.add_device(settings, &mut self.out) {
            self.unlink(eui).await;
            return Err(e.into());
        }
        let ticket = self.ctx.broker.record_blob(DEVICE_SPACE, eui.to_string(), Some(Bytes::from(stored)));
        let view = ns.device(eui).map(device_view);
        self.drain_outputs().await;
        tracing::info!(dev_eui = %eui, "LoRaWAN device created through the API");
        view.map(|v| (v, ticket)).ok_or(ManageError::NotRunning)
    }

    async fn delete_device(&mut self, eui: DevEui) -> Result<u64, ManageError> {
        let missing = self.no_registry();
        let ns = self.ns.as_mut().ok_or(missing)?;
        ns.remove_device(eui)?;
        self.unlink(eui).await;
        // A state change not flushed yet must not write the device back.
        self.dirty.remove(&eui);
        self.ctx.broker.record_blob(STORE_SPACE, eui.to_string(), None);
        let ticket = self.ctx.broker.record_blob(DEVICE_SPACE, eui.to_string(), None);
        tracing::info!(dev_eui = %eui, "LoRaWAN device deleted through the API");
        Ok(ticket)
    }

    /// Ends a device's core connection and its command forwarding.
    async fn unlink(&mut self, eui: DevEui) {
        if let Some(link) = self.devices.remove(&eui) {
            link.stop.cancel();
            link.conn.disconnect(DisconnectReason::Normal).await;
        }
    }
}
