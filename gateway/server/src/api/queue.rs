//! `GET /api/v1/clients/{clientid}/messages`: what waits for one client, whatever its
//! protocol: the messages in its session queue (oldest first: what it gets next, including
//! a sleeping MQTT-SN client's buffer) and the outgoing QoS 1/2 messages in flight
//! (MQTT 5.0 §4.4: sent, not yet acknowledged). Payloads are cut to
//! [`MAX_PAYLOAD_SHOWN`] bytes: the list is for looking, not for copying messages out.

use std::time::Instant;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use roost_core::{ClientId, Pending};
use serde::Deserialize;
use serde_json::{Value, json};

use super::publish::{payload_json, properties_json};
use super::{ApiError, ApiState, DEFAULT_LIMIT, MAX_LIMIT};

/// Bytes of each payload shown.
pub const MAX_PAYLOAD_SHOWN: usize = 1024;

#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    /// Messages of each list, at most (default 100, at most 1000).
    limit: Option<u32>,
}

fn pending_json(p: &Pending, now: Instant) -> Value {
    let m = &p.message;
    let shown = &m.payload[..m.payload.len().min(MAX_PAYLOAD_SHOWN)];
    let (payload, encoding) = payload_json(shown);
    json!({
        "topic": &*m.topic,
        "payload": payload,
        "encoding": encoding,
        "size": m.payload.len(),
        "truncated": shown.len() < m.payload.len(),
        "qos": p.qos as u8,
        "retain": p.retain,
        "publisher": m.publisher.as_ref().map(|c| c.as_str()),
        "age_ms": u64::try_from(now.saturating_duration_since(m.created).as_millis()).unwrap_or(u64::MAX),
        "properties": properties_json(m, now),
    })
}

pub async fn client_messages(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    q: Result<Query<MessagesQuery>, QueryRejection>,
) -> Response {
    let limit = match q {
        Ok(Query(q)) => q.limit.unwrap_or(DEFAULT_LIMIT),
        Err(e) => return ApiError::bad_request(format!("query: {}", e.body_text())).into_response(),
    };
    if limit == 0 || limit > MAX_LIMIT {
        return ApiError::bad_request(format!("limit: must be 1..={MAX_LIMIT}")).into_response();
    }
    let Some(m) = s.broker.client_messages(&ClientId::new(id.as_str()), limit as usize) else {
        return ApiError::not_found(format!("no client {id:?}")).into_response();
    };
    let now = Instant::now();
    let queued: Vec<Value> = m.queued.iter().map(|p| pending_json(p, now)).collect();
    let inflight: Vec<Value> = m
        .inflight
        .iter()
        .map(|f| {
            let mut v = pending_json(&f.pending, now);
            v["packet_id"] = json!(f.packet_id);
            // QoS 2 after PUBREC: the PUBCOMP is what is awaited.
            v["state"] = json!(if f.released { "awaiting PUBCOMP" } else { "awaiting PUBACK/PUBREC" });
            v
        })
        .collect();
    Json(json!({
        "clientid": id,
        "queued": { "data": queued, "count": m.queued_total },
        "inflight": { "data": inflight, "count": m.inflight_total },
    }))
    .into_response()
}
