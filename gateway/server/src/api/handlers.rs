//! `/api/v1` handlers for clients, subscriptions, retained messages, stats and metrics.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roost_core::admin::{ClientView, SubscriptionView};
use roost_core::{ClientId, Message};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, Page};

type ApiResult = Result<Response, ApiError>;

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

fn rfc3339(t: SystemTime) -> String {
    roost_core::trace::timestamp(t)
}

fn client_json(c: &ClientView) -> Value {
    json!({
        "clientid": c.client_id.as_str(),
        "protocol": c.protocol,
        "connected": c.connected,
        "username": c.username,
        "peer": c.peer.map(|p| p.to_string()),
        "keep_alive": c.keep_alive,
        "connected_at": c.connected_at.map(rfc3339),
        "subscriptions": c.subscriptions,
        "queued": c.queued,
        "inflight": c.inflight,
        "session_expiry": c.session_expiry.map(|d| d.as_secs()),
    })
}

#[derive(Debug, Deserialize)]
pub struct ClientQuery {
    page: Option<u32>,
    limit: Option<u32>,
    /// Exact protocol name (`mqtt`, `mqtt-sn`, `coap`, ...).
    protocol: Option<String>,
    /// Substring of the client id.
    clientid: Option<String>,
    /// Exact user name.
    username: Option<String>,
    connected: Option<bool>,
}

pub async fn list_clients(State(s): State<ApiState>, q: Result<Query<ClientQuery>, QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let page = Page { page: q.page, limit: q.limit };
    let (_, limit, skip) = page.bounds()?;
    // Only the page's clients are copied: the dashboard's first page stays quick with a fleet.
    let (count, clients) = s.broker.clients_page(
        |c| {
            q.protocol.as_ref().is_none_or(|p| c.protocol == p)
                && q.clientid.as_ref().is_none_or(|id| c.client_id.as_str().contains(id.as_str()))
                && q.username.as_ref().is_none_or(|u| c.username == Some(u.as_str()))
                && q.connected.is_none_or(|on| c.connected == on)
        },
        skip,
        limit as usize,
    );
    Ok(Json(page.counted(count, clients.iter().map(client_json).collect())?).into_response())
}

pub async fn show_client(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    match s.broker.client(&ClientId::new(id.as_str())) {
        Some(c) => Ok(Json(client_json(&c)).into_response()),
        None => Err(ApiError::not_found(format!("no client {id:?}"))),
    }
}

pub async fn kick_client(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    if s.broker.kick(&ClientId::new(id.as_str())) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("client {id:?} is not connected")))
    }
}

#[derive(Debug, Deserialize)]
pub struct SubscriptionQuery {
    page: Option<u32>,
    limit: Option<u32>,
    /// Exact client id.
    clientid: Option<String>,
    /// Exact filter, as subscribed.
    topic: Option<String>,
}

fn subscription_json(v: &SubscriptionView) -> Value {
    json!({
        "clientid": v.client_id.as_str(),
        "topic": v.filter,
        "qos": v.options.qos as u8,
        "no_local": v.options.no_local,
        "retain_as_published": v.options.retain_as_published,
        "retain_handling": v.options.retain_handling,
    })
}

pub async fn list_subscriptions(
    State(s): State<ApiState>,
    q: Result<Query<SubscriptionQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let subs: Vec<SubscriptionView> = s
        .broker
        .subscriptions()
        .into_iter()
        .filter(|v| q.clientid.as_ref().is_none_or(|id| v.client_id.as_str() == id))
        .filter(|v| q.topic.as_ref().is_none_or(|t| &v.filter == t))
        .collect();
    Ok(Json(Page { page: q.page, limit: q.limit }.of(subs, subscription_json)?).into_response())
}

#[derive(Debug, Deserialize)]
pub struct RetainedQuery {
    page: Option<u32>,
    limit: Option<u32>,
    /// A topic filter (default `#`).
    topic: Option<String>,
}

