//! `/api/v1/traces`: start, list and stop traces (see `roost_core::trace`). `roost ctl
//! trace` is a client of these.

use std::path::{Component, PathBuf};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roost_core::trace::{TraceError, TraceTarget};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// `client` or `topic`.
    #[serde(rename = "type")]
    kind: String,
    /// A client id, or a topic filter.
    target: String,
    /// The trace file: relative paths are under the trace directory (`{data_dir}/trace`).
    file: String,
}

#[derive(Debug, Deserialize)]
pub struct StopQuery {
    #[serde(rename = "type")]
    kind: String,
    target: String,
}

/// Traces are named by what they follow: `client:ID` or `topic:FILTER`.
fn target(kind: &str, target: &str, s: &ApiState) -> Result<(String, TraceTarget), ApiError> {
    if target.is_empty() || target.len() > 1000 {
        return Err(ApiError::bad_request("target: 1 to 1000 bytes"));
    }
    match kind {
        "client" => Ok((format!("client:{target}"), TraceTarget::Client(target.to_string()))),
        "topic" => {
            roost_core::topic::validate_filter(target, s.broker.settings())
                .map_err(|e| ApiError::bad_request(format!("target: {e}")))?;
            Ok((format!("topic:{target}"), TraceTarget::Topic(target.to_string())))
        }
        other => Err(ApiError::bad_request(format!("type: {other:?} is not client or topic"))),
    }
}

fn file_path(s: &ApiState, file: &str) -> Result<PathBuf, ApiError> {
    let p = PathBuf::from(file);
    if file.is_empty() || file.len() > 4096 || file.contains('\0') || p.components().any(|c| c == Component::ParentDir)
    {
        return Err(ApiError::bad_request("file: a path without '..'"));
    }
    if p.is_absolute() {
        return Ok(p);
    }
    std::fs::create_dir_all(&s.trace_dir)
        .map_err(|e| ApiError::bad_request(format!("file: cannot create {}: {e}", s.trace_dir.display())))?;
    Ok(s.trace_dir.join(p))
}

pub async fn start(
    State(s): State<ApiState>,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::bad_request(format!("body: {}", e.body_text())))?;
    let (name, t) = target(&b.kind, &b.target, &s)?;
    let path = file_path(&s, &b.file)?;
    match s.broker.tracer().start(&name, t, &path) {
        Ok(()) => {
            Ok((StatusCode::CREATED, Json(json!({ "name": name, "file": path.display().to_string() }))).into_response())
        }
        Err(e @ TraceError::Exists(_)) => Err(ApiError::conflict(e.to_string())),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

pub async fn stop(
    State(s): State<ApiState>,
    q: Result<Query<StopQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let (name, _) = target(&q.kind, &q.target, &s)?;
    if s.broker.tracer().stop(&name) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no trace {name:?} is running")))
    }
}

pub async fn list(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let traces: Vec<Value> = s
        .broker
        .tracer()
        .list()
        .into_iter()
        .map(|t| {
            let (kind, target) = match t.target {
                TraceTarget::Client(c) => ("client", c),
                TraceTarget::Topic(f) => ("topic", f),
            };
            json!({
                "name": t.name,
                "type": kind,
                "target": target,
                "file": t.file.display().to_string(),
                "started": roost_core::trace::timestamp(t.started),
                "lines": t.lines,
            })
        })
        .collect();
    Ok(Json(json!({ "data": traces })).into_response())
}
