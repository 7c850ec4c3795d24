//! MQTT 3.1.1/5 over TCP, TLS, WebSocket and secure WebSocket (`[mqtt]`).

use std::sync::Arc;

use roost_adapter::{Adapter, Context, Error, Listener, Running};
use roost_mqtt::settings::{LiveLimits, MqttSettings};
use roost_mqtt::transport::Kind;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Settings;

pub struct MqttAdapter {
    settings: MqttSettings,
    max_connections: usize,
    tls: Option<roost_mqtt::transport::TlsSwitch>,
    limits: Arc<LiveLimits>,
    bound: Vec<(Kind, TcpListener)>,
}

impl MqttAdapter {
    /// Reads the TLS files now: a bad certificate is a config error, found before binding.
    pub fn new(settings: &Settings) -> anyhow::Result<MqttAdapter> {
        let tls = match &settings.mqtt.tls {
            Some(t) => Some(roost_mqtt::transport::TlsSwitch::new(
                roost_mqtt::transport::acceptor(t).map_err(|e| anyhow::anyhow!("mqtt.tls: {e}"))?,
            )),
            None => None,
        };
        Ok(MqttAdapter {
            settings: settings.mqtt.clone(),
            max_connections: settings.broker.max_connections,
            tls,
            limits: Arc::new(LiveLimits::new(settings.mqtt.limits)),
            bound: Vec::new(),
        })
    }

    /// The TLS listeners' acceptor, which a reload replaces (`None` without `[mqtt.tls]`).
    pub fn tls(&self) -> Option<roost_mqtt::transport::TlsSwitch> {
        self.tls.clone()
    }

    /// The listener limits in force, whose rates a reload replaces.
    pub fn limits(&self) -> Arc<LiveLimits> {
        self.limits.clone()
    }
}

#[async_trait::async_trait]
impl Adapter for MqttAdapter {
    fn name(&self) -> &str {
        "mqtt"
    }

    async fn bind(&mut self) -> Result<(), Error> {
        self.bound =
            roost_mqtt::driver::bind_all(&self.settings).await.map_err(|e| super::bind_error("MQTT listeners", e))?;
        Ok(())
    }

    async fn start(self: Box<Self>, ctx: Context) -> Result<Running, Error> {
        let MqttAdapter { settings, max_connections, tls, limits, bound } = *self;
        let driver = Arc::new(roost_mqtt::driver::Context {
            broker: ctx.broker.clone(),
            settings,
            permits: Arc::new(Semaphore::new(max_connections)),
            limits,
            tls,
        });
        let mut listeners = Vec::new();
        for (kind, l) in bound {
            let addr = l.local_addr()?;
            tracing::info!(%addr, transport = kind.as_str(), "MQTT listening");
            listeners.push(Listener::new("mqtt", kind.as_str(), addr));
            let (shutdown, tracker) = (ctx.shutdown.clone(), ctx.tracker.clone());
            ctx.tracker.spawn(roost_mqtt::driver::serve_kind(l, kind, driver.clone(), shutdown, tracker));
        }
        Ok(Running { listeners, ..Default::default() })
    }
}
