//! `/api/v1/rules` (merged into the management API by the server, behind its key check):
//! list, create, show, replace and delete rules, applied at once and stored; and
//! `/api/v1/rules/test`, which evaluates SQL against a sample with no side effects.
//! Errors are the API's `{"code": ..., "message": ...}`; a SQL error adds `line` and `column`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ConfigError, RuleConfig};
use crate::engine::{Engine, Rule, RuleError};
use crate::eval::Outcome;
use crate::sample::Sample;

/// The routes, to merge under `/api/v1`.
pub fn routes(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/rules", get(list).post(create))
        .route("/rules/test", post(test))
        .route("/rules/{id}", get(show).put(replace).delete(remove))
        .with_state(engine)
}

fn error(status: StatusCode, code: &str, message: String, extra: Option<(u32, u32)>) -> Response {
    let mut body = json!({ "code": code, "message": message });
    if let Some((line, column)) = extra {
        body["line"] = json!(line);
        body["column"] = json!(column);
    }
    (status, Json(body)).into_response()
}

fn rule_error(e: RuleError) -> Response {
    match e {
        RuleError::Invalid(ConfigError::Sql(p)) => {
            let pos = Some((p.line, p.column));
            error(StatusCode::BAD_REQUEST, "BAD_SQL", format!("sql: {p}"), pos)
        }
        RuleError::Invalid(_) | RuleError::Action(..) => {
            error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e.to_string(), None)
        }
        RuleError::Exists(_) | RuleError::FromConfig(_) => error(StatusCode::CONFLICT, "CONFLICT", e.to_string(), None),
        RuleError::NotFound(_) => error(StatusCode::NOT_FOUND, "NOT_FOUND", e.to_string(), None),
        RuleError::NotStarted => error(StatusCode::SERVICE_UNAVAILABLE, "NOT_STARTED", e.to_string(), None),
    }
}

/// A rule as the API shows it: its config, origin and metrics.
pub fn rule_json(r: &Rule) -> Value {
    let m = &r.metrics;
    let actions: Vec<Value> = r
        .actions
        .iter()
        .map(|a| {
            let x = &a.metrics;
            json!({
                "type": a.kind,
                "success": x.success.load(Relaxed),
                "failed": x.failed.load(Relaxed),
                "dropped": x.dropped.load(Relaxed),
                "retried": x.retried.load(Relaxed),
                "queue_depth": a.queue_depth(),
            })
        })
        .collect();
    let mut v = serde_json::to_value(&r.config).unwrap_or(Value::Null);
    v["origin"] = json!(r.origin);
    v["metrics"] = json!({
        "matched": m.matched.load(Relaxed),
        "passed": m.passed.load(Relaxed),
        "no_result": m.no_result.load(Relaxed),
        "failed": m.failed.load(Relaxed),
        "actions": actions,
    });
    v
}

async fn list(State(e): State<Arc<Engine>>) -> Json<Value> {
    let rules: Vec<Value> = e.rules().iter().map(|r| rule_json(r)).collect();
    Json(json!({ "data": rules, "meta": { "count": rules.len() } }))
}

/// The body as a rule, or a 400 naming what is wrong.
fn body_rule(body: Value) -> Result<RuleConfig, Box<Response>> {
    serde_json::from_value(body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e.to_string(), None)))
}

async fn create(State(e): State<Arc<Engine>>, Json(body): Json<Value>) -> Response {
    let cfg = match body_rule(body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match e.put(cfg, false) {
        Ok(r) => (StatusCode::CREATED, Json(rule_json(&r))).into_response(),
        Err(err) => rule_error(err),
    }
}

async fn show(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> Response {
    match e.get(&id) {
        Some(r) => Json(rule_json(&r)).into_response(),
        None => rule_error(RuleError::NotFound(id)),
    }
}

async fn replace(State(e): State<Arc<Engine>>, Path(id): Path<String>, Json(mut body): Json<Value>) -> Response {
    if let Some(o) = body.as_object_mut() {
        o.entry("id").or_insert_with(|| Value::from(id.as_str()));
    }
    let cfg = match body_rule(body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if cfg.id != id {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("id {:?} differs from the path's {id:?}", cfg.id),
            None,
        );
    }
    match e.put(cfg, true) {
        Ok(r) => Json(rule_json(&r)).into_response(),
        Err(err) => rule_error(err),
    }
}

async fn remove(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> Response {
    match e.delete(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => rule_error(err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    sql: String,
    #[serde(default)]
    context: Sample,
}

/// Evaluates `sql` over `context`; runs no action and touches no rule or counter.
async fn test(State(e): State<Arc<Engine>>, Json(body): Json<Value>) -> Response {
    let req: TestRequest = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(err) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", err.to_string(), None),
    };
    let st = match crate::sql::parse(&req.sql) {
        Ok(s) => s,
        Err(p) => return error(StatusCode::BAD_REQUEST, "BAD_SQL", format!("sql: {p}"), Some((p.line, p.column))),
    };
    let input = match req.context.input(e.node()) {
        Ok(i) => i,
        Err(m) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", format!("context: {m}"), None),
    };
    match st.apply(&input) {
        Ok(Outcome::Output(m)) => Json(json!({ "result": "output", "output": m })).into_response(),
        Ok(Outcome::NoResult) => Json(json!({ "result": "no_result" })).into_response(),
        Ok(Outcome::NotMatched) => Json(json!({ "result": "not_matched" })).into_response(),
        Err(err) => Json(json!({ "result": "failed", "error": err.to_string() })).into_response(),
    }
}
