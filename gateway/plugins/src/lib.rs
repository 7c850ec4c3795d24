//! roost-plugins: extend Roost without rebuilding it (`docs/plugins.md`).
//!
//! - [`abi`]: the versioned host/guest ABI of WebAssembly protocol codecs
//! - [`wasm`]: a `.wasm` module run by `wasmi` as a `roost_codec::Codec`, sandboxed (fuel per
//!   call, memory per instance, checked results)
//! - [`wasm_factory`]: the `wasm` codec of the registry, for `[[codec]] plugin = "x.wasm"`
//! - [`js`]: TS013 JavaScript payload codecs (`decodeUplink`/`encodeDownlink`) run by QuickJS,
//!   one runtime per worker thread, a time and a memory limit per call
//! - [`payload`]: the `[[payload_codec]]`s by name (LoRaWAN) and on topics (every protocol)
//! - [`plugin`]: plugin files, versions (SHA-256), hot reload, the list for the API
//! - [`stats`]: per-plugin counters for `/metrics`

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod abi;
pub mod js;
pub mod payload;
pub mod plugin;
pub mod stats;
pub mod wasm;
pub mod wasm_factory;

pub use plugin::{PluginInfo, Plugins, Reloaded};
pub use wasm_factory::{WasmFactory, WasmOptions};
