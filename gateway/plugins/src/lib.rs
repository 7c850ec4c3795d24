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
//! - [`config`]: the `[[payload_codec]]` table, always built
//!
//! Feature `runtime` (default): everything but [`config`], with the two interpreters
//! (wasmi, QuickJS). Off, only the configuration types are left, so a gateway built without
//! custom codecs (`roost` without `codec`, docs/edge.md) links neither interpreter.

#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "runtime")]
pub mod abi;
pub mod config;
#[cfg(feature = "runtime")]
pub mod js;
#[cfg(feature = "runtime")]
pub mod payload;
#[cfg(feature = "runtime")]
pub mod plugin;
#[cfg(feature = "runtime")]
pub mod stats;
#[cfg(feature = "runtime")]
pub mod wasm;
#[cfg(feature = "runtime")]
pub mod wasm_factory;

#[cfg(feature = "runtime")]
pub use plugin::{PluginInfo, Plugins, Reloaded};
#[cfg(feature = "runtime")]
pub use wasm_factory::{WasmFactory, WasmOptions};
