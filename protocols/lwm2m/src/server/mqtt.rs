//! The EMQX-compatible JSON of the MQTT side: commands in
//! (`{"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}}`) become CoAP requests;
//! results, notifications and registration events out.
//!
//! A command that does not parse is answered at once (code `4.00`), so no request waits.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use serde_json::{Map, Value as Json, json};

use crate::types::{Kind, Path, Record, Value, format};
use roost_coap::codec;

/// One MQTT command, ready to go to the device.
#[derive(Debug, Clone)]
pub struct Command {
    /// Echoed as given (EMQX applications use numbers or strings).
    pub req_id: Json,
    pub msg_type: String,
    /// `reqPath` of the result.
    pub path: String,
    /// The request (code, options, payload; type, id and token are set when sent).
    pub request: Packet,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Plain,
    Discover,
    Observe,
    /// Sent with the token of the observation of the same path.
    CancelObserve,
}

/// A command that could not be used: answered with this result at once.
#[derive(Debug, Clone, PartialEq)]
pub struct BadCommand {
    pub req_id: Json,
    pub msg_type: String,
    pub path: String,
    pub reason: String,
}

impl BadCommand {
    pub fn to_json(&self) -> Json {
        json!({"reqID": self.req_id, "msgType": self.msg_type,
               "data": {"reqPath": self.path, "code": "4.00", "codeMsg": "bad_request", "error": self.reason}})
    }
}

fn path_segments(p: &Path) -> Vec<Vec<u8>> {
    p.ids().iter().map(|i| i.to_string().into_bytes()).collect()
}

fn request(method: RequestType, path: &Path) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(method);
    for s in path_segments(path) {
        p.add_option(CoapOption::UriPath, s);
    }
    p
}

/// Parses one command payload; `root` is the device's alternate path (`/` mostly).
pub fn parse_command(payload: &[u8], root: &str) -> Result<Command, BadCommand> {
    let v: Json = serde_json::from_slice(payload).map_err(|e| BadCommand {
        req_id: Json::Null,
        msg_type: String::new(),
        path: String::new(),
        reason: format!("not JSON: {e}"),
    })?;
    let req_id = v.get("reqID").cloned().unwrap_or(Json::Null);
    let msg_type = v.get("msgType").and_then(Json::as_str).unwrap_or_default().to_string();
    let data = v.get("data").cloned().unwrap_or(Json::Null);
    let path_str =
        data.get("path").or_else(|| data.get("basePath")).and_then(Json::as_str).unwrap_or_default().to_string();
    let bad = |reason: String| BadCommand {
        req_id: req_id.clone(),
        msg_type: msg_type.clone(),
        path: path_str.clone(),
        reason,
    };
    let path: Path = path_str.parse().map_err(|e: crate::types::BadPath| bad(e.to_string()))?;
    let hex = v.get("encoding").and_then(Json::as_str) == Some("hex");
    let (mut request, kind) = build(&msg_type, &path, &data, hex).map_err(bad)?;
    // `"accept"` names the format a read or observe asks for (else one the device announced).
    if let Some(a) = data.get("accept").filter(|a| !a.is_null())
        && matches!(kind, CommandKind::Plain | CommandKind::Observe)
        && request.header.code == MessageClass::Request(RequestType::Get)
    {
        let fmt = match a {
            Json::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Json::String(name) => format::by_name(name),
            _ => None,
        };
        let fmt = fmt.ok_or_else(|| bad(format!("accept {a} is not a content format (e.g. \"senml-json\" or 110)")))?;
        request.add_option(CoapOption::Accept, codec::encode_uint(u32::from(fmt)));
    }
    under_root(&mut request, &path, root);
    Ok(Command { req_id, msg_type, path: path.to_string(), request, kind })
}

