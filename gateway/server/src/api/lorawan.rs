//! `/api/v1/lorawan/...`: the LoRaWAN gateways the packet-forwarder listener tracks, and the
//! built-in network server's devices (list, show, create, delete) and their downlink
//! queues. The driver answers through `roost_lorawan::manage`; this file is only HTTP and
//! JSON. The create body has the keys of a `[[lorawan.device]]` table, and the same rules.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roost_lorawan::driver::Context;
use roost_lorawan::manage::{DeviceView, DownlinkRequest, GatewayView, ManageError};
use roost_lorawan::ns::{CommandError, DeviceError};
use roost_lorawan::settings::DeviceFields;
use roost_lorawan::types::DevEui;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Page};

type ApiResult = Result<Response, ApiError>;
type Lorawan = Arc<Context>;

/// The routes, with their state applied (merged by `gateway` under `/api/v1`).
pub fn routes(ctx: Lorawan) -> Router {
    Router::new()
        .route("/lorawan/gateways", get(list_gateways))
        .route("/lorawan/devices", get(list_devices).post(create_device))
        .route("/lorawan/devices/{dev_eui}", get(show_device).delete(delete_device))
        .route("/lorawan/devices/{dev_eui}/queue", post(enqueue))
        .with_state(ctx)
}

fn error(e: ManageError) -> ApiError {
    let message = e.to_string();
    match e {
        ManageError::NotRunning => ApiError::not_found(message),
        ManageError::Device(DeviceError::Unknown(_)) | ManageError::Command(CommandError::UnknownDevice(_)) => {
            ApiError::not_found(message)
        }
        ManageError::Command(
            CommandError::Port(_)
            | CommandError::Data
            | CommandError::Json(_)
            | CommandError::WrongDevice(_)
            | CommandError::Codec(_),
        ) => ApiError::bad_request(message),
        ManageError::BridgeMode
        | ManageError::TooManyDevices
        | ManageError::Device(DeviceError::Exists(_) | DeviceError::FromConfig(_))
        | ManageError::Command(CommandError::QueueFull(_))
        | ManageError::Refused(..) => ApiError::conflict(message),
        ManageError::NoAnswer => ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "UNAVAILABLE", message },
    }
}

fn rfc3339(t: SystemTime) -> String {
    roost_core::trace::timestamp(t)
}

fn gateway_json(g: &GatewayView) -> Value {
    json!({
        "gateway_id": g.gateway_id.to_string(),
        "address": g.address.to_string(),
        "pull_address": g.pull_address.map(|a| a.to_string()),
        "protocol_version": g.protocol_version,
        "last_seen": rfc3339(g.last_seen),
        "rx_frames": g.rx_frames,
        "tx_frames": g.tx_frames,
        "tx_errors": g.tx_errors,
        "stat": g.stat,
    })
}

fn device_json(d: &DeviceView) -> Value {
    json!({
        "dev_eui": d.dev_eui.to_string(),
        "name": d.name,
        "application_id": d.application_id,
        "activation": d.activation,
        "join_eui": d.join_eui.map(|e| e.to_string()),
        "payload_codec": d.payload_codec.as_str(),
        "origin": d.origin.as_str(),
        "class": d.class,
        "dev_addr": d.dev_addr.map(|a| a.to_string()),
        "f_cnt_up": d.fcnt_up,
        "f_cnt_down": d.fcnt_down,
        "last_seen": d.last_seen.map(rfc3339),
        "queued": d.queued,
    })
}

fn page(q: Result<Query<Page>, QueryRejection>) -> Result<Page, ApiError> {
    q.map(|Query(p)| p).map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

fn dev_eui(p: Result<Path<String>, PathRejection>) -> Result<DevEui, ApiError> {
    let Path(s) = p.map_err(|e| ApiError::bad_request(format!("path: {}", e.body_text())))?;
    DevEui::parse(&s).ok_or_else(|| ApiError::bad_request(format!("dev_eui: {s:?} is not an EUI-64 of 16 hex digits")))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| ApiError::bad_request(format!("body: {}", e.body_text())))
}

async fn list_gateways(State(l): State<Lorawan>, q: Result<Query<Page>, QueryRejection>) -> ApiResult {
    let q = page(q)?;
    let gateways = l.manage.gateways().await.map_err(error)?;
    Ok(Json(q.of(gateways, gateway_json)?).into_response())
}

async fn list_devices(State(l): State<Lorawan>, q: Result<Query<Page>, QueryRejection>) -> ApiResult {
    let q = page(q)?;
    let devices = l.manage.devices().await.map_err(error)?;
    Ok(Json(q.of(devices, device_json)?).into_response())
}

async fn show_device(State(l): State<Lorawan>, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let eui = dev_eui(p)?;
    let d = l.manage.device(eui).await.map_err(error)?;
    Ok(Json(device_json(&d)).into_response())
}

/// The body is a `[[lorawan.device]]` table as JSON.
async fn create_device(State(l): State<Lorawan>, b: Result<Json<DeviceFields>, JsonRejection>) -> ApiResult {
    let settings = body(b)?.validate().map_err(|e| ApiError::bad_request(format!("{}: {}", e.field, e.problem)))?;
    let (view, ticket) = l.manage.create(settings).await.map_err(error)?;
    // 201 means stored: the device is there again after a restart.
    if let Err(e) = l.broker.durable(ticket).await {
        tracing::warn!(dev_eui = %view.dev_eui, "LoRaWAN device created but not stored: {e}");
    }
    Ok((StatusCode::CREATED, Json(device_json(&view))).into_response())
}

async fn delete_device(State(l): State<Lorawan>, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let eui = dev_eui(p)?;
    let ticket = l.manage.delete(eui).await.map_err(error)?;
    if let Err(e) = l.broker.durable(ticket).await {
        tracing::warn!(dev_eui = %eui, "LoRaWAN device deleted, but its deletion not stored: {e}");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A downlink as MQTT `command/down` takes it (`fPort` is accepted for `f_port`), with the
/// payload as base64 `data` or as `data_hex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueBody {
    #[serde(alias = "fPort")]
    f_port: u8,
    #[serde(default)]
    confirmed: bool,
    data: Option<String>,
    data_hex: Option<String>,
}

async fn enqueue(
    State(l): State<Lorawan>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<QueueBody>, JsonRejection>,
) -> ApiResult {
    let eui = dev_eui(p)?;
    let b = body(b)?;
    let max = roost_lorawan::phy::MAX_DOWNLINK_PAYLOAD;
    let data = match (&b.data, &b.data_hex) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("data, data_hex: give one of them")),
        (Some(d), None) => {
            // base64 of `max` bytes is at most 4 * ceil(max / 3) characters.
            if d.len() > max.div_ceil(3) * 4 {
                return Err(ApiError::bad_request(format!("data: over {max} bytes")));
            }
            crate::base64::decode(d).ok_or_else(|| ApiError::bad_request("data: not base64"))?
        }
        (None, Some(h)) => roost_lorawan::hex::decode(h, max)
            .ok_or_else(|| ApiError::bad_request(format!("data_hex: not hex of at most {max} bytes")))?,
        (None, None) => Vec::new(),
    };
    let id = l
        .manage
        .enqueue(eui, DownlinkRequest { confirmed: b.confirmed, fport: b.f_port, data })
        .await
        .map_err(error)?;
    Ok(Json(json!({ "id": id })).into_response())
}
