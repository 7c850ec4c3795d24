//! The dashboard at `/`: static HTML, CSS and JavaScript embedded in the binary (no build
//! step, no network), a single page whose views are chosen by the URL fragment
//! (`#/clients`, ...). It reads `/api/v1` with the API key the user logs in with, through
//! relative URLs only, so it works behind a reverse proxy at a path prefix.
//!
//! The few API routes only the dashboard needs are here too, behind the same key check:
//! `GET /api/v1/dashboard/history` (the charts' bounded history, see [`history`]),
//! `GET /api/v1/dashboard/watch` (a topic as server-sent events, see [`watch`]) and
//! `GET /api/v1/lwm2m/objects` (the LwM2M object definitions that name the object tree).

pub mod history;
pub mod watch;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use roost_core::Broker;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use history::History;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const VIEWS_JS: &str = include_str!("assets/views.js");
const DEVICES_JS: &str = include_str!("assets/devices.js");
const OPS_JS: &str = include_str!("assets/ops.js");

/// The page and its assets (no key: the page holds no data; its API calls need the key).
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/assets/views.js", get(|| async { asset("text/javascript; charset=utf-8", VIEWS_JS) }))
        .route("/assets/devices.js", get(|| async { asset("text/javascript; charset=utf-8", DEVICES_JS) }))
        .route("/assets/ops.js", get(|| async { asset("text/javascript; charset=utf-8", OPS_JS) }))
        .route("/assets/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // `no-cache`: a browser revalidates, so an upgraded gateway serves its own page.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The dashboard's API routes, merged under `/api/v1` behind the key check. Starts the
/// history sampler.
pub fn api_routes(broker: &Broker) -> Router {
    let history = History::start(broker.clone());
    let objects = Arc::new(objects_json(&roost_lwm2m::objects::Registry::builtin()));
    let watch_state =
        watch::WatchState { broker: broker.clone(), permits: Arc::new(Semaphore::new(watch::MAX_WATCHES)) };
    Router::new()
        .route("/dashboard/history", get(|State(h): State<Arc<History>>| async move { Json(h.to_json()) }))
        .with_state(history)
        .route("/dashboard/watch", get(watch::watch))
        .with_state(watch_state)
        .route("/lwm2m/objects", get(|State(o): State<Arc<Value>>| async move { Json((*o).clone()) }))
        .with_state(objects)
}

/// Resident memory (bytes) and CPU time (seconds) of this process, where the platform
/// tells (`/proc` on Linux).
pub fn process_stats() -> Option<(u64, f64)> {
    crate::http::process_stats()
}

/// Every object definition: `{"data": [{"id", "name", "resources": [...]}]}`.
fn objects_json(registry: &roost_lwm2m::objects::Registry) -> Value {
    let data: Vec<Value> = registry
        .ids()
        .into_iter()
        .filter_map(|id| registry.object(id))
        .map(|o| {
            let resources: Vec<Value> = o
                .resources
                .values()
                .map(|r| {
                    let ops = &r.operations;
                    let operations = format!(
                        "{}{}{}",
                        if ops.read { "R" } else { "" },
                        if ops.write { "W" } else { "" },
                        if ops.execute { "E" } else { "" }
                    );
                    json!({
                        "id": r.id,
                        "name": r.name,
                        "operations": operations,
                        "type": format!("{:?}", r.kind),
                        "multiple": r.multiple,
                        "units": r.units,
                    })
                })
                .collect();
            json!({ "id": o.id, "name": o.name, "multiple": o.multiple, "resources": resources })
        })
        .collect();
    json!({ "data": data })
}