/// The CoAP request for a command of `msg_type` on `path` with its `data`; `Err`: why not.
fn build(msg_type: &str, path: &Path, data: &Json, hex: bool) -> Result<(Packet, CommandKind), String> {
    Ok(match msg_type {
        "read" => (request(RequestType::Get, path), CommandKind::Plain),
        "discover" => {
            let mut p = request(RequestType::Get, path);
            p.add_option(CoapOption::Accept, codec::encode_uint(u32::from(format::LINK)));
            (p, CommandKind::Discover)
        }
        "observe" | "cancel-observe" => {
            let mut p = request(RequestType::Get, path);
            let cancel = msg_type == "cancel-observe";
            p.add_option(CoapOption::Observe, codec::encode_uint(u32::from(cancel)));
            (p, if cancel { CommandKind::CancelObserve } else { CommandKind::Observe })
        }
        "write" => (write(path, data, hex)?, CommandKind::Plain),
        "write-attr" => (write_attributes(path, data)?, CommandKind::Plain),
        "execute" => {
            if path.len() != 3 {
                return Err("execute needs a resource path /o/i/r".into());
            }
            let mut p = request(RequestType::Post, path);
            if let Some(a) = data.get("args").and_then(Json::as_str).filter(|a| !a.is_empty()) {
                p.add_option(CoapOption::ContentFormat, codec::encode_uint(0));
                p.payload = a.as_bytes().to_vec();
            }
            (p, CommandKind::Plain)
        }
        "create" => (create(path, data, hex)?, CommandKind::Plain),
        "delete" => {
            if path.is_empty() || path.len() > 2 {
                return Err("delete needs /o or /o/i".into());
            }
            (request(RequestType::Delete, path), CommandKind::Plain)
        }
        "" => return Err("msgType missing".into()),
        other => return Err(format!("unknown msgType {other:?}")),
    })
}

/// `write`: one value (`data.value`) or several (`data.content`).
fn write(path: &Path, data: &Json, hex: bool) -> Result<Packet, String> {
    let records = if let Some(content) = data.get("content") {
        content_records(path, content, hex)?
    } else {
        vec![record(path, data, hex)?]
    };
    let (fmt, body) = encode_records(path, &records)?;
    // A single resource is replaced (PUT); several are a partial update (POST)
    // unless the command asks for a replace.
    let partial = records.len() > 1 && data.get("mode").and_then(Json::as_str) != Some("replace");
    let method = if partial { RequestType::Post } else { RequestType::Put };
    let mut p = request(method, path);
    p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(fmt)));
    p.payload = body;
    Ok(p)
}

/// `write-attr`: the notification attributes given, as Uri-Query options.
fn write_attributes(path: &Path, data: &Json) -> Result<Packet, String> {
    let mut p = request(RequestType::Put, path);
    for key in ["pmin", "pmax", "gt", "lt", "st"] {
        match data.get(key) {
            None | Some(Json::Null) => {}
            Some(Json::Number(n)) => p.add_option(CoapOption::UriQuery, format!("{key}={n}").into_bytes()),
            Some(Json::String(s)) if s.is_empty() => {}
            Some(Json::String(s)) if s.parse::<f64>().is_ok() => {
                p.add_option(CoapOption::UriQuery, format!("{key}={}", s.trim()).into_bytes())
            }
            Some(_) => return Err(format!("{key} must be a number")),
        }
    }
    Ok(p)
}

/// `create`: a new instance of the object at `path`, with the resources of `data.content`.
fn create(path: &Path, data: &Json, hex: bool) -> Result<Packet, String> {
    if path.len() != 1 {
        return Err("create needs an object basePath /o".into());
    }
    let content = data.get("content").cloned().unwrap_or(Json::Array(Vec::new()));
    let records = content_records(path, &content, hex)?;
    let mut p = request(RequestType::Post, path);
    if !records.is_empty() {
        // Resources given below the object (`/5/1`): a new instance whose id the
        // device picks, sent as bare resource TLVs (encoded as if under `/5/0`).
        let object = path.object().unwrap_or_default();
        let (base, records) = if records.iter().all(|r| r.path.len() == 2) {
            let base = Path::new(&[object, 0]).map_err(|e| e.to_string())?;
            let records = records
                .into_iter()
                .map(|r| {
                    let path =
                        Path::new(&[object, 0, r.path.instance().unwrap_or_default()]).map_err(|e| e.to_string())?;
                    Ok(Record { path, value: r.value })
                })
                .collect::<Result<Vec<_>, String>>()?;
            (base, records)
        } else {
            (*path, records)
        };
        let (fmt, body) = encode_records(&base, &records)?;
        p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(fmt)));
        p.payload = body;
    }
    Ok(p)
}

