//! Downlink transmission: PULL_RESP attempts through the gateway that heard the device,
//! one RX window after another while the gateway answers TX_ACK with an error, and the
//! outcome reported to its owner (the network server, or a gateway-bridge `event/ack`).

use std::collections::VecDeque;
use std::time::SystemTime;

use roost_core::trace::Direction;
use tokio::time::Instant;

use super::{Driver, TX_ACK_TIMEOUT, bump};
use crate::bridge;
use crate::ns::{Transmit, TxTag, TxWindow, events};
use crate::region::hz_to_mhz;
use crate::semtech::{GatewayEui, Modulation, Packet, TxAckError, Txpk};
use crate::settings::Marshaler;

pub(super) enum Owner {
    Ns { tag: TxTag, windows: Vec<TxWindow> },
    Bridge { downlink_id: u32, total: usize, statuses: Vec<&'static str> },
}

pub(super) struct PendingTx {
    gateway: GatewayEui,
    /// Attempts not yet made, in order.
    rest: VecDeque<Txpk>,
    /// Index of the attempt in flight.
    index: usize,
    owner: Owner,
    deadline: Instant,
}
impl Driver {
    fn token(&mut self) -> u16 {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token
    }

    /// Sends a network-server downlink through the best candidate gateway with a downlink path.
    pub(super) async fn transmit(&mut self, t: Transmit) {
        let Some((gateway, tmst)) =
            t.candidates.iter().copied().find(|(g, _)| self.gateways.get(g).is_some_and(|g| g.pull.is_some()))
        else {
            bump(&self.ctx.counters.tx_no_path);
            tracing::info!(dev_eui = %t.tag.dev_eui, "no gateway that heard the device has sent PULL_DATA: downlink dropped");
            if let Some(ns) = &mut self.ns {
                ns.tx_failed(t.tag);
            }
            return;
        };
        let tracer = self.ctx.broker.tracer();
        if tracer.is_active() {
            let kind = if t.tag.fcnt_down.is_none() { "JoinAccept" } else { "DataDown" };
            let item = t.tag.queue_item.as_ref();
            let peer = self.gateways.get(&gateway).map(|g| g.address);
            let summary = format_args!(
                "{kind} fcnt_down={:?} fport={:?} confirmed={} payload={}B phy={}B via gateway={gateway} uplink_tmst={tmst} windows={:?}",
                t.tag.fcnt_down,
                item.map(|i| i.fport),
                item.is_some_and(|i| i.confirmed),
                item.map_or(0, |i| i.data.len()),
                t.phy.len(),
                t.windows.iter().map(|w| (w.delay, w.freq_hz, &w.datr)).collect::<Vec<_>>(),
            );
            tracer.packet("lorawan", &format!("lorawan-{}", t.tag.dev_eui), peer, Direction::Out, None, &summary);
        }
        let data = events::b64(&t.phy);
        let rest: VecDeque<Txpk> = t
            .windows
            .iter()
            .map(|w| Txpk {
                imme: false,
                tmst: Some(tmst.wrapping_add(u32::try_from(w.delay.as_micros()).unwrap_or(u32::MAX))),
                tmms: None,
                freq: hz_to_mhz(w.freq_hz),
                rfch: 0,
                powe: Some(w.power),
                modu: Modulation::Lora,
                datr: w.datr.clone(),
                codr: Some("4/5".into()),
                fdev: None,
                ipol: true,
                prea: None,
                size: t.phy.len() as u16,
                data: data.clone(),
                ncrc: true,
            })
            .collect();
        self.start_tx(gateway, rest, Owner::Ns { tag: t.tag, windows: t.windows }).await;
    }

    /// Sends the first attempt of `rest` and tracks the rest for TX_ACK errors.
    pub(super) async fn start_tx(&mut self, gateway: GatewayEui, rest: VecDeque<Txpk>, owner: Owner) {
        let p = PendingTx { gateway, rest, index: 0, owner, deadline: Instant::now() + TX_ACK_TIMEOUT };
        self.next_attempt(p).await;
    }

