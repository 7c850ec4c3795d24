//! The running gateway: the broker, every protocol listener, and graceful shutdown
//! (a `CancellationToken` stops the listeners, the broker asks every connection to close,
//! a `TaskTracker` waits for them within the grace period).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use roost_core::Broker;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;

pub struct Gateway {
    broker: Broker,
    mqtt_addrs: Vec<SocketAddr>,
    mqttsn_addrs: Vec<SocketAddr>,
    mqttsn: Arc<roost_mqttsn::session::Context>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Starts the broker and binds every configured listener.
pub async fn start(settings: Settings) -> anyhow::Result<Gateway> {
    let broker = Broker::new(settings.broker.clone());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    let listeners = roost_mqtt::driver::bind(&settings.mqtt).await.context("starting the MQTT listener")?;
    let ctx = Arc::new(roost_mqtt::driver::Context {
        broker: broker.clone(),
        settings: settings.mqtt.clone(),
        permits: Arc::new(Semaphore::new(settings.broker.max_connections)),
    });
    let mut mqtt_addrs = Vec::new();
    for l in listeners {
        let addr = l.local_addr()?;
        tracing::info!(%addr, "MQTT listening");
        mqtt_addrs.push(addr);
        tracker.spawn(roost_mqtt::driver::serve(l, ctx.clone(), shutdown.clone(), tracker.clone()));
    }

    let sockets = roost_mqttsn::driver::bind(&settings.mqttsn.bind, settings.mqttsn.recv_buffer).context("starting the MQTT-SN listener")?;
    let sn_ctx = roost_mqttsn::session::Context::new(broker.clone(), settings.mqttsn.clone());
    let mut mqttsn_addrs = Vec::new();
    for socket in sockets {
        let addr = socket.local_addr()?;
        tracing::info!(%addr, "MQTT-SN listening (udp)");
        mqttsn_addrs.push(addr);
        tracker.spawn(roost_mqttsn::driver::serve(socket, sn_ctx.clone(), shutdown.clone(), tracker.clone()));
    }
    Ok(Gateway { broker, mqtt_addrs, mqttsn_addrs, mqttsn: sn_ctx, shutdown, tracker })
}

impl Gateway {
    /// The bound MQTT addresses (with the real port where the config said 0).
    pub fn mqtt_addrs(&self) -> &[SocketAddr] {
        &self.mqtt_addrs
    }

    /// The bound MQTT-SN (UDP) addresses.
    pub fn mqttsn_addrs(&self) -> &[SocketAddr] {
        &self.mqttsn_addrs
    }

    /// The MQTT-SN adapter's wire-level counters (malformed datagrams, retransmissions, ...).
    pub fn mqttsn_counters(&self) -> &roost_mqttsn::session::Counters {
        &self.mqttsn.counters
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Stops accepting, tells every client the server is shutting down (MQTT 5 DISCONNECT
    /// 0x8B), and waits up to `grace` for the connections to finish.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.broker.shutdown();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            tracing::warn!(open = self.broker.connection_count(), "shutdown grace period over; closing the rest");
        }
    }
}