/// Puts `request`'s Uri-Path below the device's alternate path `root` (`/` mostly).
fn under_root(request: &mut Packet, path: &Path, root: &str) {
    if root != "/" && !root.is_empty() {
        let mut segs: Vec<Vec<u8>> =
            root.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect();
        segs.extend(path_segments(path));
        request.clear_option(CoapOption::UriPath);
        for s in segs {
            request.add_option(CoapOption::UriPath, s);
        }
    }
}

/// A GET of the observed `path` for the rest of a notification that came in Block2 blocks;
/// its result is published as a notification (`msgType` notify).
pub(crate) fn notification_fetch(req_id: Json, path: &str, root: &str) -> Option<Command> {
    let p: Path = path.parse().ok()?;
    let mut request = request(RequestType::Get, &p);
    under_root(&mut request, &p, root);
    Some(Command { req_id, msg_type: "notify".into(), path: path.to_string(), request, kind: CommandKind::Observe })
}

/// `[{path, type, value}]` below `base` (a relative `path` is appended to it).
fn content_records(base: &Path, content: &Json, hex: bool) -> Result<Vec<Record>, String> {
    let items = content.as_array().ok_or("content must be a list")?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let rel = item.get("path").and_then(Json::as_str).ok_or("each content entry needs a path")?;
        let full =
            if rel.starts_with('/') && rel.parse::<Path>().is_ok_and(|p| base.contains(&p) && p.len() > base.len()) {
                rel.to_string()
            } else {
                format!("{}/{}", base.to_string().trim_end_matches('/'), rel.trim_start_matches('/'))
            };
        let p: Path = full.parse().map_err(|e: crate::types::BadPath| e.to_string())?;
        out.push(record(&p, item, hex)?);
    }
    Ok(out)
}

/// One `{type, value}` at `path`.
fn record(path: &Path, item: &Json, hex: bool) -> Result<Record, String> {
    let ty = item.get("type").and_then(Json::as_str).ok_or("type missing")?;
    let v = item.get("value").ok_or("value missing")?;
    let text = || match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let t = text().ok_or_else(|| format!("value of {path} must be a string, number or boolean"))?;
    let bad = || format!("{t:?} is not a {ty}");
    let value = match ty {
        "String" => Value::String(t),
        "Integer" => Value::Integer(t.trim().parse().map_err(|_| bad())?),
        "Unsigned Integer" | "UnsignedInteger" => Value::UnsignedInteger(t.trim().parse().map_err(|_| bad())?),
        "Float" => Value::Float(t.trim().parse().map_err(|_| bad())?),
        "Time" => Value::Time(t.trim().parse().map_err(|_| bad())?),
        "Boolean" => Value::Boolean(match t.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad()),
        }),
        "Objlnk" => {
            let (o, i) = t.split_once(':').ok_or_else(bad)?;
            Value::Objlnk(o.trim().parse().map_err(|_| bad())?, i.trim().parse().map_err(|_| bad())?)
        }
        "Opaque" => Value::Opaque(if hex { decode_hex(&t).ok_or_else(bad)? } else { t.into_bytes() }),
        other => return Err(format!("unknown type {other:?}")),
    };
    Ok(Record { path: *path, value })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// The payload of a Write or Create: one resource as plain text (opaque as 42); several as
/// TLV (11542), the format every LwM2M 1.0 and 1.1 client must read.
pub(crate) fn encode_records(base: &Path, records: &[Record]) -> Result<(u16, Vec<u8>), String> {
    if let [r] = records
        && r.path == *base
        && r.path.len() >= 3
    {
        return Ok(match &r.value {
            Value::Opaque(b) => (format::OPAQUE, b.clone()),
            v => (format::TEXT, crate::content::encode_text(v).unwrap_or_default().into_bytes()),
        });
    }
    let body = crate::content::encode(format::TLV, *base, records).map_err(|e| e.to_string())?;
    Ok((format::TLV, body))
}

