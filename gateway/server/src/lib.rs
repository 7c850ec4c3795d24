//! roost: the gateway binary's library half — configuration, command line, logging and the
//! gateway's start/shutdown. `main.rs` only wires these together, so tests can use them too.
//!
//! - [`config`]: `roost.toml` -> validated [`config::Settings`]
//! - [`cli`]: the command line (`roost`, `print-default`, `check-config`)
//! - [`logging`]: tracing to standard error, level from config or `RUST_LOG`
//! - [`gateway`]: starts every listener on the settings, shuts them down with a grace period

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod adapters;
pub mod api;
pub mod auth_http;
mod base64;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod gateway;
pub mod http;
pub mod http_client;
pub mod logging;
#[cfg(feature = "codec")]
pub mod plugins;
pub mod reload;
pub mod security;
pub mod sys;
#[cfg(feature = "web")]
pub mod web;
pub mod webhook;
pub mod webhook_set;

/// Custom-protocol codecs: implement [`codec::Codec`], register it in a
/// [`codec::Registry`] and start with [`gateway::start_with`] (see `docs/custom-codec.md`).
pub use roost_codec as codec;
/// The broker core, for authenticators, authorizers and hooks of a user's own.
pub use roost_core as core;

/// The annotated default configuration, `config/roost.toml`, byte for byte.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/roost.toml");
