//! `POST /api/v1/publish`: a message from the API, with the MQTT 5 publish properties
//! (MQTT 5.0 §3.3.2.3: payload format indicator, message expiry interval, content type,
//! response topic, correlation data, user properties), and the JSON shape of a message with
//! its properties that the API and the dashboard's watch share.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use roost_core::{Message, MessageProperties, QoS};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState};

/// An MQTT UTF-8 string is at most this long (a two-byte length, MQTT 5.0 §1.5.4).
const MAX_STRING: usize = 65_535;
/// User properties on one message, at most (each is a pair of MQTT strings).
const MAX_USER_PROPERTIES: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    topic: String,
    #[serde(default)]
    payload: String,
    /// `plain` (default) or `base64`.
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    retain: bool,
    #[serde(default)]
    properties: Option<PropertiesBody>,
}

/// The MQTT 5 properties of a publish, named as EMQX's API names them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertiesBody {
    /// 0: unspecified bytes, 1: UTF-8 text (the payload is then checked).
    payload_format_indicator: Option<u8>,
    /// Seconds; the message is dropped where it waits longer.
    message_expiry_interval: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    /// As text (UTF-8).
    correlation_data: Option<String>,
    #[serde(default)]
    user_properties: BTreeMap<String, String>,
}

fn mqtt_string(field: &str, s: &str) -> Result<(), ApiError> {
    if s.len() > MAX_STRING {
        return Err(ApiError::bad_request(format!("properties.{field}: longer than {MAX_STRING} bytes")));
    }
    Ok(())
}

/// The checked properties and expiry of a message with `payload`.
fn properties(
    s: &ApiState,
    p: PropertiesBody,
    payload: &[u8],
) -> Result<(MessageProperties, Option<Duration>), ApiError> {
    let format = match p.payload_format_indicator {
        None | Some(0) => p.payload_format_indicator,
        Some(1) if std::str::from_utf8(payload).is_ok() => Some(1),
        Some(1) => return Err(ApiError::bad_request("payload: not UTF-8, but payload_format_indicator is 1")),
        Some(n) => {
            return Err(ApiError::bad_request(format!("properties.payload_format_indicator: {n} is not 0 or 1")));
        }
    };
    if let Some(t) = &p.content_type {
        mqtt_string("content_type", t)?;
    }
    if let Some(t) = &p.correlation_data {
        mqtt_string("correlation_data", t)?;
    }
    if let Some(t) = &p.response_topic {
        // MQTT 5.0 §3.3.2.3.5: a topic name, no wildcards.
        roost_core::topic::validate_name(t, s.broker.settings())
            .map_err(|e| ApiError::bad_request(format!("properties.response_topic: {e}")))?;
    }
    if p.user_properties.len() > MAX_USER_PROPERTIES {
        return Err(ApiError::bad_request(format!("properties.user_properties: more than {MAX_USER_PROPERTIES}")));
    }
    for (k, v) in &p.user_properties {
        mqtt_string("user_properties", k)?;
        mqtt_string("user_properties", v)?;
    }
    let expiry = p.message_expiry_interval.map(|s| Duration::from_secs(u64::from(s)));
    Ok((
        MessageProperties {
            payload_format_indicator: format,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data.map(|c| Bytes::from(c.into_bytes())),
            user_properties: p.user_properties.into_iter().collect(),
        },
        expiry,
    ))
}

pub async fn publish(State(s): State<ApiState>, body: Result<Json<PublishBody>, JsonRejection>) -> Response {
    match checked(&s, body) {
        Ok(message) => Json(json!({ "matched": s.broker.publish(message) })).into_response(),
        Err(e) => e.into_response(),
    }
}

fn checked(s: &ApiState, body: Result<Json<PublishBody>, JsonRejection>) -> Result<Message, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::bad_request(format!("body: {}", e.body_text())))?;
    roost_core::topic::validate_name(&b.topic, s.broker.settings())
        .map_err(|e| ApiError::bad_request(format!("topic: {e}")))?;
    let qos = QoS::from_u8(b.qos).ok_or_else(|| ApiError::bad_request("qos: must be 0, 1 or 2"))?;
    let payload = match b.encoding.as_deref() {
        None | Some("plain") => Bytes::from(b.payload.into_bytes()),
        Some("base64") => {
            Bytes::from(crate::base64::decode(&b.payload).ok_or_else(|| ApiError::bad_request("payload: not base64"))?)
        }
        Some(other) => return Err(ApiError::bad_request(format!("encoding: {other:?} is not plain or base64"))),
    };
    let (props, expiry) = properties(s, b.properties.unwrap_or_default(), &payload)?;
    let mut message = Message::new(b.topic, payload, qos, b.retain);
    message.properties = props;
    message.expiry = expiry;
    Ok(message)
}

/// A payload as JSON text: itself where it is UTF-8, else base64 (and which it is).
pub fn payload_json(payload: &[u8]) -> (Value, &'static str) {
    match std::str::from_utf8(payload) {
        Ok(t) => (Value::from(t), "plain"),
        Err(_) => (Value::from(crate::base64::encode(payload)), "base64"),
    }
}

/// The properties a message carries (only those set), with the seconds left of its expiry.
pub fn properties_json(m: &Message, now: Instant) -> Value {
    let p = &m.properties;
    let mut out = serde_json::Map::new();
    if let Some(f) = p.payload_format_indicator {
        out.insert("payload_format_indicator".into(), json!(f));
    }
    if let Some(left) = m.remaining_expiry(now) {
        out.insert("message_expiry_interval".into(), json!(left));
    }
    if let Some(t) = &p.content_type {
        out.insert("content_type".into(), json!(t));
    }
    if let Some(t) = &p.response_topic {
        out.insert("response_topic".into(), json!(t));
    }
    if let Some(c) = &p.correlation_data {
        out.insert("correlation_data".into(), payload_json(c).0);
    }
    if !p.user_properties.is_empty() {
        let users: serde_json::Map<String, Value> =
            p.user_properties.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        out.insert("user_properties".into(), Value::Object(users));
    }
    Value::Object(out)
}
