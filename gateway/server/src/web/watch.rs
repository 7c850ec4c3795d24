//! `GET /api/v1/dashboard/watch?topic=FILTER`: the topic explorer's live view, as
//! server-sent events (WHATWG HTML §9.2). Each watch is an in-process client of the core
//! (protocol `dashboard`, QoS 0, its session ends with the stream), so it obeys the ACL
//! and the session queue limit like any device; at most [`MAX_WATCHES`] run at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use roost_core::{Broker, ClientId, ConnectContext, ConnectRequest, Connection, Delivery, Protocol, SubOptions};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::ApiError;

/// Watches open at once, over all browsers.
pub const MAX_WATCHES: usize = 32;

#[derive(Clone)]
pub struct WatchState {
    pub broker: Broker,
    pub permits: Arc<Semaphore>,
}

#[derive(Debug, Deserialize)]
pub struct WatchQuery {
    /// A topic filter (wildcards allowed).
    topic: String,
}

pub async fn watch(State(s): State<WatchState>, q: Result<Query<WatchQuery>, QueryRejection>) -> Response {
    match open(&s, q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open(s: &WatchState, q: Result<Query<WatchQuery>, QueryRejection>) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let permit = s.permits.clone().try_acquire_owned().map_err(|_| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "UNAVAILABLE",
        message: format!("{MAX_WATCHES} topic watches are open already"),
    })?;
    roost_core::topic::parse_filter(&q.topic, s.broker.settings())
        .map_err(|e| ApiError::bad_request(format!("topic: {e}")))?;
    let id = format!("dashboard-{}", crate::api::keys::generate().get(..12).unwrap_or("watch"));
    let request = ConnectRequest {
        client_id: ClientId::new(id),
        protocol: Protocol::Mqtt,
        peer: None,
        username: None,
        password: None,
        clean_start: true,
        keep_alive: 0,
        will: None,
        session_expiry: Some(Duration::ZERO),
        receive_maximum: 1,
    };
    let context = ConnectContext { protocol_name: Some("dashboard".into()), certificate: None };
    let conn = s.broker.connect_with(request, context).await.map_err(|e| ApiError {
        status: StatusCode::FORBIDDEN,
        code: "FORBIDDEN",
        message: format!("the watch could not join the broker: {e}"),
    })?;
    let options = SubOptions { qos: roost_core::QoS::AtMostOnce, ..SubOptions::default() };
    if let Err(e) = conn.subscribe(&q.topic, options).await {
        conn.disconnect(roost_core::DisconnectReason::Normal).await;
        return Err(ApiError { status: StatusCode::FORBIDDEN, code: "FORBIDDEN", message: format!("topic: {e}") });
    }
    let stream = futures::stream::unfold(Some((conn, permit)), next_event);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

type Watcher = Option<(Connection, OwnedSemaphorePermit)>;

/// The next message as an event; the stream ends when the broker closes the session.
async fn next_event(w: Watcher) -> Option<(Result<Event, Infallible>, Watcher)> {
    let (conn, permit) = w?;
    loop {
        match conn.next_delivery().await {
            Delivery::Publish { pending, .. } => {
                let m = &pending.message;
                let (payload, encoding) = crate::api::publish::payload_json(&m.payload);
                let data = json!({
                    "topic": &*m.topic,
                    "payload": payload,
                    "encoding": encoding,
                    "qos": m.qos as u8,
                    "retain": pending.retain,
                    "properties": crate::api::publish::properties_json(m, std::time::Instant::now()),
                    "time": roost_core::trace::timestamp(SystemTime::now()),
                });
                let event = Event::default().event("message").data(data.to_string());
                return Some((Ok(event), Some((conn, permit))));
            }
            Delivery::Release { .. } => continue,
            Delivery::Close(_) => return None,
        }
    }
}
