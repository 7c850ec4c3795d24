//! The gateway table: a packet forwarder is admitted (and connected to the core as
//! `lorawan-gw-{eui}`) on its first datagram and dropped when silent; in bridge mode it also
//! gets its command subscriptions, a forwarding task and a retained `state/conn`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use roost_core::{Connection, DisconnectReason, Message, QoS, SubOptions, Will};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Driver, Event, bump, connect_request, forward, publish};
use crate::bridge;
use crate::semtech::{GatewayEui, Stat};
use crate::settings::Mode;

pub(super) struct Gateway {
    pub(super) conn: Option<Arc<Connection>>,
    /// Ends the task forwarding the gateway's commands (bridge mode) when it is dropped.
    pub(super) stop: CancellationToken,
    /// Where PULL_RESP goes: the address of the last PULL_DATA (never PUSH_DATA's).
    pub(super) pull: Option<(usize, SocketAddr)>,
    /// Where its last datagram came from.
    pub(super) address: SocketAddr,
    pub(super) version: u8,
    pub(super) last_seen: Instant,
    pub(super) rx_frames: u64,
    pub(super) tx_frames: u64,
    pub(super) tx_errors: u64,
    pub(super) stat: Option<Stat>,
}

impl Driver {
    /// Marks `eui` as seen, connecting it to the core the first time. False if it is not
    /// admitted (gateway limit, refused by authentication).
    pub(super) async fn touch(&mut self, eui: GatewayEui, version: u8, from: SocketAddr) -> bool {
        let now = Instant::now();
        if let Some(g) = self.gateways.get_mut(&eui) {
            g.last_seen = now;
            g.version = version;
            g.address = from;
            return true;
        }
        if self.gateways.len() >= self.ctx.settings.max_gateways {
            bump(&self.ctx.counters.gateways_refused);
            roost_core::peer_log!(WARN, "lorawan.max_gateways", from, gateway = %eui, peer = %from, "LoRaWAN gateway dropped: lorawan.max_gateways reached");
            return false;
        }
        let bridge = self.ctx.settings.mode == Mode::Bridge;
        let prefix = &self.ctx.settings.bridge.topic_prefix;
        let will = bridge.then(|| Will {
            message: Message::new(
                bridge::topic(prefix, eui, "state/conn"),
                self.conn_state(eui, false),
                QoS::AtMostOnce,
                true,
            ),
            delay: Duration::ZERO,
        });
        let conn = match self.ctx.broker.connect(connect_request(format!("lorawan-gw-{eui}"), Some(from), will)).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                bump(&self.ctx.counters.gateways_refused);
                roost_core::peer_log!(WARN, "lorawan.gateway_refused", from, gateway = %eui, peer = %from, "LoRaWAN gateway refused by the broker: {e}");
                return false;
            }
        };
        roost_core::peer_log!(INFO, "lorawan.gateway_connected", from, gateway = %eui, peer = %from, "LoRaWAN gateway connected");
        let stop = self.shutdown.child_token();
        if bridge {
            for kind in ["command/down", "command/config"] {
                let topic = bridge::topic(prefix, eui, kind);
                if let Err(e) = conn.subscribe(&topic, SubOptions::default()).await {
                    tracing::warn!(gateway = %eui, %topic, "gateway bridge subscription refused: {e}");
                }
            }
            let events = self.events.clone();
            self.tracker.spawn(forward(
                conn.clone(),
                stop.clone(),
                move |topic, payload| Event::GatewayCommand { gateway: eui, topic, payload },
                events,
            ));
            let topic = bridge::topic(prefix, eui, "state/conn");
            publish(&conn, topic, self.conn_state(eui, true), true).await;
        }
        let g = Gateway {
            conn: Some(conn),
            stop,
            pull: None,
            address: from,
            version,
            last_seen: now,
            rx_frames: 0,
            tx_frames: 0,
            tx_errors: 0,
            stat: None,
        };
        self.gateways.insert(eui, g);
        self.ctx.counters.gateways.fetch_add(1, Relaxed);
        true
    }

    pub(super) async fn drop_gateway(&mut self, eui: GatewayEui) {
        let Some(g) = self.gateways.remove(&eui) else { return };
        g.stop.cancel();
        self.ctx.counters.gateways.fetch_sub(1, Relaxed);
        if let Some(conn) = g.conn {
            if self.ctx.settings.mode == Mode::Bridge {
                let topic = bridge::topic(&self.ctx.settings.bridge.topic_prefix, eui, "state/conn");
                publish(&conn, topic, self.conn_state(eui, false), true).await;
            }
            conn.disconnect(DisconnectReason::Normal).await;
        }
    }
}
