//! Codec layer, WebAssembly: the `wasm` entry of the codec registry. A `[[codec]]` listener
//! with `plugin = "x.wasm"` runs it with `options.path` = the file; every new connection
//! (TCP) or device (UDP) gets a fresh instance of the version in service at that moment.

use std::path::PathBuf;
use std::sync::Arc;

use roost_codec::{Codec, CodecFactory, Options, OptionsError, Registry};
use serde::Deserialize;

use crate::plugin::{Kind, Loader, Plugin, Plugins};
use crate::stats::PluginStats;
use crate::wasm::codec::WasmCodec;
use crate::wasm::{WasmLimits, WasmModule};

/// The registered codec name.
pub const NAME: &str = "wasm";

/// `[codec.options]` of a WebAssembly listener (`path` is filled from `plugin = "..."`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmOptions {
    pub path: PathBuf,
    #[serde(default = "defaults::fuel")]
    pub fuel_per_call: u64,
    /// Bytes of linear memory per device instance.
    #[serde(default = "defaults::memory")]
    pub max_memory: usize,
    #[serde(default = "defaults::frames")]
    pub max_frames: usize,
}

mod defaults {
    use crate::wasm::WasmLimits;
    pub fn fuel() -> u64 {
        WasmLimits::default().fuel_per_call
    }
    pub fn memory() -> usize {
        WasmLimits::default().max_memory
    }
    pub fn frames() -> usize {
        WasmLimits::default().max_frames
    }
}

/// Compiles `.wasm` files with one plugin's limits.
pub struct WasmLoader(pub WasmLimits);

impl Loader for WasmLoader {
    type Loaded = WasmModule;
    fn load(&self, name: &str, bytes: &[u8], stats: &Arc<PluginStats>) -> Result<WasmModule, String> {
        WasmModule::load(name, bytes, self.0, stats.clone()).map_err(|e| e.to_string())
    }
}

/// Makes one [`WasmCodec`] per connection from the version in service.
pub struct WasmFactory(pub Arc<Plugin<WasmLoader>>);

impl CodecFactory for WasmFactory {
    fn new_codec(&self) -> Box<dyn Codec> {
        Box::new(WasmCodec::new(&self.0.current().loaded))
    }
}

impl WasmFactory {
    /// Loads the plugin of `options` (an error is a configuration error).
    pub fn open(options: &WasmOptions) -> Result<Self, String> {
        if options.fuel_per_call == 0 || options.max_memory < 65_536 || options.max_frames == 0 {
            return Err("fuel_per_call and max_frames must be > 0, max_memory at least 65536 (one page)".into());
        }
        let limits = WasmLimits {
            fuel_per_call: options.fuel_per_call,
            max_memory: options.max_memory,
            max_frames: options.max_frames,
            ..WasmLimits::default()
        };
        Plugin::open(&options.path, Kind::Wasm, WasmLoader(limits)).map(|p| WasmFactory(Arc::new(p)))
    }
}

/// Registers the `wasm` codec; each listener's plugin is listed in (and watched by) `plugins`.
pub fn register(registry: &mut Registry, plugins: Arc<Plugins>) {
    registry.register(NAME, move |options: &Options| {
        let options: WasmOptions = options.parse()?;
        let factory = WasmFactory::open(&options).map_err(OptionsError::new)?;
        plugins.add(factory.0.clone());
        Ok(factory)
    });
}
