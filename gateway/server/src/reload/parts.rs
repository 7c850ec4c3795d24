//! The subsystems that reload live, one [`Reload`] each: TLS certificates (`[mqtt.tls]`),
//! DTLS PSKs and certificates (`[coap]`), the authentication chain (`[auth]`: users file,
//! client ids, HTTP auth, `allow_anonymous`), ACL rules (`[acl]`), bridges (`[[bridge]]`
//! added, removed, changed), rules (`[[rule]]`), plugin files, the log level, the `[mqtt]`
//! rate limits and webhooks (`[[webhook]]`).

use std::sync::Arc;

use anyhow::Context as _;
use parking_lot::Mutex;
use roost_core::Broker;
use roost_core::auth::{AllowAll, AnonymousPolicy, Authenticator, Authorizer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::switch::Switch;
use super::{Apply, Reload};
use crate::config::Settings;

fn apply(f: impl FnOnce() -> String + Send + 'static) -> anyhow::Result<Option<Apply>> {
    Ok(Some(Box::new(f)))
}

/// `[auth]`: the chain is rebuilt from the new settings (the users file read again).
pub struct AuthPart(pub Arc<Switch<dyn Authenticator>>);

/// The counters of the database and directory sources of `[auth]`, if it names any.
pub type AuthMetrics = Option<Arc<roost_authdb::Metrics>>;

/// The authenticator `[auth]` of `settings` describes, with its database sources' counters.
pub fn authenticator(settings: &Settings) -> anyhow::Result<(Arc<dyn Authenticator>, AuthMetrics)> {
    let s = crate::security::authenticator(settings)?;
    let a: Arc<dyn Authenticator> = match s.authenticator {
        Some(chain) => Arc::from(chain),
        None => Arc::new(AnonymousPolicy { allow_anonymous: settings.broker.allow_anonymous }),
    };
    Ok((a, s.backend_metrics))
}

impl Reload for AuthPart {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn prepare(&self, _old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        // Always rebuilt: the users file may have changed under the same name.
        // (A database source's counters in /metrics stay those of the start-up chain.)
        let (next, _) = authenticator(new)?;
        let (switch, chain) = (self.0.clone(), format!("{:?}", new.auth.chain));
        apply(move || {
            switch.replace(next);
            format!("auth: chain {chain} rebuilt")
        })
    }
}

/// `[acl]`: the rules in force for the next publish or subscribe.
pub struct AclPart(pub Arc<Switch<dyn Authorizer>>);

/// The authorizer `[acl]` of `settings` describes.
pub fn authorizer(settings: &Settings) -> Arc<dyn Authorizer> {
    match crate::security::authorizer(settings) {
        Some(a) => Arc::from(a),
        None => Arc::new(AllowAll),
    }
}

impl Reload for AclPart {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn prepare(&self, old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        if old.acl == new.acl {
            return Ok(None);
        }
        let (switch, next) = (self.0.clone(), authorizer(new));
        apply(move || {
            switch.replace(next);
            "acl: rules replaced".into()
        })
    }
}

/// `[mqtt.tls]`: certificate, key and CA read again; new handshakes use them.
pub struct TlsPart(pub roost_mqtt::transport::TlsSwitch);

impl Reload for TlsPart {
    fn name(&self) -> &'static str {
        "mqtt.tls"
    }

    fn prepare(&self, _old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        // Removed: the listeners stay as they are (named by `fixed`).
        let Some(tls) = &new.mqtt.tls else { return Ok(None) };
        let acceptor = roost_mqtt::transport::acceptor(tls).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (switch, file) = (self.0.clone(), tls.cert_file.display().to_string());
        apply(move || {
            switch.replace(acceptor);
            format!("mqtt.tls: certificate {file} loaded for new connections")
        })
    }
}

/// `[mqtt]` rate limits (`max_conn_rate`, `rate_limit`, `messages_rate`,
/// `rate_limit_action`): the next accept and new connections use them; open connections
/// keep the budgets they started with.
pub struct RatesPart(pub Arc<roost_mqtt::settings::LiveLimits>);

impl Reload for RatesPart {
    fn name(&self) -> &'static str {
        "mqtt (rate limits)"
    }

    fn prepare(&self, old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        let (a, b) = (old.mqtt.limits, new.mqtt.limits);
        let rates = |l: roost_mqtt::settings::ListenerLimits| {
            (l.max_conn_rate, l.bytes_rate, l.messages_rate, l.disconnect_over_rate)
        };
        if rates(a) == rates(b) {
            return Ok(None);
        }
        let live = self.0.clone();
        apply(move || {
            live.set_rates(b);
            let show = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
            format!(
                "mqtt: rate limits for new connections: max_conn_rate {}/s, rate_limit {} B/s, messages_rate {}/s, {}",
                b.max_conn_rate,
                show(b.bytes_rate),
                show(b.messages_rate.map(u64::from)),
                if b.disconnect_over_rate { "disconnect" } else { "throttle" }
            )
        })
    }
}

/// `[coap]` DTLS credentials (PSKs, certificate), shared by CoAP's and LwM2M's DTLS sockets.
#[cfg(feature = "dtls")]
pub struct DtlsPart(pub Arc<Switch<dyn roost_coap::dtls::Backend>>);

#[cfg(feature = "dtls")]
impl Reload for DtlsPart {
    fn name(&self) -> &'static str {
        "coap.dtls"
    }

    fn prepare(&self, _old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        let backend =
            roost_coap::dtls::openssl::OpensslBackend::new(&new.coap.dtls).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (switch, psks) = (self.0.clone(), new.coap.dtls.psk.len());
        apply(move || {
            switch.replace(Arc::new(backend));
            format!("coap.dtls: {psks} PSKs and the certificate loaded for new handshakes")
        })
    }
}

