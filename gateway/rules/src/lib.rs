//! Roost rules (layer: data integration, above `roost-core`'s hooks): EMQX 5-style SQL
//! rules over published messages and `$events/...`, each feeding actions (republish, log,
//! HTTP(S), SQLite, PostgreSQL) through a bounded queue with retries and counted drops.
//!
//! - [`sql`]: the parser (errors name line and column); [`eval`]: evaluation over one
//!   [`eval::Input`], the payload decoded as JSON once and only when read;
//!   [`funcs`]/[`time`]: built-in functions.

pub mod eval;
pub mod funcs;
pub mod sample;
pub mod sql;
pub mod time;

#[cfg(test)]
mod tests;
