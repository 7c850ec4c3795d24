//! Plugins in the gateway (`docs/plugins.md`): the `wasm` codec for `[[codec]] plugin = ...`
//! listeners, the `[[payload_codec]]` JavaScript codecs (LoRaWAN by name, a publish hook on
//! their topics), the list of loaded plugins for the API and `/metrics`, and the thread that
//! reloads a plugin when its file changes.

use std::sync::Arc;
use std::time::Duration;

use roost_codec::Registry;
use roost_lorawan::settings::{ScriptCodecs, ScriptDecoded};
use roost_plugins::Plugins;
use roost_plugins::payload::{PayloadCodecConfig, PayloadCodecs};

/// How often plugin files are looked at (mtime and size; the content hash decides).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Adds the `wasm` codec to `codecs` (unless a user's registry has its own), loads the
/// `[[payload_codec]]` scripts, and starts watching the plugin files.
pub(crate) fn setup(
    codecs: &mut Registry,
    payload: &[PayloadCodecConfig],
) -> anyhow::Result<(Arc<Plugins>, Arc<PayloadCodecs>)> {
    let plugins = Arc::new(Plugins::default());
    if !codecs.names().any(|n| n == roost_plugins::wasm_factory::NAME) {
        roost_plugins::wasm_factory::register(codecs, plugins.clone());
    }
    let payload = PayloadCodecs::open(payload, &plugins).map_err(|e| anyhow::anyhow!("{e}"))?;
    Plugins::watch(&plugins, WATCH_INTERVAL)?;
    Ok((plugins, payload))
}

/// The payload codecs as the LoRaWAN network server asks for them.
pub(crate) struct LorawanScripts(pub Arc<PayloadCodecs>);

impl ScriptCodecs for LorawanScripts {
    fn decode_uplink(&self, name: &str, fport: u8, bytes: &[u8]) -> Option<ScriptDecoded> {
        let d = self.0.decode_uplink(name, fport, bytes)?;
        Some(ScriptDecoded { object: d.data, errors: d.errors, warnings: d.warnings })
    }

    fn encode_downlink(
        &self,
        name: &str,
        object: &serde_json::Value,
    ) -> Option<Result<(Option<u8>, Vec<u8>), Vec<String>>> {
        Some(self.0.encode_downlink(name, object)?.map(|e| (e.fport, e.bytes)))
    }
}

/// `GET /api/v1/plugins` (each loaded plugin: path, kind, ABI version, generation, SHA-256,
/// counters) and `POST /api/v1/plugins/reload` (re-read every plugin file now).
pub(crate) fn routes(plugins: Arc<Plugins>) -> axum::Router {
    use axum::routing::{get, post};
    let list = plugins.clone();
    axum::Router::new().route("/plugins", get(move || async move { axum::Json(list.infos()) })).route(
        "/plugins/reload",
        post(move || async move {
            let results = tokio::task::spawn_blocking(move || plugins.reload_all()).await.unwrap_or_default();
            let body: Vec<serde_json::Value> = results
                .into_iter()
                .map(|(path, r)| match r {
                    Ok(roost_plugins::Reloaded::Unchanged) => {
                        serde_json::json!({ "path": path, "result": "unchanged" })
                    }
                    Ok(roost_plugins::Reloaded::Loaded { generation, sha256 }) => serde_json::json!({
                        "path": path, "result": "loaded", "generation": generation, "sha256": sha256
                    }),
                    Err(e) => serde_json::json!({ "path": path, "result": "refused", "error": e }),
                })
                .collect();
            axum::Json(body)
        }),
    )
}

/// Per-plugin series of `/metrics`: `roost_plugin_{calls,errors,traps,timeouts,reloads,
/// refused_reloads}_total` and `roost_plugin_call_seconds_total`, labelled by `plugin` (the
/// file path).
pub(crate) struct Collector(pub Arc<Plugins>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plugins::Collector")
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let infos = self.0.infos();
        type Pick = fn(&roost_plugins::stats::StatsSnapshot) -> u64;
        let families: [(&str, &str, Pick); 6] = [
            ("plugin_calls", "Calls into a plugin", |s| s.calls),
            ("plugin_errors", "Calls a plugin refused (a negative return)", |s| s.errors),
            ("plugin_traps", "Calls that trapped or returned a malformed result (device closed)", |s| s.traps),
            ("plugin_timeouts", "Calls that ran out of fuel (device closed)", |s| s.timeouts),
            ("plugin_reloads", "New versions of a plugin file loaded", |s| s.reloads),
            ("plugin_refused_reloads", "Plugin files refused on reload (old version kept)", |s| s.refused_reloads),
        ];
        for (name, help, pick) in families {
            let mut enc =
                encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
            for i in &infos {
                let labels = [("plugin", i.path.as_str())];
                ConstCounter::new(pick(&i.stats)).encode(enc.encode_family(&labels)?)?;
            }
        }
        let mut enc = encoder.encode_descriptor(
            "plugin_call_seconds",
            "Time spent inside a plugin",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for i in &infos {
            let labels = [("plugin", i.path.as_str())];
            ConstCounter::new(i.stats.nanos as f64 / 1e9).encode(enc.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