/// The bridges running now, by name, with their statuses (for the API and `$SYS`).
pub type BridgeStatuses = Arc<parking_lot::RwLock<Vec<(String, Arc<Mutex<roost_bridge::BridgeStatus>>)>>>;

/// `[[bridge]]`: a new one starts, a removed one stops, a changed one restarts; the others
/// keep their link.
pub struct BridgesPart {
    pub broker: Broker,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub statuses: BridgeStatuses,
    running: Arc<Mutex<Vec<(roost_bridge::BridgeSettings, CancellationToken)>>>,
}

impl BridgesPart {
    /// Starts every bridge of `settings`.
    pub fn start(settings: &Settings, broker: &Broker, shutdown: &CancellationToken, tracker: &TaskTracker) -> Self {
        let part = BridgesPart {
            broker: broker.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            statuses: Default::default(),
            running: Default::default(),
        };
        for b in &settings.bridges {
            part.spawn(b.clone());
        }
        part
    }

    fn spawn(&self, b: roost_bridge::BridgeSettings) {
        #[cfg(not(feature = "bridge"))]
        tracing::warn!(bridge = %b.name, "bridge not started: this roost was built without bridges (cargo feature `bridge`)");
        #[cfg(feature = "bridge")]
        self.spawn_bridge(b);
    }

    #[cfg(feature = "bridge")]
    fn spawn_bridge(&self, b: roost_bridge::BridgeSettings) {
        tracing::info!(bridge = %b.name, upstream = %b.address, "bridge starting");
        let token = self.shutdown.child_token();
        let status = roost_bridge::spawn(b.clone(), self.broker.clone(), token.clone(), &self.tracker);
        self.statuses.write().push((b.name.clone(), status));
        self.running.lock().push((b, token));
    }

    fn stop(&self, name: &str) {
        tracing::info!(bridge = %name, "bridge stopping");
        self.running.lock().retain(|(b, token)| {
            if b.name == name {
                token.cancel();
            }
            b.name != name
        });
        self.statuses.write().retain(|(n, _)| n != name);
    }
}

impl Reload for Arc<BridgesPart> {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn prepare(&self, _old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        let running: Vec<roost_bridge::BridgeSettings> = self.running.lock().iter().map(|(b, _)| b.clone()).collect();
        let stop: Vec<String> = running.iter().filter(|r| !new.bridges.contains(r)).map(|r| r.name.clone()).collect();
        let start: Vec<roost_bridge::BridgeSettings> =
            new.bridges.iter().filter(|b| !running.contains(b)).cloned().collect();
        if stop.is_empty() && start.is_empty() {
            return Ok(None);
        }
        let this = self.clone();
        apply(move || {
            let names = |v: &[String]| v.join(", ");
            let started: Vec<String> = start.iter().map(|b| b.name.clone()).collect();
            for name in &stop {
                this.stop(name);
            }
            for b in start {
                this.spawn(b);
            }
            format!("bridge: stopped [{}], started [{}]", names(&stop), names(&started))
        })
    }
}

/// `[[rule]]`: configured rules added, changed or removed (rules added through the API stay).
pub struct RulesPart(pub Arc<roost_rules::Engine>);

impl Reload for RulesPart {
    fn name(&self) -> &'static str {
        "rule"
    }

    fn prepare(&self, old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        if old.rules == new.rules {
            return Ok(None);
        }
        // The SQL of each is checked now, so a bad rule refuses the reload whole.
        for r in &new.rules {
            r.validate().with_context(|| format!("rule {}", r.id))?;
        }
        let (engine, rules) = (self.0.clone(), new.rules.clone());
        apply(move || match engine.replace_configured(rules) {
            Ok(n) => format!("rule: {n} configured rules in force"),
            Err(e) => format!("rule: not replaced, the old rules stay: {e}"),
        })
    }
}

/// `[log] level`.
pub struct LogPart;

impl Reload for LogPart {
    fn name(&self) -> &'static str {
        "log.level"
    }

    fn prepare(&self, old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        if old.log_level == new.log_level {
            return Ok(None);
        }
        // Parsed now so a bad level refuses the reload; set on apply.
        tracing_subscriber::EnvFilter::builder().parse(&new.log_level).context("log.level")?;
        let level = new.log_level.clone();
        apply(move || match crate::logging::set_level(&level) {
            Ok(true) => format!("log.level: {level}"),
            Ok(false) => format!("log.level: {level} not applied (RUST_LOG is set)"),
            Err(e) => format!("log.level: {e}"),
        })
    }
}

/// Plugin files: read again now (they also reload by themselves when their file changes).
#[cfg(feature = "codec")]
pub struct PluginsPart(pub Arc<roost_plugins::Plugins>);

#[cfg(feature = "codec")]
impl Reload for PluginsPart {
    fn name(&self) -> &'static str {
        "plugins"
    }

    fn prepare(&self, _old: &Settings, _new: &Settings) -> anyhow::Result<Option<Apply>> {
        let plugins = self.0.clone();
        apply(move || {
            let results = plugins.reload_all();
            let refused: Vec<String> =
                results.iter().filter_map(|(p, r)| r.as_ref().err().map(|e| format!("{p}: {e}"))).collect();
            let loaded =
                results.iter().filter(|(_, r)| matches!(r, Ok(roost_plugins::Reloaded::Loaded { .. }))).count();
            format!("plugins: {} files, {loaded} new versions, refused: {refused:?}", results.len())
        })
    }
}