fn retained_json(m: &std::sync::Arc<Message>) -> Value {
    let (payload, encoding) = super::publish::payload_json(&m.payload);
    json!({
        "topic": &*m.topic,
        "payload": payload,
        "encoding": encoding,
        "qos": m.qos as u8,
        "publisher": m.publisher.as_ref().map(|p| p.as_str()),
        "properties": super::publish::properties_json(m, std::time::Instant::now()),
    })
}

pub async fn list_retained(State(s): State<ApiState>, q: Result<Query<RetainedQuery>, QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let filter = q.topic.as_deref().unwrap_or("#");
    let spec = roost_core::topic::parse_filter(filter, s.broker.settings())
        .map_err(|e| ApiError::bad_request(format!("topic: {e}")))?;
    if spec.share_group.is_some() {
        return Err(ApiError::bad_request("topic: a shared subscription filter matches no retained message"));
    }
    let items = s.broker.retained_messages(filter);
    Ok(Json(Page { page: q.page, limit: q.limit }.of(items, retained_json)?).into_response())
}

fn checked_topic(s: &ApiState, topic: &str) -> Result<(), ApiError> {
    roost_core::topic::validate_name(topic, s.broker.settings())
        .map_err(|e| ApiError::bad_request(format!("topic: {e}")))
}

pub async fn show_retained(State(s): State<ApiState>, Path(topic): Path<String>) -> ApiResult {
    checked_topic(&s, &topic)?;
    match s.broker.retained_messages(&topic).first() {
        Some(m) => Ok(Json(retained_json(m)).into_response()),
        None => Err(ApiError::not_found(format!("no retained message on {topic:?}"))),
    }
}

pub async fn delete_retained(State(s): State<ApiState>, Path(topic): Path<String>) -> ApiResult {
    checked_topic(&s, &topic)?;
    if s.broker.delete_retained(&topic) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no retained message on {topic:?}")))
    }
}

pub async fn stats(State(s): State<ApiState>) -> ApiResult {
    let b = &s.broker;
    let m = b.metrics().snapshot();
    let by_protocol: serde_json::Map<String, Value> =
        m.by_protocol.iter().map(|(p, conns, _, _)| (p.to_string(), Value::from(*conns))).collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(Json(json!({
        "node": s.node,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": s.started.elapsed().as_secs(),
        "datetime": now,
        "connections": m.connections,
        "connections_by_protocol": by_protocol,
        "sessions": b.session_count(),
        "subscriptions": b.subscription_count(),
        "topics": b.subscription_filter_count(),
        "retained": b.retained_count(),
    }))
    .into_response())
}

pub async fn metrics(State(s): State<ApiState>) -> ApiResult {
    let m = s.broker.metrics().snapshot();
    let dropped: serde_json::Map<String, Value> =
        m.dropped_by_reason.iter().map(|(r, n)| (r.to_string(), Value::from(*n))).collect();
    let by_protocol: serde_json::Map<String, Value> = m
        .by_protocol
        .iter()
        .map(|(p, conns, rin, rout)| {
            (p.to_string(), json!({ "connections": conns, "messages_received": rin, "messages_sent": rout }))
        })
        .collect();
    let webhooks: Vec<Value> = s
        .webhooks
        .list()
        .iter()
        .map(|w| {
            use std::sync::atomic::Ordering::Relaxed;
            json!({
                "url": w.settings.url.clone(),
                "sent": w.counters.sent.load(Relaxed),
                "dropped": w.counters.dropped(),
                "failed_posts": w.counters.failed_posts.load(Relaxed),
            })
        })
        .collect();
    Ok(Json(json!({
        "connects": m.connects_total,
        "messages_received": m.messages_received,
        "messages_sent": m.messages_sent,
        "messages_dropped": m.messages_dropped,
        "bytes_received": m.bytes_received,
        "bytes_sent": m.bytes_sent,
        "auth_failures": m.auth_failures,
        "dropped_by_reason": dropped,
        "by_protocol": by_protocol,
        "webhooks": webhooks,
    }))
    .into_response())
}
