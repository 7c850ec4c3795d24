//! `/api/v1/coap/sessions`: the CoAP devices the gateway holds a session for (client id,
//! username, DTLS identity, address, observations), one of them, and closing one. A close
//! goes through the core (the client is kicked: its observations end with a 5.03
//! notification, its subscriptions with its connection) and answers once the session has
//! left the CoAP table.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use roost_coap::session::{Context, SessionView};
use roost_core::ClientId;
use serde_json::{Value, json};

use super::{ApiError, Page};

type ApiResult = Result<Response, ApiError>;
type Coap = Arc<Context>;

/// How long a close waits for the session to leave (it ends at its next step, at once
/// unless its task is busy).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The routes, with their state applied (merged by `gateway` under `/api/v1`).
pub fn routes(ctx: Coap) -> Router {
    Router::new()
        .route("/coap/sessions", get(list_sessions))
        .route("/coap/sessions/{clientid}", get(show_session).delete(close_session))
        .with_state(ctx)
}

fn session_json(s: &SessionView) -> Value {
    let observations: Vec<Value> =
        s.observations.iter().map(|o| json!({ "path": o.path, "topic": o.filter })).collect();
    json!({
        "clientid": s.client_id,
        "username": s.username,
        "identity": s.identity,
        "peer": s.peer.to_string(),
        "connection": s.token,
        "observations": observations,
        "created_at": roost_core::trace::timestamp(s.created),
        "seconds_since_heard": s.last_heard.elapsed().as_secs(),
    })
}

fn client_id(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(s)| s).map_err(|e| ApiError::bad_request(format!("path: {}", e.body_text())))
}

fn no_session(id: &str) -> ApiError {
    ApiError::not_found(format!("no CoAP session {id:?}"))
}

async fn list_sessions(State(c): State<Coap>, q: Result<Query<Page>, QueryRejection>) -> ApiResult {
    let q = q.map(|Query(p)| p).map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    Ok(Json(q.of(c.registry.list(), session_json)?).into_response())
}

async fn show_session(State(c): State<Coap>, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let id = client_id(p)?;
    let s = c.registry.get(&id).ok_or_else(|| no_session(&id))?;
    Ok(Json(session_json(&s)).into_response())
}

async fn close_session(State(c): State<Coap>, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let id = client_id(p)?;
    if c.registry.get(&id).is_none() {
        return Err(no_session(&id));
    }
    // A session is listed only while its core connection is open, so the kick reaches it;
    // `false` means it closed meanwhile, which the wait below sees too.
    c.broker.kick(&ClientId::new(id.as_str()));
    if c.registry.wait_gone(&id, CLOSE_WAIT).await {
        tracing::info!(client_id = %id, "CoAP session closed through the API");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        // Kicked in the core; the device's task has not ended yet (it will at its next step).
        Ok(StatusCode::ACCEPTED.into_response())
    }
}
