//! MQTT-SN 1.2 over UDP (`[mqttsn]`), with its wire-level counters.

use std::sync::Arc;

use roost_adapter::metrics::load;
use roost_adapter::{Adapter, Context, Error, Family, Listener, Running};
use roost_mqttsn::session::Context as SnContext;
use roost_mqttsn::settings::MqttSnSettings;
use tokio::net::UdpSocket;

pub struct MqttSnAdapter {
    settings: MqttSnSettings,
    sockets: Vec<UdpSocket>,
}

impl MqttSnAdapter {
    pub fn new(settings: MqttSnSettings) -> MqttSnAdapter {
        MqttSnAdapter { settings, sockets: Vec::new() }
    }
}

#[async_trait::async_trait]
impl Adapter for MqttSnAdapter {
    fn name(&self) -> &str {
        "mqttsn"
    }

    async fn bind(&mut self) -> Result<(), Error> {
        self.sockets = roost_mqttsn::driver::bind(&self.settings.bind, self.settings.recv_buffer)
            .map_err(|e| super::bind_error("MQTT-SN listener", e))?;
        Ok(())
    }

    async fn start(self: Box<Self>, ctx: Context) -> Result<Running, Error> {
        let sn = SnContext::new(ctx.broker.clone(), self.settings);
        let mut listeners = Vec::new();
        for socket in self.sockets {
            let addr = socket.local_addr()?;
            tracing::info!(%addr, "MQTT-SN listening (udp)");
            listeners.push(Listener::new("mqttsn", "udp", addr));
            ctx.tracker.spawn(roost_mqttsn::driver::serve(
                socket,
                sn.clone(),
                ctx.shutdown.clone(),
                ctx.tracker.clone(),
            ));
        }
        Ok(Running { listeners, metrics: metrics(&sn), state: Some(sn), routes: None })
    }
}

fn metrics(sn: &Arc<SnContext>) -> Vec<Family> {
    let (a, b) = (sn.clone(), sn.clone());
    vec![
        Family::gauge("mqttsn_clients", "MQTT-SN clients with a session now", move || load(&a.counters.clients)),
        Family::counters("mqttsn_events", "MQTT-SN wire-level events, by kind", "event", move || {
            let c = &b.counters;
            vec![
                ("malformed", load(&c.malformed)),
                ("unexpected", load(&c.unexpected)),
                ("retransmit", load(&c.retransmits)),
                ("lost", load(&c.lost)),
                ("topic_drop", load(&c.topic_drops)),
                ("qos_minus_one", load(&c.qos_minus_one)),
                ("client_refused", load(&c.rejected_clients)),
                ("busy_drop", load(&c.busy_drops)),
            ]
        }),
    ]
}
