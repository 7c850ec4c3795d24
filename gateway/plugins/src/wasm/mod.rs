//! Codec layer, WebAssembly: a `.wasm` module compiled once per version with `wasmi` (a pure
//! Rust interpreter: cross-compiles to every ARM target Roost ships for, fuel metering, no
//! JIT), instantiated once per device. The ABI is `crate::abi` / `docs/plugins.md`.
//!
//! - [`WasmModule`]: one validated version of a plugin file (compile, check the exports and
//!   the ABI version in a probe instance, so a bad file is refused before it serves).
//! - [`codec::WasmCodec`]: the `roost_codec::Codec` of one device, calling into its instance.
//! - [`host`]: the `roost.*` imports a guest calls to emit frames and output bytes.

pub mod codec;
mod host;

use std::sync::Arc;

use wasmi::{CompilationMode, Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder};

use crate::abi;
use crate::stats::PluginStats;

/// Sandbox bounds of one plugin, from its listener's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmLimits {
    /// Fuel (about one unit per WebAssembly instruction) for one call into the guest; a
    /// guest that runs out traps and its device is closed.
    pub fuel_per_call: u64,
    /// Linear memory of one instance, in bytes (rounded down to 64 KiB pages).
    pub max_memory: usize,
    /// Bytes one `roost_encode` may write, and topic + payload bytes one call may emit.
    pub max_output: usize,
    /// Frames one `roost_decode` or `roost_timer` may emit.
    pub max_frames: usize,
}

impl Default for WasmLimits {
    fn default() -> Self {
        WasmLimits { fuel_per_call: 10_000_000, max_memory: 1 << 20, max_output: 1 << 20, max_frames: 1024 }
    }
}

/// Why a plugin file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// The per-instance state host functions see.
pub(crate) struct HostState {
    limits: StoreLimits,
    pub(crate) sandbox: WasmLimits,
    /// Frames emitted during the current call.
    pub(crate) out: Vec<roost_codec::Uplink>,
    /// Bytes written during the current `roost_encode`.
    pub(crate) written: Vec<u8>,
    /// Topic and payload bytes emitted during the current call.
    pub(crate) emitted: usize,
    /// The message of the guest's last `roost.error`.
    pub(crate) error: Option<String>,
    /// Whether `roost.write` is allowed (only inside `roost_encode`).
    pub(crate) encoding: bool,
    /// The instance's exported memory, set once instantiated: host functions read guest
    /// bytes through it without looking the export up by name on every call.
    pub(crate) memory: Option<wasmi::Memory>,
}

/// One loaded version of a plugin: compiled, validated, ready to instantiate.
pub struct WasmModule {
    engine: Engine,
    module: Module,
    linker: Arc<Linker<HostState>>,
    pub(crate) limits: WasmLimits,
    pub(crate) stats: Arc<PluginStats>,
    /// Where it came from, for logs and errors.
    pub(crate) name: Arc<str>,
}

/// The exports every guest must have, with their WebAssembly signatures.
const REQUIRED: [&str; 5] = ["memory", "roost_abi_version", "roost_buffer", "roost_decode", "roost_encode"];

impl WasmModule {
    /// Compiles and validates `wasm` (binary; a test may pass WAT through the `wat` crate
    /// first). Refused: invalid WebAssembly, missing exports, imports the host does not
    /// offer, an ABI version other than [`abi::VERSION`], an initial memory above the limit.
    pub fn load(name: &str, wasm: &[u8], limits: WasmLimits, stats: Arc<PluginStats>) -> Result<Self, LoadError> {
        let mut config = Config::default();
        config.consume_fuel(true).compilation_mode(CompilationMode::Eager);
        let engine = Engine::new(&config);
        let module =
            Module::new(&engine, wasm).map_err(|e| LoadError(format!("{name}: not valid WebAssembly: {e}")))?;
        for export in REQUIRED {
            if module.get_export(export).is_none() {
                return Err(LoadError(format!("{name}: does not export `{export}` (ABI v{})", abi::VERSION)));
            }
        }
        let linker = Arc::new(host::linker(&engine).map_err(|e| LoadError(format!("{name}: {e}")))?);
        let this = WasmModule { engine, module, linker, limits, stats, name: name.into() };
        // A probe instance: the imports resolve, the start function and the initial memory
        // fit the limits, and the guest speaks our ABI version.
        let mut store = this.store();
        let instance = this
            .linker
            .instantiate_and_start(&mut store, &this.module)
            .map_err(|e| LoadError(format!("{name}: cannot be instantiated: {e}")))?;
        let version = instance
            .get_typed_func::<(), i32>(&store, "roost_abi_version")
            .and_then(|f| f.call(&mut store, ()))
            .map_err(|e| LoadError(format!("{name}: roost_abi_version() failed: {e}")))?;
        if version != abi::VERSION {
            return Err(LoadError(format!(
                "{name}: speaks plugin ABI v{version}; this Roost speaks v{}",
                abi::VERSION
            )));
        }
        Ok(this)
    }

    /// A fresh store with this plugin's limits and fuel for one call.
    pub(crate) fn store(&self) -> Store<HostState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory)
            .memories(1)
            .tables(1)
            .table_elements(10_000)
            .instances(1)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState {
            limits,
            sandbox: self.limits,
            out: Vec::new(),
            written: Vec::new(),
            emitted: 0,
            error: None,
            encoding: false,
            memory: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s: &mut HostState| &mut s.limits);
        // Instantiation (data segments, start function) runs on this fuel too.
        let _ = store.set_fuel(self.limits.fuel_per_call);
        store
    }
}
