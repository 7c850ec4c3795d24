//! The running gateway: the broker, every adapter (protocol listeners), the HTTP listener,
//! bridges and `$SYS`, and graceful shutdown (a `CancellationToken` stops the listeners, the
//! broker asks every connection to close, a `TaskTracker` waits for them within the grace
//! period).
//!
//! Start order: every adapter binds (a taken port fails fast, before the store file is
//! locked), the store opens and the broker restores, then every adapter starts and is
//! entered in the [`AdapterRegistry`] that `/metrics`, `$SYS` and the API read.

mod accessors;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use roost_adapter::{Adapter, AdapterRegistry, Factory};
use roost_codec::Registry;
use roost_core::Broker;
use roost_core::auth::{Authenticator, Authorizer};
use roost_core::hooks::Hook;
use roost_core::store::{DiskStore, NullStore, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;

pub struct Gateway {
    broker: Broker,
    adapters: Arc<AdapterRegistry>,
    http_addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    bridges: crate::reload::parts::BridgeStatuses,
    reloader: Arc<crate::reload::Reloader>,
    api_keys: Vec<String>,
    webhooks: Arc<Vec<crate::webhook::Webhook>>,
    cluster: Option<roost_cluster::Cluster>,
    #[cfg(feature = "codec")]
    plugins: Arc<roost_plugins::Plugins>,
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

/// A gateway with non-default parts: custom codecs, adapters, authentication or ACL.
pub struct Builder {
    settings: Settings,
    codecs: Registry,
    factories: Vec<Box<dyn Factory>>,
    authenticator: Option<Box<dyn Authenticator>>,
    authorizer: Option<Box<dyn Authorizer>>,
    hooks: Vec<Arc<dyn Hook>>,
    api_routes: Vec<axum::Router>,
    config_file: Option<std::path::PathBuf>,
}

impl Builder {
    /// The file the settings came from: a reload (SIGHUP, `roost ctl reload`) reads it again.
    pub fn config_file(mut self, file: Option<std::path::PathBuf>) -> Self {
        self.config_file = file;
        self
    }

    /// Adds routes to the management API: merged under `/api/v1`, behind its key check.
    pub fn api_routes(mut self, routes: axum::Router) -> Self {
        self.api_routes.push(routes);
        self
    }

    /// The codecs `[[codec]]` listeners may name (default: those that ship with Roost).
    pub fn codecs(mut self, codecs: Registry) -> Self {
        self.codecs = codecs;
        self
    }

    /// Registers a third-party protocol adapter: built from `[adapter.NAME]` when the config
    /// has that section (see [`roost_adapter::factory`] and `docs/adding-a-protocol.md`).
    pub fn adapter(mut self, factory: Box<dyn Factory>) -> Self {
        self.factories.push(factory);
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
        let reloader = crate::reload::Reloader::new(self.config_file.clone(), self.settings.clone());
        let (configured, mut api_routes) = self.configure(&reloader)?;
        let Configured {
            settings,
            mut adapters,
            auth,
            auth_metrics,
            hooks,
            #[cfg(feature = "codec")]
            plugins,
        } = configured;
        for a in &mut adapters {
            let name = a.name().to_string();
            a.bind().await.map_err(|e| anyhow::anyhow!("adapter {name}: {e}"))?;
        }
        #[cfg(feature = "http")]
        let http_listeners = crate::http::bind(&settings.http_bind).await?;
        #[cfg(not(feature = "http"))]
        if !settings.http_bind.is_empty() {
            tracing::warn!("http.bind: this roost was built without HTTP (cargo feature `http`): no API, no /metrics");
        }
        let store = open_store(&settings).await?;
        let GatewayHooks { broker, sys, webhooks, webhook_queues, rules } =
            build_broker(&settings, store, auth, hooks, &reloader)?;
        api_routes.push(crate::reload::routes(reloader.clone()));
        let api_keys = api_keys(&settings)?;
        let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
        let ctx =
            roost_adapter::Context { broker: broker.clone(), shutdown: shutdown.clone(), tracker: tracker.clone() };
        // Joined before any adapter accepts: routes and client ids are cluster-wide from the
        // first client on.
        let cluster = join_cluster(&settings, &ctx).await?;
        rules.start(roost_rules::action::Env {
            broker: broker.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        });
        let (mut registry, mut api_routes) = start_adapters(adapters, ctx.clone(), api_routes).await?;
        if let Some(m) = auth_metrics {
            // Not an adapter, but its counters belong where /metrics, $SYS and the API look.
            registry.add("auth", crate::security::running(m))?;
        }
        api_routes.push(roost_rules::api::routes(rules.clone()));
        let registry = Arc::new(registry);
        api_routes.push(crate::api::cluster::routes(cluster.clone()));
        api_routes.push(crate::api::config::routes(settings.effective.clone()));
        for (w, rx) in webhooks.iter().zip(webhook_queues) {
            crate::webhook::spawn(w.clone(), rx, shutdown.clone(), &tracker);
        }
        #[allow(unused_mut)] // filled only with the `http` feature
        let mut http_addrs = Vec::new();
        #[cfg(feature = "http")]
        if !http_listeners.is_empty() {
            let api = crate::api::ApiState {
                broker: broker.clone(),
                keys: Arc::new(api_keys.clone()),
                node: settings.broker.node_name.clone(),
                started: std::time::Instant::now(),
                trace_dir: settings.storage.data_dir.join("trace"),
                webhooks: webhooks.clone(),
                rules: rules.clone(),
                adapters: registry.clone(),
                cluster: cluster.clone(),
                #[cfg(feature = "codec")]
                plugins: plugins.clone(),
            };
            #[cfg(feature = "codec")]
            api_routes.push(crate::plugins::routes(plugins.clone()));
            let app = crate::http::app(api, std::mem::take(&mut api_routes));
            http_addrs = serve_http(http_listeners, app, &shutdown, &tracker)?;
        }
        let bridges = Arc::new(crate::reload::parts::BridgesPart::start(&settings, &broker, &shutdown, &tracker));
        reloader.add(Arc::new(bridges.clone()));
        let bridges = bridges.statuses.clone();
        if let Some(sys) = sys {
            spawn_sys(sys, &settings, &ctx, &bridges, &registry, &cluster);
        }
        if let Some(c) = &cluster {
            c.set_addresses(addresses(&registry, &http_addrs));
        }
        Ok(Gateway {
            broker,
            adapters: registry,
            http_addrs,
            bridges,
            shutdown,
            tracker,
            api_keys,
            webhooks,
            #[cfg(feature = "codec")]
            plugins,
            cluster,
            reloader,
        })
    }
}

/// What the config describes, built before any port is bound (a misnamed codec, bad TLS
/// files or an unclaimed `[adapter.*]` section is a config error, found first).
struct Configured {
    /// The settings, with the LoRaWAN network server's payload scripts filled in.
    settings: Settings,
    adapters: Vec<Box<dyn Adapter>>,
    auth: (Box<dyn Authenticator>, Box<dyn Authorizer>),
    auth_metrics: crate::reload::parts::AuthMetrics,
    /// The builder's hooks, and the payload codecs' one.
    hooks: Vec<Arc<dyn Hook>>,
    #[cfg(feature = "codec")]
    plugins: Arc<roost_plugins::Plugins>,
}

impl Builder {
    /// Builds the adapters (built-in and third-party), the plugins and the authentication,
    /// and registers what a reload may change with `reloader`. Returns them with the
    /// builder's API routes.
    fn configure(self, reloader: &crate::reload::Reloader) -> anyhow::Result<(Configured, Vec<axum::Router>)> {
        #[allow(unused_mut)] // codecs: changed only with the `codec` feature (plugins)
        let Builder { settings, mut codecs, factories, authenticator, authorizer, hooks, api_routes, config_file: _ } =
            self;
        #[cfg(feature = "codec")]
        let (plugins, payload_codecs) = crate::plugins::setup(&mut codecs, &settings.payload_codecs)?;
        #[cfg(feature = "codec")]
        let settings = {
            let mut settings = settings;
            settings.lorawan.network_server.scripts = roost_lorawan::settings::Scripts(Some(Arc::new(
                crate::plugins::LorawanScripts(payload_codecs.clone()),
            )));
            settings
        };
        let (mut adapters, live) = crate::adapters::builtin(&settings, &codecs)?;
        adapters.extend(third_party(&settings, &factories)?);
        let (authenticator, authorizer, auth_metrics) =
            reloadable_auth(&settings, reloader, authenticator, authorizer)?;
        register_live(reloader, live);
        #[cfg(feature = "codec")]
        crate::reload::register_plugins(reloader, &plugins);
        #[cfg(feature = "codec")]
        let hooks: Vec<_> = hooks.into_iter().chain(payload_codecs.hook()).collect();
        let configured = Configured {
            settings,
            adapters,
            auth: (authenticator, authorizer),
            auth_metrics,
            hooks,
            #[cfg(feature = "codec")]
            plugins,
        };
        Ok((configured, api_routes))
    }
}

/// The broker, with the hooks the gateway itself adds to the builder's: `$SYS`, the
/// `[[webhook]]`s and the rules engine.
struct GatewayHooks {
    broker: Broker,
    /// The `$SYS` interval, hook and event queue (`None`: `$SYS` is off).
    sys: Option<(Duration, (Arc<crate::sys::SysHook>, SysEvents))>,
    webhooks: Arc<Vec<crate::webhook::Webhook>>,
    /// Each webhook's queue, for its sender task.
    webhook_queues: Vec<mpsc::Receiver<serde_json::Value>>,
    rules: Arc<roost_rules::Engine>,
}

type SysEvents = mpsc::Receiver<(String, String)>;

/// Builds the broker on `store` (restoring what it holds) with `hooks` and the gateway's own.
fn build_broker(
    settings: &Settings,
    store: Arc<dyn Store>,
    (authenticator, authorizer): (Box<dyn Authenticator>, Box<dyn Authorizer>),
    hooks: Vec<Arc<dyn Hook>>,
    reloader: &crate::reload::Reloader,
) -> anyhow::Result<GatewayHooks> {
    let started = std::time::Instant::now();
    let mut builder =
        Broker::builder(settings.broker.clone()).store(store).authenticator(authenticator).authorizer(authorizer);
    for h in hooks {
        builder = builder.hook(h);
    }
    let sys = settings.sys_interval.map(|interval| (interval, crate::sys::hook()));
    if let Some((_, (hook, _))) = &sys {
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
    let rules = roost_rules::Engine::new(&settings.broker.node_name, settings.rules.clone());
    builder = builder.hook(rules.hook());
    reloader.add(Arc::new(crate::reload::parts::RulesPart(rules.clone())));
    let broker = builder.build().context("restoring state from the store (see `roost store check`)")?;
    if settings.storage.disk {
        tracing::info!(elapsed = ?started.elapsed(), sessions = broker.session_count(), retained = broker.retained_count(), "state restored");
    }
    Ok(GatewayHooks { broker, sys, webhooks: Arc::new(webhooks), webhook_queues, rules })
}

/// Serves `app` (`/metrics`, the API, the web page) on every HTTP listener; returns their
/// addresses.
#[cfg(feature = "http")]
fn serve_http(
    listeners: Vec<tokio::net::TcpListener>,
    app: axum::Router,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for l in listeners {
        let addr = l.local_addr()?;
        tracing::info!(%addr, "HTTP listening (/metrics, /api/v1, /)");
        addrs.push(addr);
        crate::http::serve(l, app.clone(), shutdown.clone(), tracker);
    }
    Ok(addrs)
}

/// Publishes `$SYS` every `sys.0` (and the events `sys.1` hears) until shutdown.
fn spawn_sys(
    (interval, (hook, events)): (Duration, (Arc<crate::sys::SysHook>, SysEvents)),
    settings: &Settings,
    ctx: &roost_adapter::Context,
    bridges: &crate::reload::parts::BridgeStatuses,
    registry: &Arc<AdapterRegistry>,
    cluster: &Option<roost_cluster::Cluster>,
) {
    let publisher = crate::sys::SysPublisher {
        broker: ctx.broker.clone(),
        node: settings.broker.node_name.clone(),
        interval,
        hook,
        events,
        bridges: bridges.clone(),
        adapters: registry.clone(),
        cluster: cluster.clone(),
    };
    crate::sys::spawn(publisher, ctx.shutdown.clone(), &ctx.tracker);
}

/// Joins the cluster `[cluster]` configures, if any.
async fn join_cluster(
    settings: &Settings,
    ctx: &roost_adapter::Context,
) -> anyhow::Result<Option<roost_cluster::Cluster>> {
    let Some(c) = &settings.cluster else { return Ok(None) };
    let joined = roost_cluster::Cluster::start(c.clone(), ctx.broker.clone(), ctx.shutdown.clone(), &ctx.tracker).await;
    Ok(Some(joined.context("joining the cluster ([cluster])")?))
}

/// This node's addresses as the cluster shows them: every adapter listener as
/// `{adapter}/{transport}://{addr}`, then the HTTP listeners.
fn addresses(registry: &AdapterRegistry, http_addrs: &[SocketAddr]) -> Vec<String> {
    let mut addresses: Vec<String> = registry
        .entries()
        .iter()
        .flat_map(|e| e.listeners.iter().map(move |l| format!("{}/{}://{}", e.name, l.transport, l.addr)))
        .collect();
    addresses.extend(http_addrs.iter().map(|a| format!("http://{a}")));
    addresses
}

/// The keys the management API accepts (none without an HTTP listener).
fn api_keys(settings: &Settings) -> anyhow::Result<Vec<String>> {
    if settings.http_bind.is_empty() {
        return Ok(Vec::new());
    }
    crate::api::keys::load(&settings.api_keys, &settings.storage.data_dir, settings.storage.disk)
        .context("http.api_keys")
}

type BrokerAuth = (Box<dyn Authenticator>, Box<dyn Authorizer>, crate::reload::parts::AuthMetrics);

/// The broker's authenticator and authorizer: the builder's own if given (a reload leaves
/// those alone), else `[auth]` and `[acl]` behind switches a reload replaces; and the
/// counters of the database sources the start-up `[auth]` names.
fn reloadable_auth(
    settings: &Settings,
    reloader: &crate::reload::Reloader,
    authenticator: Option<Box<dyn Authenticator>>,
    authorizer: Option<Box<dyn Authorizer>>,
) -> anyhow::Result<BrokerAuth> {
    use crate::reload::parts::{AclPart, AuthPart};
    use crate::reload::switch::{Switch, SwitchAuthenticator, SwitchAuthorizer};
    let (authenticator, metrics) = match authenticator {
        Some(a) => (a, None),
        None => {
            let (a, metrics) = crate::reload::parts::authenticator(settings)?;
            let switch = Switch::new(a);
            reloader.add(Arc::new(AuthPart(switch.clone())));
            (Box::new(SwitchAuthenticator(switch)) as Box<dyn Authenticator>, metrics)
        }
    };
    let authorizer = match authorizer {
        Some(a) => a,
        None => {
            let switch = Switch::new(crate::reload::parts::authorizer(settings));
            reloader.add(Arc::new(AclPart(switch.clone())));
            Box::new(SwitchAuthorizer(switch))
        }
    };
    Ok((authenticator, authorizer, metrics))
}

/// The built-in adapters' reloadable parts (TLS, DTLS) and the log level.
fn register_live(reloader: &crate::reload::Reloader, live: crate::adapters::Live) {
    use crate::reload::parts;
    if let Some(tls) = live.tls {
        reloader.add(Arc::new(parts::TlsPart(tls)));
    }
    #[cfg(feature = "dtls")]
    if let Some(dtls) = live.dtls {
        reloader.add(Arc::new(parts::DtlsPart(dtls)));
    }
    reloader.add(Arc::new(parts::LogPart));
}

/// The adapters of the `[adapter.NAME]` sections, each built by the factory of that name.
fn third_party(settings: &Settings, factories: &[Box<dyn Factory>]) -> anyhow::Result<Vec<Box<dyn Adapter>>> {
    let mut out = Vec::new();
    for (name, section) in &settings.adapters {
        let Some(f) = factories.iter().find(|f| f.name() == name) else {
            let known: Vec<&str> = factories.iter().map(|f| f.name()).collect();
            anyhow::bail!("adapter.{name}: no adapter of that name is registered (registered: {known:?})");
        };
        out.push(f.build(section.0.clone()).map_err(|e| anyhow::anyhow!("adapter.{name}: {e}"))?);
    }
    Ok(out)
}

/// Starts every bound adapter, in order, and enters it in the registry; returns the
/// registry and the API routes (the builder's and the adapters').
async fn start_adapters(
    adapters: Vec<Box<dyn Adapter>>,
    ctx: roost_adapter::Context,
    mut routes: Vec<axum::Router>,
) -> anyhow::Result<(AdapterRegistry, Vec<axum::Router>)> {
    let mut registry = AdapterRegistry::default();
    for a in adapters {
        let name = a.name().to_string();
        let running = a.start(ctx.clone()).await.map_err(|e| anyhow::anyhow!("adapter {name}: {e}"))?;
        routes.extend(registry.add(&name, running)?);
    }
    Ok((registry, routes))
}

/// The durable store (`[storage] backend = "disk"`), or none.
async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    if !settings.storage.disk {
        return Ok(Arc::new(NullStore));
    }
    let path = settings.storage.file();
    let (sync, max) = (settings.storage.sync, settings.storage.max_size);
    let store = tokio::task::spawn_blocking(move || DiskStore::open_limited(&path, sync, max)).await??;
    tracing::info!(file = %store.path().display(), ?sync, "store opened");
    Ok(Arc::new(store))
}

impl Gateway {
    /// A gateway to start with non-default parts; [`start`] is `Gateway::builder(s).start()`.
    pub fn builder(settings: Settings) -> Builder {
        Builder {
            settings,
            codecs: Registry::default(),
            factories: Vec::new(),
            authenticator: None,
            authorizer: None,
            hooks: Vec::new(),
            api_routes: Vec::new(),
            config_file: None,
        }
    }

    /// The loaded plugins (WebAssembly codecs), for the API, `/metrics` and reload.
    #[cfg(feature = "codec")]
    pub fn plugins(&self) -> &Arc<roost_plugins::Plugins> {
        &self.plugins
    }

    /// Every started adapter: listeners, declared metric families, state.
    pub fn adapters(&self) -> &AdapterRegistry {
        &self.adapters
    }

    /// The bound addresses of adapter `adapter`'s listeners over `transport` (`"udp"`,
    /// `"dtls"`, `"tcp"`, ...).
    pub fn addrs(&self, adapter: &str, transport: &str) -> Vec<SocketAddr> {
        self.adapters.listeners(adapter).iter().filter(|l| l.transport == transport).map(|l| l.addr).collect()
    }

    /// The typed state adapter `adapter` exposes (its counters, its device table ...).
    pub fn adapter_state<T: std::any::Any + Send + Sync>(&self, adapter: &str) -> Option<&T> {
        self.adapters.get(adapter)?.state.as_deref()?.downcast_ref::<T>()
    }

    /// The state of the bridge named `name`.
    pub fn bridge_status(&self, name: &str) -> Option<roost_bridge::BridgeStatus> {
        self.bridges.read().iter().find(|(n, _)| n == name).map(|(_, s)| s.lock().clone())
    }

    /// Reads the config file again and applies what can change live (see [`crate::reload`]).
    pub async fn reload(&self) -> Result<crate::reload::Report, crate::reload::ReloadError> {
        self.reloader.reload().await
    }

    /// Applies `settings` as a reload would (for a caller that has them already).
    pub async fn apply(&self, settings: Settings) -> Result<crate::reload::Report, crate::reload::ReloadError> {
        self.reloader.apply(settings).await
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
