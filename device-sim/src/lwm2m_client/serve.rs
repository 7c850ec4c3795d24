//! The simulated device's answers to the server's requests (OMA LwM2M 1.1 Core §6.3
//! device management, §6.4 information reporting, mapped to CoAP in Transport §6.4):
//! Read, Discover, Write, Write-Attributes, Execute, Create, Delete, Observe and its cancel.

use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use roost_coap::codec;

use super::device::{Attrs, Device, Observation};
use super::store::{self, Exec, Refusal, Store};
use roost_lwm2m::content::{self, ContentError};
use roost_lwm2m::types::{Path, Value, format};

pub struct Answer {
    pub response: Packet,
    pub exec: Option<Exec>,
}

/// `2.05` for a CoAP code.
pub fn code_string(c: MessageClass) -> String {
    let n = u8::from(c);
    format!("{}.{:02}", n >> 5, n & 0x1F)
}

fn with_code(code: ResponseType) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p
}

fn refused(r: Refusal) -> ResponseType {
    match r {
        Refusal::NotFound => ResponseType::NotFound,
        Refusal::MethodNotAllowed => ResponseType::MethodNotAllowed,
        Refusal::BadRequest => ResponseType::BadRequest,
    }
}

fn content_error(e: &ContentError) -> ResponseType {
    match e {
        ContentError::Unsupported(_) => ResponseType::UnsupportedContentFormat,
        _ => ResponseType::BadRequest,
    }
}

/// A 2.05 with the values at `path` in `accept`, or by default plain text (opaque) for one
/// resource and TLV for more; where that format is not available, the single value falls
/// back to text.
pub fn read_response(store: &Store, path: &Path, accept: Option<u16>) -> Result<Packet, ResponseType> {
    let records = store.read(path).map_err(refused)?;
    let single = path.len() >= 3 && records.len() == 1;
    let opaque = single && matches!(records[0].value, Value::Opaque(_));
    let default = match (single, opaque) {
        (true, true) => format::OPAQUE,
        (true, false) => format::TEXT,
        _ => format::TLV,
    };
    let fmt = accept.unwrap_or(default);
    // A format asked for that cannot carry these records (or is unknown): 4.06.
    let payload = roost_lwm2m::content::encode(fmt, *path, &records)
        .map_err(|_| if accept.is_some() { ResponseType::NotAcceptable } else { ResponseType::InternalServerError })?;
    let mut p = with_code(ResponseType::Content);
    p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(fmt)));
    p.payload = payload;
    Ok(p)
}

fn uint(p: &Packet, o: CoapOption) -> Result<Option<u16>, ResponseType> {
    match codec::uint_option(p, o) {
        None => Ok(None),
        Some(Ok(v)) => u16::try_from(v).map(Some).map_err(|_| ResponseType::BadOption),
        Some(Err(_)) => Err(ResponseType::BadOption),
    }
}

pub fn answer(dev: &mut Device, p: &Packet, now: Instant) -> Answer {
    match answer_inner(dev, p, now) {
        Ok(a) => a,
        Err(code) => Answer { response: with_code(code), exec: None },
    }
}

