//! `/api/v1/adapters`: every running protocol adapter, its listeners and the current value
//! of every metric family it declared — read from the adapter registry, so a new adapter
//! appears here without code in this file.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use roost_adapter::registry::Entry;
use serde_json::{Value, json};

use super::{ApiError, ApiState};

fn entry_json(e: &Entry) -> Value {
    let listeners: Vec<Value> = e
        .listeners
        .iter()
        .map(|l| json!({ "name": l.name, "transport": l.transport, "addr": l.addr.to_string() }))
        .collect();
    let metrics: Vec<Value> = e
        .metrics
        .iter()
        .map(|f| {
            let samples: Vec<Value> = f
                .samples()
                .into_iter()
                .map(|s| {
                    let labels: serde_json::Map<String, Value> =
                        f.labels.iter().zip(&s.labels).map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
                    json!({ "labels": labels, "value": s.value })
                })
                .collect();
            json!({ "name": f.name, "help": f.help, "kind": f.kind.as_str(), "labels": f.labels, "samples": samples })
        })
        .collect();
    json!({ "name": e.name, "listeners": listeners, "metrics": metrics })
}

pub async fn list(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let data: Vec<Value> = s.adapters.entries().iter().map(entry_json).collect();
    Ok(Json(json!({ "data": data })).into_response())
}

pub async fn show(State(s): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    match s.adapters.get(&name) {
        Some(e) => Ok(Json(entry_json(e)).into_response()),
        None => Err(ApiError::not_found(format!("no adapter named {name:?}"))),
    }
}
