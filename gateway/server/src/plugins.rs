//! Plugins in the gateway (`docs/plugins.md`): the `wasm` codec for `[[codec]] plugin = ...`
//! listeners, the list of loaded plugins for the API and `/metrics`, and the thread that
//! reloads a plugin when its file changes.

use std::sync::Arc;
use std::time::Duration;

use roost_codec::Registry;
use roost_plugins::Plugins;

/// How often plugin files are looked at (mtime and size; the content hash decides).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Adds the `wasm` codec to `codecs` (unless a user's registry has its own) and starts
/// watching the plugin files listeners load.
pub(crate) fn setup(codecs: &mut Registry) -> anyhow::Result<Arc<Plugins>> {
    let plugins = Arc::new(Plugins::default());
    if !codecs.names().any(|n| n == roost_plugins::wasm_factory::NAME) {
        roost_plugins::wasm_factory::register(codecs, plugins.clone());
    }
    Plugins::watch(&plugins, WATCH_INTERVAL)?;
    Ok(plugins)
}
