//! Resources (EMQX CoAP gateway compatible): a request's path and query as a typed route.
//!
//! - `/ps/{topic...}`: POST/PUT publish, GET (+ Observe) read or subscribe
//! - `/mqtt/connection`: POST create, PUT heartbeat, DELETE close
//! - `/.well-known/core`: the resource list (RFC 6690)

use coap_lite::{CoapOption, Packet, RequestType};

use crate::codec;

/// The RFC 6690 link-format list of our resources.
pub const WELL_KNOWN_CORE: &str = "</ps>;rt=\"mqtt.topic\";obs,</mqtt/connection>;rt=\"mqtt.connection\"";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    WellKnownCore,
    /// `/ps/{topic}`: the topic (or filter) as the client wrote it (before the mountpoint).
    Ps(String),
    Connection,
    NotFound,
    /// A Uri-Path segment is not UTF-8.
    BadPath,
}

pub fn route(p: &Packet) -> Route {
    let Some(path) = codec::uri_path(p) else {
        return Route::BadPath;
    };
    match path.first().map(String::as_str) {
        Some(".well-known") if path.len() == 2 && path[1] == "core" => Route::WellKnownCore,
        Some("ps") if path.len() >= 2 => Route::Ps(path[1..].join("/")),
        Some("mqtt") if path.len() == 2 && path[1] == "connection" => Route::Connection,
        _ => Route::NotFound,
    }
}

/// The query parameters we read (EMQX names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub clientid: Option<String>,
    pub token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub qos: Option<String>,
    pub retain: Option<String>,
    pub expiry: Option<String>,
    pub nl: Option<String>,
    pub rh: Option<String>,
}

impl Query {
    pub fn of(p: &Packet) -> Query {
        let mut q = Query::default();
        for (k, v) in codec::uri_query(p) {
            let slot = match k.as_str() {
                "clientid" => &mut q.clientid,
                "token" => &mut q.token,
                "username" => &mut q.username,
                "password" => &mut q.password,
                "qos" => &mut q.qos,
                "retain" => &mut q.retain,
                "expiry" => &mut q.expiry,
                "nl" => &mut q.nl,
                "rh" => &mut q.rh,
                _ => continue,
            };
            *slot = Some(v);
        }
        q
    }
}

/// A boolean query value: `true`/`1` or `false`/`0`.
pub fn flag(v: &Option<String>) -> Result<bool, String> {
    match v.as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(format!("not a boolean: {other:?}")),
    }
}

pub fn method(p: &Packet) -> Option<RequestType> {
    match p.header.code {
        coap_lite::MessageClass::Request(r) => Some(r),
        _ => None,
    }
}

/// Options a request to us may carry; any other critical option gets 4.02 (§5.4.1).
pub const KNOWN_OPTIONS: &[CoapOption] = &[
    CoapOption::UriHost,
    CoapOption::UriPort,
    CoapOption::UriPath,
    CoapOption::UriQuery,
    CoapOption::Observe,
    CoapOption::ContentFormat,
    CoapOption::Accept,
    CoapOption::Block1,
    CoapOption::Block2,
    CoapOption::Size1,
    CoapOption::Size2,
    CoapOption::IfMatch,
    CoapOption::IfNoneMatch,
];

/// CoAP Content-Format numbers (RFC 7252 §12.3 and the IANA registry) <-> MQTT 5 content
/// types, so a format survives the trip between the protocols.
const FORMATS: &[(u16, &str)] = &[
    (0, "text/plain;charset=utf-8"),
    (40, "application/link-format"),
    (41, "application/xml"),
    (42, "application/octet-stream"),
    (47, "application/exi"),
    (50, "application/json"),
    (60, "application/cbor"),
    (110, "application/senml+json"),
    (112, "application/senml+cbor"),
];

pub fn content_type_of(format: u32) -> String {
    FORMATS
        .iter()
        .find(|(n, _)| u32::from(*n) == format)
        .map_or_else(|| format!("application/coap-format-{format}"), |(_, t)| t.to_string())
}

pub fn format_of(content_type: &str) -> Option<u32> {
    if let Some(n) = content_type.strip_prefix("application/coap-format-") {
        return n.parse().ok();
    }
    FORMATS.iter().find(|(_, t)| *t == content_type).map(|(n, _)| u32::from(*n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_path(path: &[&str], query: &[&str]) -> Packet {
        let mut p = Packet::new();
        for s in path {
            p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        for q in query {
            p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        p
    }

    #[test]
    fn routes() {
        assert_eq!(route(&with_path(&["ps", "a", "+", "#"], &[])), Route::Ps("a/+/#".into()));
        assert_eq!(route(&with_path(&["ps"], &[])), Route::NotFound);
        assert_eq!(route(&with_path(&["mqtt", "connection"], &[])), Route::Connection);
        assert_eq!(route(&with_path(&[".well-known", "core"], &[])), Route::WellKnownCore);
        assert_eq!(route(&with_path(&["x"], &[])), Route::NotFound);
    }

    #[test]
    fn queries() {
        let q = Query::of(&with_path(&[], &["clientid=c1", "token=t", "qos=1", "retain", "other=x"]));
        assert_eq!(q.clientid.as_deref(), Some("c1"));
        assert_eq!(q.token.as_deref(), Some("t"));
        assert_eq!(flag(&q.retain), Ok(true));
        assert_eq!(flag(&None), Ok(false));
        assert!(flag(&Some("yes".into())).is_err());
    }

    #[test]
    fn formats_round_trip() {
        for n in [0, 50, 60, 9999] {
            assert_eq!(format_of(&content_type_of(n)), Some(n));
        }
    }
}
