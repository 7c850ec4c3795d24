//! The running gateway: the broker, every protocol listener, and graceful shutdown
//! (a `CancellationToken` stops the listeners, the broker asks every connection to close,
//! a `TaskTracker` waits for them within the grace period).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use roost_codec::Registry;
use roost_core::Broker;
use roost_core::auth::{Authenticator, Authorizer};
use roost_core::hooks::Hook;
use roost_core::store::{DiskStore, NullStore, Store};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;

pub struct Gateway {
    broker: Broker,
    mqtt_addrs: Vec<SocketAddr>,
    /// Every MQTT listener (TCP, TLS, WebSocket, secure WebSocket) and its bound address.
    mqtt_listeners: Vec<(roost_mqtt::transport::Kind, SocketAddr)>,
    /// `[[codec]]` listener name -> bound address, in config order.
    codec_addrs: Vec<(String, SocketAddr)>,
    mqttsn_addrs: Vec<SocketAddr>,
    http_addrs: Vec<SocketAddr>,
    mqttsn: Arc<roost_mqttsn::session::Context>,
    coap_addrs: Vec<SocketAddr>,
    coaps_addrs: Vec<SocketAddr>,
    dtls_counters: Arc<roost_coap::dtls::DtlsCounters>,
    coap: Arc<roost_coap::session::Context>,
    lorawan_addrs: Vec<SocketAddr>,
    lorawan: Arc<roost_lorawan::driver::Context>,
    lwm2m_addrs: Vec<SocketAddr>,
    lwm2ms_addrs: Vec<SocketAddr>,
    lwm2m: Arc<roost_lwm2m::server::driver::Context>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    bridges: Vec<(String, std::sync::Arc<parking_lot::Mutex<roost_bridge::BridgeStatus>>)>,
    api_keys: Vec<String>,
    webhooks: Arc<Vec<crate::webhook::Webhook>>,
    cluster: Option<roost_cluster::Cluster>,
}

/// Starts the broker and binds every configured listener, with the codecs that ship with
/// Roost.
pub async fn start(settings: Settings) -> anyhow::Result<Gateway> {
    Gateway::builder(settings).start().await
}

/// Starts the gateway with the codecs of `codecs` (a user's own, registered in their
/// `main`); `[[codec]]` listeners name them.
pub async fn start_with(settings: Settings, codecs: Registry) -> anyhow::Result<Gateway> {
    Gateway::builder(settings).codecs(codecs).start().await
}

/// A gateway with non-default parts: custom codecs, authentication or ACL.
pub struct Builder {
    settings: Settings,
    codecs: Registry,
    authenticator: Option<Box<dyn Authenticator>>,
    authorizer: Option<Box<dyn Authorizer>>,
    hooks: Vec<Arc<dyn Hook>>,
    api_routes: Vec<axum::Router>,
}

impl Builder {
    /// Adds routes to the management API: merged under `/api/v1`, behind its key check.
    /// This is how a protocol crate publishes its own endpoints (LwM2M devices, LoRaWAN
    /// devices and gateways): it builds an `axum::Router` with its state already applied.
    pub fn api_routes(mut self, routes: axum::Router) -> Self {
        self.api_routes.push(routes);
        self
    }

    /// The codecs `[[codec]]` listeners may name (default: those that ship with Roost).
    pub fn codecs(mut self, codecs: Registry) -> Self {
        self.codecs = codecs;
        self
    }

    /// Replaces `[auth] allow_anonymous` with this authenticator.
    pub fn authenticator(mut self, a: Box<dyn Authenticator>) -> Self {
        self.authenticator = Some(a);
        self
    }

    /// Replaces the allow-all ACL with this authorizer.
    pub fn authorizer(mut self, a: Box<dyn Authorizer>) -> Self {
        self.authorizer = Some(a);
        self
    }

    /// Adds a hook: told of every connect, disconnect, publish and subscription.
    pub fn hook(mut self, hook: Arc<dyn Hook>) -> Self {
        self.hooks.push(hook);
        self
    }

