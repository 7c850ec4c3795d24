//! Roost rules (layer: data integration, above `roost-core`'s hooks): EMQX 5-style SQL
//! rules over published messages and `$events/...`, each feeding actions (republish, log,
//! HTTP(S), SQLite, PostgreSQL) through a bounded queue with retries and counted drops.
//!
//! - [`sql`]: the parser (errors name line and column); [`eval`]: evaluation over one
//!   [`eval::Input`], the payload decoded as JSON once and only when read;
//!   [`funcs`]/[`time`]: built-in functions; [`template`]: `${field}` templates.
//! - [`engine`]: the running rules and the broker [`roost_core::hooks::Hook`] feeding them;
//!   [`action`]: the sinks; [`config`]: `[[rule]]`; [`api`]: `/api/v1/rules`;
//!   [`metrics`]: `/metrics`.
//!
//! Wiring (the server does this): [`Engine::new`] with the `[[rule]]`s, register
//! [`Engine::hook`] with the broker builder, then [`Engine::start`] once the broker runs,
//! and merge [`api::routes`] under `/api/v1`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod action;
pub mod api;
pub mod config;
pub mod engine;
pub mod eval;
pub mod funcs;
pub mod metrics;
pub mod sample;
pub mod sql;
pub mod template;
pub mod time;

pub use config::RuleConfig;
pub use engine::Engine;

#[cfg(test)]
mod tests;