    pub(super) async fn next_attempt(&mut self, mut p: PendingTx) {
        let Some(txpk) = p.rest.pop_front() else {
            self.tx_finished(p, None).await;
            return;
        };
        let Some(g) = self.gateways.get(&p.gateway) else {
            self.tx_finished(p, None).await;
            return;
        };
        let Some((socket, addr)) = g.pull else {
            self.tx_finished(p, None).await;
            return;
        };
        let version = g.version;
        if let Some(g) = self.gateways.get_mut(&p.gateway) {
            g.tx_frames += 1;
        }
        let token = self.token();
        bump(&self.ctx.counters.pull_resp);
        let resp = Packet::PullResp { version, token, txpk };
        self.trace_gateway(p.gateway, addr, Direction::Out, &resp);
        self.send(socket, addr, &resp).await;
        if version < 2 {
            // Protocol v1 has no TX_ACK: take it as sent.
            self.tx_finished(p, Some(true)).await;
            return;
        }
        p.deadline = Instant::now() + TX_ACK_TIMEOUT;
        self.pending.insert(token, p);
    }

    pub(super) async fn tx_ack(&mut self, token: u16, gateway: GatewayEui, error: Option<TxAckError>) {
        let Some(mut p) = self.pending.remove(&token) else {
            tracing::debug!(%gateway, token, "TX_ACK for no pending downlink");
            return;
        };
        if p.gateway != gateway {
            self.pending.insert(token, p);
            return;
        }
        if let Owner::Bridge { statuses, .. } = &mut p.owner {
            statuses.push(bridge::ack_status(error));
        }
        match error {
            None => {
                bump(&self.ctx.counters.tx_ack_ok);
                self.tx_finished(p, Some(true)).await;
            }
            Some(e) => {
                bump(&self.ctx.counters.tx_ack_errors);
                if let Some(g) = self.gateways.get_mut(&gateway) {
                    g.tx_errors += 1;
                }
                tracing::info!(%gateway, error = e.as_str(), "downlink refused by the gateway; trying the next window");
                p.index += 1;
                self.next_attempt(p).await;
            }
        }
    }

    /// A downlink is over: `Some(true)` sent in attempt `p.index`, otherwise failed.
    pub(super) async fn tx_finished(&mut self, p: PendingTx, sent: Option<bool>) {
        match p.owner {
            Owner::Ns { tag, windows } => {
                let Some(ns) = &mut self.ns else { return };
                match (sent, windows.get(p.index)) {
                    (Some(true), Some(w)) => ns.tx_sent(SystemTime::now(), tag, p.gateway, w, &mut self.out),
                    _ => ns.tx_failed(tag),
                }
                self.drain_outputs_boxed().await;
            }
            Owner::Bridge { downlink_id, total, mut statuses } => {
                if sent == Some(true) && statuses.len() <= p.index {
                    statuses.push("OK");
                }
                while statuses.len() < total {
                    statuses.push("IGNORED");
                }
                let topic = bridge::topic(&self.ctx.settings.bridge.topic_prefix, p.gateway, "event/ack");
                let body = match self.marshaler() {
                    Marshaler::Json => bridge::tx_ack(p.gateway, downlink_id, &statuses),
                    Marshaler::Protobuf => crate::gwpb::tx_ack(p.gateway, downlink_id, &statuses),
                };
                self.gateway_publish(p.gateway, topic, body, false).await;
            }
        }
    }

    fn drain_outputs_boxed(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.drain_outputs())
    }

    pub(super) async fn bridge_command(&mut self, gateway: GatewayEui, topic: &str, payload: &[u8]) {
        if topic.ends_with("/command/config") {
            tracing::info!(%gateway, "gateway bridge command/config: the Semtech UDP forwarder cannot be reconfigured remotely; ignored");
            return;
        }
        let frame = match self.marshaler() {
            Marshaler::Json => bridge::downlink_frame(payload),
            Marshaler::Protobuf => crate::gwpb::downlink_frame(payload),
        };
        match frame {
            Ok(f) if !f.items.is_empty() => {
                let owner = Owner::Bridge { downlink_id: f.downlink_id, total: f.items.len(), statuses: Vec::new() };
                self.start_tx(gateway, f.items.into(), owner).await;
            }
            Ok(_) => tracing::info!(%gateway, "gateway bridge DownlinkFrame without items ignored"),
            Err(e) => {
                bump(&self.ctx.counters.bad_commands);
                tracing::info!(%gateway, "{e}");
            }
        }
    }

    /// Fails the downlinks whose TX_ACK never came.
    pub(super) async fn expire_downlinks(&mut self, now: Instant) {
        let late: Vec<u16> = self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(t, _)| *t).collect();
        for token in late {
            if let Some(p) = self.pending.remove(&token) {
                bump(&self.ctx.counters.tx_ack_errors);
                if let Some(g) = self.gateways.get_mut(&p.gateway) {
                    g.tx_errors += 1;
                }
                self.tx_finished(p, None).await;
            }
        }
    }
}