    pub async fn start(self) -> anyhow::Result<Gateway> {
        let Builder { settings, codecs, authenticator, authorizer, hooks, api_routes } = self;
        // Codecs first: a misnamed codec or bad options is a config error, found before
        // any port is bound.
        let mut codec_listeners = Vec::new();
        for (i, c) in settings.codecs.iter().enumerate() {
            let factory = codecs.build(&c.codec, &c.options).map_err(|e| match e {
                roost_codec::registry::RegistryError::Unknown { .. } => anyhow::anyhow!("codec[{i}].codec: {e}"),
                roost_codec::registry::RegistryError::Options(e) => anyhow::anyhow!("codec[{i}].options: {e}"),
            })?;
            codec_listeners.push((c.clone(), factory));
        }

        // Bind first: a taken port fails fast, before the store file is locked.
        // TLS files and the auth sources are read before any port is bound, too.
        let tls = match &settings.mqtt.tls {
            Some(t) => Some(roost_mqtt::transport::acceptor(t).map_err(|e| anyhow::anyhow!("mqtt.tls: {e}"))?),
            None => None,
        };
        let authenticator = match authenticator {
            Some(a) => Some(a),
            None => crate::security::authenticator(&settings)?,
        };
        let authorizer = authorizer.or_else(|| settings.acl.clone().map(|a| Box::new(a) as Box<dyn Authorizer>));
        let listeners = roost_mqtt::driver::bind_all(&settings.mqtt).await.context("starting the MQTT listeners")?;
        let http_listeners = crate::http::bind(&settings.http_bind).await?;
        let sockets = roost_mqttsn::driver::bind(&settings.mqttsn.bind, settings.mqttsn.recv_buffer)
            .context("starting the MQTT-SN listener")?;
        let coap_sockets = roost_coap::driver::bind(&settings.coap.bind, settings.coap.recv_buffer)
            .context("starting the CoAP listener")?;
        let coaps_sockets = roost_coap::driver::bind(&settings.coap.dtls.bind, settings.coap.recv_buffer)
            .context("starting the CoAP DTLS listener")?;
        let lwm2m_sockets = roost_lwm2m::server::driver::bind(&settings.lwm2m.bind, settings.lwm2m.recv_buffer)
            .context("starting the LwM2M listener")?;
        let lwm2ms_sockets = roost_lwm2m::server::driver::bind(&settings.lwm2m.dtls_bind, settings.lwm2m.recv_buffer)
            .context("starting the LwM2M DTLS listener")?;
        // One DTLS backend (credentials from [coap]) for CoAP's and LwM2M's DTLS sockets.
        let dtls_backend: Option<Arc<dyn roost_coap::dtls::Backend>> = if coaps_sockets.is_empty()
            && lwm2ms_sockets.is_empty()
        {
            None
        } else {
            let b = roost_coap::dtls::openssl::OpensslBackend::new(&settings.coap.dtls).map_err(|e| {
                anyhow::anyhow!("starting the DTLS listeners (coap.dtls_bind, lwm2m.dtls_bind; credentials from [[coap.psk]] or coap.dtls_cert_file): {e}")
            })?;
            Some(Arc::new(b))
        };
        let lorawan_sockets = roost_lorawan::driver::bind(&settings.lorawan.bind, settings.lorawan.recv_buffer)
            .context("starting the LoRaWAN packet-forwarder listener")?;
        let store: Arc<dyn Store> = if settings.storage.disk {
            let path = settings.storage.file();
            let (sync, max) = (settings.storage.sync, settings.storage.max_size);
            let store = tokio::task::spawn_blocking(move || DiskStore::open_limited(&path, sync, max)).await??;
            tracing::info!(file = %store.path().display(), ?sync, "store opened");
            Arc::new(store)
        } else {
            Arc::new(NullStore)
        };
        let started = std::time::Instant::now();
        let mut builder = Broker::builder(settings.broker.clone()).store(store);
        if let Some(a) = authenticator {
            builder = builder.authenticator(a);
        }
        if let Some(a) = authorizer {
            builder = builder.authorizer(a);
        }
        for h in hooks {
            builder = builder.hook(h);
        }
        let sys = settings.sys_interval.map(|interval| {
            let (hook, events) = crate::sys::hook();
            (interval, hook, events)
        });
        if let Some((_, hook, _)) = &sys {
            builder = builder.hook(hook.clone());
        }
        let mut webhooks = Vec::new();
        let mut webhook_queues = Vec::new();
        for w in &settings.webhooks {
            let (hook, webhook, rx) = crate::webhook::hook(&settings.broker.node_name, w.clone());
            builder = builder.hook(hook);
            webhooks.push(webhook);
            webhook_queues.push(rx);
        }
        let webhooks = Arc::new(webhooks);
        let api_keys = if settings.http_bind.is_empty() {
            Vec::new()
        } else {
            crate::api::keys::load(&settings.api_keys, &settings.storage.data_dir, settings.storage.disk)
                .context("http.api_keys")?
        };
        let broker = builder.build().context("restoring state from the store (see `roost store check`)")?;
        if settings.storage.disk {
            tracing::info!(elapsed = ?started.elapsed(), sessions = broker.session_count(), retained = broker.retained_count(), "state restored");
        }
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        // Joined before any listener accepts: routes and client ids are cluster-wide from
        // the first client on.
        let cluster = match &settings.cluster {
            Some(c) => {
                let mut c = c.clone();
                c.addresses = listeners
                    .iter()
                    .filter_map(|(k, l)| l.local_addr().ok().map(|a| format!("{}://{a}", k.as_str())))
                    .chain(http_listeners.iter().filter_map(|l| l.local_addr().ok().map(|a| format!("http://{a}"))))
                    .collect();
                let joined = roost_cluster::Cluster::start(c, broker.clone(), shutdown.clone(), &tracker).await;
                Some(joined.context("joining the cluster ([cluster])")?)
            }
            None => None,
        };

        let ctx = Arc::new(roost_mqtt::driver::Context {
            broker: broker.clone(),
            settings: settings.mqtt.clone(),
            permits: Arc::new(Semaphore::new(settings.broker.max_connections)),
            tls,
        });
        let mut mqtt_addrs = Vec::new();
        let mut mqtt_listeners = Vec::new();
        for (kind, l) in listeners {
            let addr = l.local_addr()?;
            tracing::info!(%addr, transport = kind.as_str(), "MQTT listening");
            if kind == roost_mqtt::transport::Kind::Tcp {
                mqtt_addrs.push(addr);
            }
            mqtt_listeners.push((kind, addr));
            tracker.spawn(roost_mqtt::driver::serve_kind(l, kind, ctx.clone(), shutdown.clone(), tracker.clone()));
        }

        let mut codec_addrs = Vec::new();
        for (settings, factory) in codec_listeners {
            let name = settings.name.clone();
            let (codec, transport) = (settings.codec.clone(), settings.transport);
            let listener = Arc::new(roost_codec::session::Listener {
                broker: broker.clone(),
                protocol_name: settings.codec.as_str().into(),
                settings,
                factory,
            });
            let addr = roost_codec::driver::start(listener, shutdown.clone(), tracker.clone()).await?;
            tracing::info!(listener = %name, %codec, %transport, %addr, "codec listening");
            codec_addrs.push((name, addr));
        }
        for (w, rx) in webhooks.iter().zip(webhook_queues) {
            crate::webhook::spawn(w.clone(), rx, shutdown.clone(), &tracker);
        }
        let coap_ctx = roost_coap::session::Context::new(broker.clone(), settings.coap.clone());
        let dtls_counters = Arc::new(roost_coap::dtls::DtlsCounters::default());
        let lorawan = roost_lorawan::driver::Context::new(broker.clone(), settings.lorawan.clone());
        // Resource types from the object definitions: the built-in ones, plus `xml_dir`.
        let objects = match &settings.lwm2m.xml_dir {
            Some(dir) => {
                roost_lwm2m::objects::Registry::with_dir(dir).map_err(|e| anyhow::anyhow!("lwm2m.xml_dir: {e}"))?
            }
            None => roost_lwm2m::objects::Registry::builtin(),
        };
        let kind_of: roost_lwm2m::server::engine::KindOf =
            Arc::new(move |p: &roost_lwm2m::types::Path| objects.kind(p));
        let lwm2m = roost_lwm2m::server::driver::Context::new(broker.clone(), settings.lwm2m.clone(), kind_of);
        let mut http_addrs = Vec::new();
        if !http_listeners.is_empty() {
            let api = crate::api::ApiState {
                broker: broker.clone(),
                keys: Arc::new(api_keys.clone()),
                node: settings.broker.node_name.clone(),
                started: std::time::Instant::now(),
                trace_dir: settings.storage.data_dir.join("trace"),
                webhooks: webhooks.clone(),
            };
            let adapters = crate::http::AdapterCounters {
                coap: coap_ctx.clone(),
                dtls: dtls_counters.clone(),
                lorawan: lorawan.clone(),
                lwm2m: lwm2m.clone(),
                cluster: cluster.clone(),
            };
            let mut api_routes = api_routes;
            api_routes.push(crate::api::lorawan::routes(lorawan.clone()));
            api_routes.push(crate::api::lwm2m::routes(lwm2m.clone()));
            api_routes.push(crate::api::cluster::routes(cluster.clone()));
            let app = crate::http::app(api, api_routes, adapters);
            for l in http_listeners {
                let addr = l.local_addr()?;
                tracing::info!(%addr, "HTTP listening (/metrics, /api/v1, /)");
                http_addrs.push(addr);
                crate::http::serve(l, app.clone(), shutdown.clone(), &tracker);
            }
        }
        let mut bridges = Vec::new();
        for b in &settings.bridges {
            tracing::info!(bridge = %b.name, upstream = %b.address, "bridge starting");
            let status = roost_bridge::spawn(b.clone(), broker.clone(), shutdown.clone(), &tracker);
            bridges.push((b.name.clone(), status));
        }
        if let Some((interval, hook, events)) = sys {
            let publisher = crate::sys::SysPublisher {
                broker: broker.clone(),
                node: settings.broker.node_name.clone(),
                interval,
                hook,
                events,
                bridges: bridges.clone(),
                cluster: cluster.clone(),
            };
            crate::sys::spawn(publisher, shutdown.clone(), &tracker);
        }
        let sn_ctx = roost_mqttsn::session::Context::new(broker.clone(), settings.mqttsn.clone());
        let mut mqttsn_addrs = Vec::new();
        for socket in sockets {
            let addr = socket.local_addr()?;
            tracing::info!(%addr, "MQTT-SN listening (udp)");
            mqttsn_addrs.push(addr);
            tracker.spawn(roost_mqttsn::driver::serve(socket, sn_ctx.clone(), shutdown.clone(), tracker.clone()));
        }
        let mut coap_addrs = Vec::new();
        for socket in coap_sockets {
            let addr = socket.local_addr()?;
            tracing::info!(%addr, "CoAP listening (udp)");
            coap_addrs.push(addr);
            tracker.spawn(roost_coap::driver::serve(socket, coap_ctx.clone(), shutdown.clone(), tracker.clone()));
        }
        let mut coaps_addrs = Vec::new();
        if let Some(backend) = &dtls_backend {
            for socket in coaps_sockets {
                let addr = socket.local_addr()?;
                tracing::info!(%addr, "CoAP listening (dtls)");
                coaps_addrs.push(addr);
                tracker.spawn(roost_coap::dtls::serve(
                    socket,
                    coap_ctx.clone(),
                    backend.clone(),
                    dtls_counters.clone(),
                    shutdown.clone(),
                    tracker.clone(),
                ));
            }
        }
        let mut lorawan_addrs = Vec::new();
        for socket in &lorawan_sockets {
            let addr = socket.local_addr()?;
            tracing::info!(%addr, mode = ?settings.lorawan.mode, "LoRaWAN packet forwarders listening (udp)");
            lorawan_addrs.push(addr);
        }
        let mut lwm2m_addrs = Vec::new();
        for socket in lwm2m_sockets {
            let addr = socket.local_addr()?;
            tracing::info!(%addr, "LwM2M listening (udp)");
            lwm2m_addrs.push(addr);
            tracker.spawn(roost_lwm2m::server::driver::serve(socket, lwm2m.clone(), shutdown.clone(), tracker.clone()));
        }
        let mut lwm2ms_addrs = Vec::new();
        if let Some(backend) = &dtls_backend {
            for socket in lwm2ms_sockets {
                let addr = socket.local_addr()?;
                tracing::info!(%addr, "LwM2M listening (dtls)");
                lwm2ms_addrs.push(addr);
                // The DTLS dispatcher decrypts; the LwM2M driver sees plain datagrams.
                let (app_tx, app_rx) = tokio::sync::mpsc::channel(1024);
                let (out_tx, out_rx) = tokio::sync::mpsc::channel(1024);
                let dtls = settings.coap.dtls.clone();
                tracker.spawn(roost_coap::dtls::serve_channels(
                    socket,
                    dtls,
                    backend.clone(),
                    dtls_counters.clone(),
                    app_tx,
                    out_rx,
                    shutdown.clone(),
                    tracker.clone(),
                ));
                let transport = roost_lwm2m::server::driver::Transport::Dtls { rx: app_rx, tx: out_tx };
                tracker.spawn(roost_lwm2m::server::driver::serve_transport(
                    transport,
                    lwm2m.clone(),
                    shutdown.clone(),
                    tracker.clone(),
                ));
            }
        }
        if !lorawan_sockets.is_empty() {
            tracker.spawn(roost_lorawan::driver::serve(
                lorawan_sockets,
                lorawan.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        Ok(Gateway {
            broker,
            mqtt_addrs,
            mqtt_listeners,
            mqttsn_addrs,
            mqttsn: sn_ctx,
            coap_addrs,
            coaps_addrs,
            dtls_counters,
            coap: coap_ctx,
            lorawan_addrs,
            lorawan,
            lwm2m_addrs,
            lwm2ms_addrs,
            lwm2m,
            codec_addrs,
            http_addrs,
            bridges,
            shutdown,
            tracker,
            api_keys,
            webhooks,
            cluster,
        })
    }
}

impl Gateway {
    /// A gateway to start with non-default parts; [`start`] is `Gateway::builder(s).start()`.
    pub fn builder(settings: Settings) -> Builder {
        Builder {
            settings,
            codecs: Registry::default(),
            authenticator: None,
            authorizer: None,
            hooks: Vec::new(),
            api_routes: Vec::new(),
        }
    }

    /// The bound address of the `[[codec]]` listener named `name` (with the real port where
    /// the config said 0).
    pub fn codec_addr(&self, name: &str) -> Option<SocketAddr> {
        self.codec_addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Every `[[codec]]` listener's name and bound address, in config order.
    pub fn codec_addrs(&self) -> &[(String, SocketAddr)] {
        &self.codec_addrs
    }

    /// The state of the bridge named `name`.
    pub fn bridge_status(&self, name: &str) -> Option<roost_bridge::BridgeStatus> {
        self.bridges.iter().find(|(n, _)| n == name).map(|(_, s)| s.lock().clone())
    }

    /// A key the management API accepts (the first configured or the generated one);
    /// `None` without an HTTP listener.
    pub fn api_key(&self) -> Option<&str> {
        self.api_keys.first().map(String::as_str)
    }

    /// The `[[webhook]]`s with their counters, in config order.
    pub fn webhooks(&self) -> &[crate::webhook::Webhook] {
        &self.webhooks
    }

    /// The bound HTTP (`/metrics`) addresses.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// The bound MQTT addresses (with the real port where the config said 0).
    pub fn mqtt_addrs(&self) -> &[SocketAddr] {
        &self.mqtt_addrs
    }

    /// The bound addresses of the MQTT listeners of one transport (`Kind::Tls`, `Kind::Ws`, ...).
    pub fn mqtt_addrs_of(&self, kind: roost_mqtt::transport::Kind) -> Vec<SocketAddr> {
        self.mqtt_listeners.iter().filter(|(k, _)| *k == kind).map(|(_, a)| *a).collect()
    }

    /// The bound MQTT-SN (UDP) addresses.
    pub fn mqttsn_addrs(&self) -> &[SocketAddr] {
        &self.mqttsn_addrs
    }

    /// The MQTT-SN adapter's wire-level counters (malformed datagrams, retransmissions, ...).
    pub fn mqttsn_counters(&self) -> &roost_mqttsn::session::Counters {
        &self.mqttsn.counters
    }

    /// The bound CoAP (UDP) addresses.
    pub fn coap_addrs(&self) -> &[SocketAddr] {
        &self.coap_addrs
    }

    /// The CoAP adapter's wire-level counters (malformed datagrams, duplicates, observers, ...).
    pub fn coap_counters(&self) -> &roost_coap::session::Counters {
        &self.coap.counters
    }

    /// The bound CoAP-over-DTLS addresses.
    pub fn coaps_addrs(&self) -> &[SocketAddr] {
        &self.coaps_addrs
    }

    /// DTLS handshake and peer counters.
    pub fn dtls_counters(&self) -> &roost_coap::dtls::DtlsCounters {
        &self.dtls_counters
    }

    /// The bound LwM2M registration-interface (UDP) addresses.
    pub fn lwm2m_addrs(&self) -> &[SocketAddr] {
        &self.lwm2m_addrs
    }

    /// The bound LwM2M-over-DTLS addresses.
    pub fn lwm2ms_addrs(&self) -> &[SocketAddr] {
        &self.lwm2ms_addrs
    }

    /// The LwM2M adapter's counters (registrations, commands, timeouts, ...).
    pub fn lwm2m_counters(&self) -> &roost_lwm2m::server::Counters {
        &self.lwm2m.counters
    }

    /// The bound LoRaWAN packet-forwarder (UDP) addresses.
    pub fn lorawan_addrs(&self) -> &[SocketAddr] {
        &self.lorawan_addrs
    }

    /// The LoRaWAN adapter's counters (malformed datagrams, MIC failures, replays, ...).
    pub fn lorawan_counters(&self) -> &roost_lorawan::driver::Counters {
        &self.lorawan.counters
    }

    /// This node's cluster, if `[cluster]` is configured.
    pub fn cluster(&self) -> Option<&roost_cluster::Cluster> {
        self.cluster.as_ref()
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
        let broker = self.broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.close_store()).await;
    }
}
