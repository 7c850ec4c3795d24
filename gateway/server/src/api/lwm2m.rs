//! `/api/v1/lwm2m/...`: the registered LwM2M devices, and commands to them. A command is
//! the JSON an MQTT application publishes on the device's command topic (EMQX's format,
//! `{"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}}`); as in EMQX's API, the
//! call answers once the command is handed to the device, and its result is published on
//! the device's response topic (`lwm2m/{ep}/up/resp` by default).

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roost_lwm2m::server::driver::{Context, DeviceView};
use serde_json::{Value, json};

use super::{ApiError, Page};

type ApiResult = Result<Response, ApiError>;
type Lwm2m = Arc<Context>;

/// The routes, with their state applied (merged by `gateway` under `/api/v1`).
pub fn routes(ctx: Lwm2m) -> Router {
    Router::new()
        .route("/lwm2m/devices", get(list_devices))
        .route("/lwm2m/devices/{endpoint}", get(show_device))
        .route("/lwm2m/devices/{endpoint}/commands", post(command))
        .with_state(ctx)
}

fn device_json(l: &Context, d: &DeviceView) -> Value {
    let mut v = d.info.to_json();
    v["responseTopic"] = json!(format!("{}{}", l.settings.mount(&d.info.ep), l.settings.translators.response));
    v["registrationId"] = json!(d.registration_id);
    v["peer"] = json!(d.peer.to_string());
    v["queueMode"] = json!(d.info.queue);
    v["secondsSinceUpdate"] = json!(d.since_update.as_secs());
    v["queuedCommands"] = json!(d.queued);
    v["observations"] = json!(d.observed);
    v
}

fn endpoint(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(s)| s).map_err(|e| ApiError::bad_request(format!("path: {}", e.body_text())))
}

async fn list_devices(State(l): State<Lwm2m>, q: Result<Query<Page>, QueryRejection>) -> ApiResult {
    let q = q.map(|Query(p)| p).map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    Ok(Json(q.of(l.devices().await, |d| device_json(&l, d))?).into_response())
}

async fn show_device(State(l): State<Lwm2m>, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let ep = endpoint(p)?;
    let d = l.devices().await.into_iter().find(|d| d.info.ep == ep);
    let d = d.ok_or_else(|| ApiError::not_found(format!("no LwM2M device {ep:?} is registered")))?;
    Ok(Json(device_json(&l, &d)).into_response())
}

async fn command(
    State(l): State<Lwm2m>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    let ep = endpoint(p)?;
    let Json(body) = b.map_err(|e| ApiError::bad_request(format!("body: {}", e.body_text())))?;
    if !body.get("msgType").is_some_and(Value::is_string) || !body.get("data").is_some_and(Value::is_object) {
        return Err(ApiError::bad_request("body: a command object with a string msgType and a data object"));
    }
    let payload = serde_json::to_vec(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    if !l.command(&ep, &payload).await {
        return Err(ApiError::not_found(format!("no LwM2M device {ep:?} is registered")));
    }
    let topic = format!("{}{}", l.settings.mount(&ep), l.settings.translators.response);
    Ok((StatusCode::ACCEPTED, Json(json!({ "endpoint": ep, "reqID": body.get("reqID"), "responseTopic": topic })))
        .into_response())
}
