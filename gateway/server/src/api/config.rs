//! `GET /api/v1/config`: the effective configuration (the file as read, every default filled
//! in) with its secrets redacted (see `config::EffectiveConfig` for what counts as one), as
//! TOML text and as JSON.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::config::EffectiveConfig;

/// The route, with its state applied (merged by `gateway` under `/api/v1`).
pub fn routes(effective: EffectiveConfig) -> Router {
    let body = json!({
        "toml": effective.to_toml(),
        "config": serde_json::to_value(&*effective.0).unwrap_or_default(),
        "redacted": crate::config::REDACTED,
    });
    Router::new().route("/config", get(move || async move { Json(body.clone()) }))
}
