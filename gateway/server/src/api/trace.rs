//! `/api/v1/traces`: start, list, stop and download traces (see `roost_core::trace`).
//! `roost ctl trace` is a client of these. A download serves only the file of a running or
//! recently stopped trace, found by the trace's name, never a path the caller names; it is
//! streamed in chunks, so a large trace costs no more memory than a small one.

use std::path::{Component, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use roost_core::trace::{TraceError, TraceInfo, TraceTarget};
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

fn trace_json(t: TraceInfo) -> Value {
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
}

/// `data`: the running traces; `finished`: the last stopped ones (their files can still be
/// downloaded).
pub async fn list(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let tracer = s.broker.tracer();
    let traces: Vec<Value> = tracer.list().into_iter().map(trace_json).collect();
    let finished: Vec<Value> = tracer.finished().into_iter().rev().map(trace_json).collect();
    Ok(Json(json!({ "data": traces, "finished": finished })).into_response())
}

/// Bytes read from the trace file per chunk of the response.
const CHUNK: usize = 64 * 1024;

/// `GET /traces/download?type=client&target=ID`: the trace file as `text/plain`.
pub async fn download(
    State(s): State<ApiState>,
    q: Result<Query<StopQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let (name, _) = target(&q.kind, &q.target, &s)?;
    let path = s.broker.tracer().file_of(&name).ok_or_else(|| ApiError::not_found(format!("no trace {name:?}")))?;
    let file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
        .await
        .map_err(|e| ApiError::bad_request(format!("file: {e}")))?
        .map_err(|e| ApiError::not_found(format!("the file of trace {name:?}: {e}")))?;
    let chunks = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut buf = vec![0; CHUNK];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((buf, file))
        })
        .await
        .map_err(std::io::Error::other);
        match read {
            Ok(Ok((buf, _))) if buf.is_empty() => None,
            Ok(Ok((buf, file))) => Some((Ok(bytes::Bytes::from(buf)), Some(file))),
            Ok(Err(e)) | Err(e) => Some((Err(e), None)),
        }
    });
    // The name as a file name: `client:ID` with what a file name cannot hold replaced.
    let file_name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}.trace.txt\"")),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