fn answer_inner(dev: &mut Device, p: &Packet, now: Instant) -> Result<Answer, ResponseType> {
    let segments = codec::uri_path(p).ok_or(ResponseType::BadRequest)?;
    let ids: Result<Vec<u16>, _> = segments.iter().filter(|s| !s.is_empty()).map(|s| s.parse::<u16>()).collect();
    let path = Path::new(&ids.map_err(|_| ResponseType::NotFound)?).map_err(|_| ResponseType::NotFound)?;
    let content_format = uint(p, CoapOption::ContentFormat)?;
    let accept = uint(p, CoapOption::Accept)?;
    let done = |response| Ok(Answer { response, exec: None });
    let MessageClass::Request(method) = p.header.code else { return Err(ResponseType::BadRequest) };
    match method {
        RequestType::Get if accept == Some(format::LINK) => {
            let attrs = |x: &Path| link_attrs(dev.attrs(x));
            let links = dev.store.discover(&path, &attrs).map_err(refused)?;
            let mut r = with_code(ResponseType::Content);
            r.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(format::LINK)));
            r.payload = links.into_bytes();
            done(r)
        }
        RequestType::Get => {
            let observe = codec::uint_option(p, CoapOption::Observe).and_then(Result::ok);
            let mut r = read_response(&dev.store, &path, accept)?;
            let token = p.get_token().to_vec();
            match observe {
                Some(0) => {
                    dev.observations.retain(|o| o.token != token);
                    dev.observations.push(Observation {
                        token,
                        path,
                        format: accept,
                        seq: 0,
                        last_sent: now,
                        last_message_id: 0,
                    });
                    r.add_option(CoapOption::Observe, codec::encode_uint(0));
                }
                Some(1) => dev.observations.retain(|o| o.token != token && o.path != path),
                _ => {}
            }
            done(r)
        }
        RequestType::Put if content_format.is_none() && p.payload.is_empty() => {
            write_attributes(dev, &path, p)?;
            done(with_code(ResponseType::Changed))
        }
        RequestType::Put => {
            write(dev, &path, content_format, &p.payload)?;
            done(with_code(ResponseType::Changed))
        }
        RequestType::Post if path.len() == 3 => {
            let exec = dev.store.execute(&path).map_err(refused)?;
            Ok(Answer { response: with_code(ResponseType::Changed), exec: Some(exec) })
        }
        RequestType::Post if path.len() == 2 => {
            write(dev, &path, content_format, &p.payload)?;
            done(with_code(ResponseType::Changed))
        }
        RequestType::Post if path.len() == 1 => {
            let records = match content_format {
                _ if p.payload.is_empty() => Vec::new(),
                None => return Err(ResponseType::BadRequest),
                Some(f) => content::decode(f, path, &p.payload, &store::kind_of).map_err(|e| content_error(&e))?,
            };
            let object = path.object().unwrap_or(0);
            let created = dev.store.create(object, &records).map_err(refused)?;
            dev.objects_changed = true;
            let mut r = with_code(ResponseType::Created);
            for id in created.ids() {
                r.add_option(CoapOption::LocationPath, id.to_string().into_bytes());
            }
            done(r)
        }
        RequestType::Delete => {
            dev.store.delete(&path).map_err(refused)?;
            dev.observations.retain(|o| !path.contains(&o.path));
            dev.objects_changed = true;
            done(with_code(ResponseType::Deleted))
        }
        _ => Err(ResponseType::MethodNotAllowed),
    }
}

fn write(dev: &mut Device, path: &Path, content_format: Option<u16>, payload: &[u8]) -> Result<(), ResponseType> {
    let f = content_format.ok_or(ResponseType::BadRequest)?;
    let records = content::decode(f, *path, payload, &store::kind_of).map_err(|e| content_error(&e))?;
    dev.store.write(path, &records).map_err(refused)
}

/// Write-Attributes (§5.1.2): `pmin`/`pmax` are kept (a bare name clears it); `gt`, `lt`,
/// `st`, `epmin`, `epmax` are accepted and not acted on.
fn write_attributes(dev: &mut Device, path: &Path, p: &Packet) -> Result<(), ResponseType> {
    if path.is_empty() {
        return Err(ResponseType::MethodNotAllowed);
    }
    dev.store.read(path).map_err(refused)?;
    let mut a = dev.attrs(path);
    for (k, v) in codec::uri_query(p) {
        let secs =
            || if v.is_empty() { Ok(None) } else { v.parse::<u32>().map(Some).map_err(|_| ResponseType::BadRequest) };
        match k.as_str() {
            "pmin" => a.pmin = secs()?,
            "pmax" => a.pmax = secs()?,
            "gt" | "lt" | "st" => {
                if !v.is_empty() {
                    v.parse::<f64>().map_err(|_| ResponseType::BadRequest)?;
                }
            }
            "epmin" | "epmax" => {
                secs()?;
            }
            _ => return Err(ResponseType::BadRequest),
        }
    }
    if let (Some(min), Some(max)) = (a.pmin, a.pmax)
        && max < min
    {
        return Err(ResponseType::BadRequest);
    }
    dev.attrs.insert(*path, a);
    Ok(())
}

fn link_attrs(a: Attrs) -> String {
    let mut s = String::new();
    if let Some(v) = a.pmin {
        s.push_str(&format!(";pmin={v}"));
    }
    if let Some(v) = a.pmax {
        s.push_str(&format!(";pmax={v}"));
    }
    s
}