/// A value as EMQX shows it: numbers as numbers, opaque as hex, links as `o:i`.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::String(s) | Value::CoreLink(s) => json!(s),
        Value::Integer(i) | Value::Time(i) => json!(i),
        Value::UnsignedInteger(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Boolean(b) => json!(b),
        Value::Opaque(b) => json!(encode_hex(b)),
        Value::Objlnk(o, i) => json!(format!("{o}:{i}")),
    }
}

pub fn records_json(records: &[Record]) -> Json {
    Json::Array(records.iter().map(|r| json!({"path": r.path.to_string(), "value": value_json(&r.value)})).collect())
}

/// `2.05` and `content` for a response code.
pub fn code_strings(code: MessageClass) -> (String, &'static str) {
    let MessageClass::Response(r) = code else { return ("0.00".into(), "empty") };
    let n: u8 = code.into();
    let s = format!("{}.{:02}", n >> 5, n & 31);
    let msg = match r {
        ResponseType::Created => "created",
        ResponseType::Deleted => "deleted",
        ResponseType::Valid => "valid",
        ResponseType::Changed => "changed",
        ResponseType::Content => "content",
        ResponseType::Continue => "continue",
        ResponseType::BadRequest => "bad_request",
        ResponseType::Unauthorized => "unauthorized",
        ResponseType::BadOption => "bad_option",
        ResponseType::Forbidden => "forbidden",
        ResponseType::NotFound => "not_found",
        ResponseType::MethodNotAllowed => "method_not_allowed",
        ResponseType::NotAcceptable => "not_acceptable",
        ResponseType::RequestEntityIncomplete => "request_entity_incomplete",
        ResponseType::PreconditionFailed => "precondition_failed",
        ResponseType::RequestEntityTooLarge => "request_entity_too_large",
        ResponseType::UnsupportedContentFormat => "unsupported_content_format",
        ResponseType::InternalServerError => "internal_server_error",
        ResponseType::NotImplemented => "not_implemented",
        ResponseType::BadGateway => "bad_gateway",
        ResponseType::ServiceUnavailable => "service_unavailable",
        ResponseType::GatewayTimeout => "gateway_timeout",
        ResponseType::ProxyingNotSupported => "proxying_not_supported",
        _ => "unknown",
    };
    (s, msg)
}

/// The `data` of a result for `path` from a device response: code, codeMsg and, for a
/// 2.05, the content decoded (link strings for a discover). A payload that does not
/// decode gives code `decode_error` with the reason, never a panic.
pub fn response_data(path: &str, kind: CommandKind, resp: &Packet, kind_of: &dyn Fn(&Path) -> Option<Kind>) -> Json {
    let (code, msg) = code_strings(resp.header.code);
    let mut data = Map::new();
    data.insert("reqPath".into(), json!(path));
    data.insert("code".into(), json!(code));
    data.insert("codeMsg".into(), json!(msg));
    if resp.header.code == MessageClass::Response(ResponseType::Content) {
        if kind == CommandKind::Discover {
            let body = String::from_utf8_lossy(&resp.payload);
            data.insert("content".into(), json!(crate::server::link::link_strings(&body)));
        } else if kind != CommandKind::CancelObserve || !resp.payload.is_empty() {
            let fmt = match codec::uint_option(resp, CoapOption::ContentFormat) {
                Some(Ok(f)) => u16::try_from(f).unwrap_or(u16::MAX),
                Some(Err(_)) => u16::MAX,
                None => format::TEXT,
            };
            let p: Path = path.parse().unwrap_or_default();
            match crate::content::decode(fmt, p, &resp.payload, kind_of) {
                Ok(records) => {
                    data.insert("content".into(), records_json(&records));
                }
                Err(e) => {
                    data.insert("code".into(), json!("decode_error"));
                    data.insert("codeMsg".into(), json!(e.to_string()));
                    data.insert("deviceCode".into(), json!(code));
                }
            }
        }
    } else if !resp.payload.is_empty()
        && let Ok(s) = std::str::from_utf8(&resp.payload)
    {
        data.insert("diagnostic".into(), json!(s));
    }
    Json::Object(data)
}

/// A transport failure (`coap_timeout`, `coap_reset`) or a refusal by the gateway.
pub fn failure_data(path: &str, code: &str) -> Json {
    json!({"reqPath": path, "code": code, "codeMsg": code})
}

#[cfg(test)]
mod tests;
