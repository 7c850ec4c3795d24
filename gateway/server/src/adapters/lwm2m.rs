//! LwM2M registration interface over UDP and DTLS (`[lwm2m]`; DTLS credentials from
//! `[coap]`), with its counters and the `/api/v1/lwm2m` routes.

use std::sync::Arc;

use roost_adapter::metrics::load;
use roost_adapter::{Adapter, Context, Error, Family, Listener, Running};
use roost_coap::dtls::DtlsSettings;
use roost_core::datagram::Endpoint;
use roost_lwm2m::server::Lwm2mSettings;
use roost_lwm2m::server::driver as lwm2m_driver;
use roost_lwm2m::server::engine::KindOf;
use tokio::net::UdpSocket;

use super::coap::SharedDtls;
use crate::config::Settings;

pub struct Lwm2mAdapter {
    settings: Lwm2mSettings,
    dtls_settings: DtlsSettings,
    dtls: Arc<SharedDtls>,
    kind_of: KindOf,
    sockets: Vec<UdpSocket>,
    dtls_sockets: Vec<UdpSocket>,
}

impl Lwm2mAdapter {
    /// Reads the object definitions now (the built-in ones, plus `xml_dir`): a bad file is a
    /// config error.
    pub fn new(settings: &Settings, dtls: Arc<SharedDtls>) -> anyhow::Result<Lwm2mAdapter> {
        let objects = match &settings.lwm2m.xml_dir {
            Some(dir) => {
                roost_lwm2m::objects::Registry::with_dir(dir).map_err(|e| anyhow::anyhow!("lwm2m.xml_dir: {e}"))?
            }
            None => roost_lwm2m::objects::Registry::builtin(),
        };
        let kind_of: KindOf = Arc::new(move |p: &roost_lwm2m::types::Path| objects.kind(p));
        Ok(Lwm2mAdapter {
            settings: settings.lwm2m.clone(),
            dtls_settings: settings.coap.dtls.clone(),
            dtls,
            kind_of,
            sockets: Vec::new(),
            dtls_sockets: Vec::new(),
        })
    }
}

#[async_trait::async_trait]
impl Adapter for Lwm2mAdapter {
    fn name(&self) -> &str {
        "lwm2m"
    }

    async fn bind(&mut self) -> Result<(), Error> {
        let s = &self.settings;
        self.sockets =
            lwm2m_driver::bind(&s.bind, s.recv_buffer).map_err(|e| super::bind_error("LwM2M listener", e))?;
        self.dtls_sockets =
            lwm2m_driver::bind(&s.dtls_bind, s.recv_buffer).map_err(|e| super::bind_error("LwM2M DTLS listener", e))?;
        Ok(())
    }

    async fn start(self: Box<Self>, ctx: Context) -> Result<Running, Error> {
        let Lwm2mAdapter { settings, dtls_settings, dtls, kind_of, sockets, dtls_sockets } = *self;
        let lwm2m = lwm2m_driver::Context::new(ctx.broker.clone(), settings, kind_of);
        let mut listeners = Vec::new();
        for socket in sockets {
            let addr = socket.local_addr()?;
            tracing::info!(%addr, "LwM2M listening (udp)");
            listeners.push(Listener::new("lwm2m", "udp", addr));
            let endpoint = Endpoint::udp(socket, roost_coap::codec::MAX_DATAGRAM);
            ctx.tracker.spawn(lwm2m_driver::serve(endpoint, lwm2m.clone(), ctx.shutdown.clone(), ctx.tracker.clone()));
        }
        if let Some(backend) = &dtls.backend {
            for socket in dtls_sockets {
                let addr = socket.local_addr()?;
                tracing::info!(%addr, "LwM2M listening (dtls)");
                listeners.push(Listener::new("lwm2m", "dtls", addr));
                // The DTLS dispatcher decrypts; the LwM2M driver sees plain datagrams.
                let (app_tx, app_rx) = tokio::sync::mpsc::channel(1024);
                let (out_tx, out_rx) = tokio::sync::mpsc::channel(1024);
                ctx.tracker.spawn(roost_coap::dtls::serve_channels(
                    socket,
                    dtls_settings.clone(),
                    backend.clone(),
                    dtls.counters.clone(),
                    app_tx,
                    out_rx,
                    ctx.shutdown.clone(),
                    ctx.tracker.clone(),
                ));
                let endpoint = Endpoint::secured(app_rx, out_tx);
                let (shutdown, tracker) = (ctx.shutdown.clone(), ctx.tracker.clone());
                ctx.tracker.spawn(lwm2m_driver::serve(endpoint, lwm2m.clone(), shutdown, tracker));
            }
        }
        Ok(Running {
            listeners,
            metrics: metrics(&lwm2m),
            routes: Some(crate::api::lwm2m::routes(lwm2m.clone())),
            state: Some(lwm2m),
        })
    }
}

fn metrics(ctx: &Arc<lwm2m_driver::Context>) -> Vec<Family> {
    let (a, b, c, d) = (ctx.clone(), ctx.clone(), ctx.clone(), ctx.clone());
    vec![
        Family::gauge("lwm2m_devices", "LwM2M devices registered now", move || load(&a.counters.devices)),
        Family::counters(
            "lwm2m_registration_events",
            "LwM2M registration interface events, by kind",
            "event",
            move || {
                let w = &b.counters;
                vec![
                    ("register", load(&w.registrations)),
                    ("update", load(&w.updates)),
                    ("deregister", load(&w.deregistrations)),
                    ("expired", load(&w.expired)),
                    ("refused", load(&w.refused)),
                ]
            },
        ),
        Family::counters(
            "lwm2m_commands",
            "Commands to LwM2M devices (from MQTT or the API), by outcome",
            "outcome",
            move || {
                let w = &c.counters;
                vec![
                    ("sent", load(&w.commands)),
                    ("bad", load(&w.bad_commands)),
                    ("timeout", load(&w.timeouts)),
                    ("reset", load(&w.resets)),
                    ("queued", load(&w.queued)),
                    ("queue_full", load(&w.queue_full)),
                ]
            },
        ),
        Family::counters("lwm2m_datagrams", "LwM2M datagrams and notifications, by kind", "kind", move || {
            let w = &d.counters;
            vec![
                ("notification", load(&w.notifications)),
                ("stale_notification", load(&w.stale_notifications)),
                ("send", load(&w.sends)),
                ("bad_send", load(&w.bad_sends)),
                ("duplicate", load(&w.duplicates)),
                ("malformed", load(&w.malformed)),
            ]
        }),
    ]
}
