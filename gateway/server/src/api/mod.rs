//! The HTTP management API, `/api/v1` (JSON): clients (list, search, show, kick, queued and
//! in-flight messages), subscriptions, publish (with MQTT 5 properties), retained messages
//! (list, show, delete), stats, metrics, traces (start, stop, download), the effective
//! configuration with secrets redacted (`/config`) and the running protocol adapters
//! (`/adapters`: listeners and declared metrics).
//! Its OpenAPI 3 description is served at `/api/v1/openapi.json` (hand-written:
//! `openapi.json` next to this file; a test checks every route is in it).
//!
//! Every route but the description needs an API key (`[http] api_keys`, or the one generated
//! at first start, see [`keys`]): `Authorization: Bearer KEY`, or HTTP Basic with the key as
//! the password (any user name). Errors are `{"code": "NOT_FOUND", "message": "..."}`; lists
//! are paginated (`?page=1&limit=100`, `meta.count` is the total).
//!
//! LoRaWAN gateways and devices are in [`lorawan`], wired by `gateway` where the adapter's
//! context is made. Protocol crates add their own routes (LwM2M devices) with
//! `gateway::Builder::api_routes`: an `axum::Router` merged under `/api/v1`, behind the same
//! key check.

mod adapters;
pub mod cluster;
pub mod coap;
pub mod config;
mod handlers;
pub mod keys;
pub mod lorawan;
pub mod lwm2m;
pub mod publish;
mod queue;
mod trace;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use roost_core::Broker;
use serde::Deserialize;
use serde_json::json;

use crate::webhook::Webhook;

/// The OpenAPI 3 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub broker: Broker,
    pub keys: Arc<Vec<String>>,
    pub node: String,
    pub started: Instant,
    /// Where relative trace file names are created.
    pub trace_dir: PathBuf,
    pub webhooks: Arc<Vec<Webhook>>,
    /// The rule engine (its routes are merged by `gateway`; here for `/metrics`).
    pub rules: Arc<roost_rules::Engine>,
    /// Every running adapter: listed by `/adapters`.
    pub adapters: Arc<roost_adapter::AdapterRegistry>,
    /// This node's cluster (`[cluster]`), for `/metrics`.
    pub cluster: Option<roost_cluster::Cluster>,
    /// Loaded plugins: their counters in `/metrics`.
    #[cfg(feature = "codec")]
    pub plugins: Arc<roost_plugins::Plugins>,
}

/// An error as the API returns it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code: "BAD_REQUEST", message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, code: "NOT_FOUND", message: message.into() }
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::CONFLICT, code: "CONFLICT", message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "code": self.code, "message": self.message }))).into_response()
    }
}

/// `?page=&limit=` of every list.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub page: Option<u32>,
    pub limit: Option<u32>,
}

/// Lists are cut into pages of at most this many items.
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 100;

impl Page {
    /// The page number (from 1), the limit, and how many items come before the page.
    pub fn bounds(&self) -> Result<(u32, u32, usize), ApiError> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if page == 0 {
            return Err(ApiError::bad_request("page: starts at 1"));
        }
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!("limit: must be 1..={MAX_LIMIT}")));
        }
        Ok((page, limit, (page as usize - 1).saturating_mul(limit as usize)))
    }

    /// `{"data": [...], "meta": {...}}` of a page already cut, out of `count` items.
    pub fn counted(&self, count: usize, data: Vec<serde_json::Value>) -> Result<serde_json::Value, ApiError> {
        let (page, limit, start) = self.bounds()?;
        let hasnext = start.saturating_add(data.len()) < count;
        Ok(json!({ "data": data, "meta": { "page": page, "limit": limit, "count": count, "hasnext": hasnext } }))
    }

    /// The page of `items` asked for, as `{"data": [...], "meta": {...}}`.
    pub fn of<T>(
        &self,
        items: Vec<T>,
        to_json: impl Fn(&T) -> serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let (_, limit, start) = self.bounds()?;
        let data: Vec<serde_json::Value> = items.iter().skip(start).take(limit as usize).map(to_json).collect();
        self.counted(items.len(), data)
    }
}

/// The `/api/v1` router (`extra`: protocol crates' routes, merged behind the key check) and
/// the unauthenticated OpenAPI description.
pub fn router(state: ApiState, extra: Vec<Router>) -> Router {
    let mut protected = Router::new()
        .route("/clients", get(handlers::list_clients))
        .route("/clients/{clientid}", get(handlers::show_client).delete(handlers::kick_client))
        .route("/clients/{clientid}/messages", get(queue::client_messages))
        .route("/subscriptions", get(handlers::list_subscriptions))
        .route("/publish", post(publish::publish))
        .route("/retained", get(handlers::list_retained))
        .route("/retained/{*topic}", get(handlers::show_retained).delete(handlers::delete_retained))
        .route("/stats", get(handlers::stats))
        .route("/metrics", get(handlers::metrics))
        .route("/adapters", get(adapters::list))
        .route("/adapters/{name}", get(adapters::show))
        .route("/traces", get(trace::list).post(trace::start).delete(trace::stop))
        .route("/traces/download", get(trace::download))
        .with_state(state.clone());
    for r in extra {
        protected = protected.merge(r);
    }
    let protected = protected
        .route_layer(middleware::from_fn_with_state(state, require_key))
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "METHOD_NOT_ALLOWED",
                message: "method not allowed here".into(),
            }
        });
    Router::new()
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such API route") })
}

/// The key check: Bearer, or Basic with the key as the password.
async fn require_key(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(presented_key);
    if given.is_some_and(|k| keys::matches(&state.keys, &k)) {
        return next.run(request).await;
    }
    let mut r = ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "UNAUTHORIZED",
        message: "an API key is required: Authorization: Bearer KEY".into(),
    }
    .into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer, Basic realm=\"roost\""));
    r
}

/// The key in an `Authorization` header value.
fn presented_key(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = crate::base64::decode(rest.trim())?;
        let text = String::from_utf8(decoded).ok()?;
        return Some(text.split_once(':')?.1.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_both_present_a_key() {
        assert_eq!(presented_key("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(presented_key("bearer  abc ").as_deref(), Some("abc"));
        // "admin:abc"
        assert_eq!(presented_key("Basic YWRtaW46YWJj").as_deref(), Some("abc"));
        assert_eq!(presented_key("Basic !!!"), None);
        assert_eq!(presented_key("Digest x"), None);
    }

    #[test]
    fn the_description_is_json_and_names_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/clients",
            "/clients/{clientid}",
            "/clients/{clientid}/messages",
            "/subscriptions",
            "/publish",
            "/retained",
            "/retained/{topic}",
            "/stats",
            "/metrics",
            "/traces",
            "/traces/download",
            "/config",
            "/plugins",
            "/adapters",
            "/adapters/{name}",
            "/lorawan/gateways",
            "/lorawan/devices",
            "/lorawan/devices/{dev_eui}",
            "/lorawan/devices/{dev_eui}/queue",
            "/cluster",
            "/dashboard/history",
            "/dashboard/watch",
            "/lwm2m/objects",
            "/coap/sessions",
            "/coap/sessions/{clientid}",
            "/rules",
            "/rules/test",
            "/rules/{id}",
        ] {
            assert!(paths.contains_key(p), "{p} missing from openapi.json");
        }
    }
}
