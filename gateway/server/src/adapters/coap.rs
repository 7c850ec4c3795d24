//! CoAP over UDP and DTLS (`[coap]`), with the message-layer and DTLS counters. The DTLS
//! backend (credentials from `[coap]`) is shared with LwM2M's DTLS listener.

use std::sync::Arc;

use roost_adapter::metrics::load;
use roost_adapter::{Adapter, Context, Error, Family, Listener, Running};
use roost_coap::dtls::{Backend, DtlsCounters};
use roost_coap::settings::CoapSettings;
use tokio::net::UdpSocket;

use crate::config::Settings;
use crate::reload::switch::{Switch, SwitchDtls};

/// One DTLS backend and one set of DTLS counters for CoAP's and LwM2M's DTLS sockets.
pub struct SharedDtls {
    /// `None` when no DTLS listener is configured.
    pub backend: Option<Arc<dyn Backend>>,
    /// What `backend` serves, which a reload replaces.
    pub switch: Option<Arc<Switch<dyn Backend>>>,
    pub counters: Arc<DtlsCounters>,
}

impl SharedDtls {
    /// Loads the credentials when a DTLS listener is configured: a bad key file is a config
    /// error, found before binding.
    pub fn new(settings: &Settings) -> anyhow::Result<SharedDtls> {
        let switch = if settings.coap.dtls.bind.is_empty() && settings.lwm2m.dtls_bind.is_empty() {
            None
        } else {
            Some(Switch::new(openssl_backend(settings)?))
        };
        let backend = switch.clone().map(|s| Arc::new(SwitchDtls(s)) as Arc<dyn Backend>);
        Ok(SharedDtls { backend, switch, counters: Arc::default() })
    }
}

#[cfg(feature = "dtls")]
fn openssl_backend(settings: &Settings) -> anyhow::Result<Arc<dyn Backend>> {
    let b = roost_coap::dtls::openssl::OpensslBackend::new(&settings.coap.dtls).map_err(|e| {
        anyhow::anyhow!("starting the DTLS listeners (coap.dtls_bind, lwm2m.dtls_bind; credentials from [[coap.psk]] or coap.dtls_cert_file): {e}")
    })?;
    Ok(Arc::new(b))
}

#[cfg(not(feature = "dtls"))]
fn openssl_backend(_settings: &Settings) -> anyhow::Result<Arc<dyn Backend>> {
    anyhow::bail!("coap.dtls_bind, lwm2m.dtls_bind: this roost was built without DTLS (cargo feature `dtls`)")
}

pub struct CoapAdapter {
    settings: CoapSettings,
    dtls: Arc<SharedDtls>,
    sockets: Vec<UdpSocket>,
    dtls_sockets: Vec<UdpSocket>,
}

impl CoapAdapter {
    pub fn new(settings: CoapSettings, dtls: Arc<SharedDtls>) -> CoapAdapter {
        CoapAdapter { settings, dtls, sockets: Vec::new(), dtls_sockets: Vec::new() }
    }
}

#[async_trait::async_trait]
impl Adapter for CoapAdapter {
    fn name(&self) -> &str {
        "coap"
    }

    async fn bind(&mut self) -> Result<(), Error> {
        let s = &self.settings;
        self.sockets =
            roost_coap::driver::bind(&s.bind, s.recv_buffer).map_err(|e| super::bind_error("CoAP listener", e))?;
        self.dtls_sockets = roost_coap::driver::bind(&s.dtls.bind, s.recv_buffer)
            .map_err(|e| super::bind_error("CoAP DTLS listener", e))?;
        Ok(())
    }

    async fn start(self: Box<Self>, ctx: Context) -> Result<Running, Error> {
        let coap = roost_coap::session::Context::new(ctx.broker.clone(), self.settings);
        let mut listeners = Vec::new();
        for socket in self.sockets {
            let addr = socket.local_addr()?;
            tracing::info!(%addr, "CoAP listening (udp)");
            listeners.push(Listener::new("coap", "udp", addr));
            ctx.tracker.spawn(roost_coap::driver::serve(
                roost_core::datagram::Endpoint::udp(socket, roost_coap::codec::MAX_DATAGRAM),
                coap.clone(),
                ctx.shutdown.clone(),
                ctx.tracker.clone(),
            ));
        }
        if let Some(backend) = &self.dtls.backend {
            for socket in self.dtls_sockets {
                let addr = socket.local_addr()?;
                tracing::info!(%addr, "CoAP listening (dtls)");
                listeners.push(Listener::new("coap", "dtls", addr));
                ctx.tracker.spawn(roost_coap::dtls::serve(
                    socket,
                    coap.clone(),
                    backend.clone(),
                    self.dtls.counters.clone(),
                    ctx.shutdown.clone(),
                    ctx.tracker.clone(),
                ));
            }
        }
        let mut metrics = coap_metrics(&coap);
        metrics.extend(dtls_metrics(&self.dtls.counters));
        let routes = Some(crate::api::coap::routes(coap.clone()));
        Ok(Running { listeners, metrics, state: Some(Arc::new(CoapState { coap, dtls: self.dtls })), routes })
    }
}

/// What tests and tools read of a running CoAP adapter.
pub struct CoapState {
    pub coap: Arc<roost_coap::session::Context>,
    pub dtls: Arc<SharedDtls>,
}

fn coap_metrics(coap: &Arc<roost_coap::session::Context>) -> Vec<Family> {
    let (a, b, c) = (coap.clone(), coap.clone(), coap.clone());
    vec![
        Family::gauge("coap_sessions", "CoAP devices known now", move || load(&a.counters.sessions)),
        Family::gauge("coap_observers", "CoAP observations now", move || load(&b.counters.observers)),
        Family::counters("coap_events", "CoAP message-layer events, by kind", "event", move || {
            let c = &c.counters;
            vec![
                ("malformed", load(&c.malformed)),
                ("duplicate", load(&c.duplicates)),
                ("retransmit", load(&c.retransmits)),
                ("notification_dropped", load(&c.notify_dropped)),
                ("observer_lost", load(&c.observers_lost)),
                ("session_refused", load(&c.rejected_sessions)),
                ("busy_drop", load(&c.busy_drops)),
                ("unauthorized", load(&c.unauthorized)),
            ]
        }),
    ]
}

fn dtls_metrics(d: &Arc<DtlsCounters>) -> Vec<Family> {
    let (a, b, c, e) = (d.clone(), d.clone(), d.clone(), d.clone());
    vec![
        Family::gauge("dtls_peers", "DTLS peers now", move || load(&a.peers)),
        Family::counters("dtls_handshakes", "DTLS handshakes, by result", "result", move || {
            vec![
                ("ok", load(&b.handshakes_ok)),
                ("failed", load(&b.handshakes_failed)),
                ("timed_out", load(&b.handshakes_timed_out)),
                ("refused", load(&b.refused)),
            ]
        }),
        Family::counters(
            "dtls_client_hellos",
            "ClientHellos answered statelessly with a cookie, or dropped for a bad or expired one",
            "outcome",
            move || vec![("hello_verify_sent", load(&c.hello_verify_sent)), ("bad_cookie", load(&c.bad_cookies))],
        ),
        Family::counter(
            "dtls_dropped_datagrams",
            "Datagrams on a DTLS socket that were not DTLS records, or for no peer",
            move || load(&e.dropped),
        ),
    ]
}
