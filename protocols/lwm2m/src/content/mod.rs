//! LwM2M payloads <-> typed [`Record`]s (OMA LwM2M 1.1 Core §7.4): plain text and opaque
//! here; TLV, LwM2M JSON, SenML JSON and SenML CBOR in their own modules, all reached
//! through [`decode`] and [`encode`]. Decoding never panics and checks every
//! length before it allocates; a value whose type the object definitions do not give is
//! decoded as the format allows (raw bytes for TLV, the JSON/CBOR type for SenML).

mod cbor;
pub mod lwm2m_json;
pub mod senml;
pub mod senml_cbor;
pub mod senml_json;
pub mod tlv;
#[cfg(test)]
mod vectors;

use crate::types::{Kind, Path, Record, Value, format};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContentError {
    #[error("content format {0} is not supported")]
    Unsupported(u16),
    #[error("malformed {format} payload: {reason}")]
    Malformed { format: &'static str, reason: String },
    #[error("plain text and opaque carry one resource; {0} is not a single resource")]
    NotSingle(Path),
}

pub fn malformed(format: &'static str, reason: impl Into<String>) -> ContentError {
    ContentError::Malformed { format, reason: reason.into() }
}

/// Plain text (0): one resource value, typed by `kind` (String when unknown).
pub fn decode_text(path: Path, payload: &[u8], kind: Option<Kind>) -> Result<Vec<Record>, ContentError> {
    if path.len() < 3 {
        return Err(ContentError::NotSingle(path));
    }
    let s = std::str::from_utf8(payload).map_err(|_| malformed("text", "not UTF-8"))?;
    let bad = |what: &str| malformed("text", format!("{s:?} is not {what}"));
    let value = match kind.unwrap_or(Kind::String) {
        Kind::String | Kind::None => Value::String(s.to_string()),
        Kind::CoreLink => Value::CoreLink(s.to_string()),
        Kind::Integer => Value::Integer(s.trim().parse().map_err(|_| bad("an integer"))?),
        Kind::UnsignedInteger => Value::UnsignedInteger(s.trim().parse().map_err(|_| bad("an unsigned integer"))?),
        Kind::Time => Value::Time(s.trim().parse().map_err(|_| bad("a time (seconds)"))?),
        Kind::Float => Value::Float(s.trim().parse().map_err(|_| bad("a float"))?),
        Kind::Boolean => match s.trim() {
            "1" => Value::Boolean(true),
            "0" => Value::Boolean(false),
            _ => return Err(bad("a boolean (0 or 1)")),
        },
        Kind::Objlnk => {
            let (o, i) = s.trim().split_once(':').ok_or_else(|| bad("an object link (o:i)"))?;
            Value::Objlnk(o.parse().map_err(|_| bad("an object link"))?, i.parse().map_err(|_| bad("an object link"))?)
        }
        Kind::Opaque => return Err(malformed("text", "an opaque resource is not sent as text")),
    };
    Ok(vec![Record { path, value }])
}

/// One value as plain text (0); `None` for opaque, which has no text form.
pub fn encode_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::String(s) | Value::CoreLink(s) => s.clone(),
        Value::Integer(i) | Value::Time(i) => i.to_string(),
        Value::UnsignedInteger(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Objlnk(o, i) => format!("{o}:{i}"),
        Value::Opaque(_) => return None,
    })
}

/// Decodes `payload` of content `format` for a request on `path`. `kind_of` gives the type
/// of a resource from the object definitions, where known. The records come in payload
/// order; a format that names its paths (JSON, SenML) may name paths outside `path`.
pub fn decode(
    format: u16,
    path: Path,
    payload: &[u8],
    kind_of: &dyn Fn(&Path) -> Option<Kind>,
) -> Result<Vec<Record>, ContentError> {
    match format {
        format::TEXT => decode_text(path, payload, kind_of(&path)),
        format::OPAQUE => {
            if path.len() < 3 {
                return Err(ContentError::NotSingle(path));
            }
            Ok(vec![Record { path, value: Value::Opaque(payload.to_vec()) }])
        }
        format::TLV | format::TLV_OLD => tlv::decode(path, payload, kind_of),
        format::LWM2M_JSON | format::LWM2M_JSON_OLD => lwm2m_json::decode(path, payload, kind_of),
        format::SENML_JSON => senml_json::decode(payload, kind_of),
        format::SENML_CBOR => senml_cbor::decode(payload, kind_of),
        other => Err(ContentError::Unsupported(other)),
    }
}

/// Encodes `records` as content `format` for a request on `path` (a Write, Create or
/// Write-Composite body). Plain text and opaque take exactly one record at `path`; TLV
/// nests the records under object-instance and multiple-resource entries as `path`'s depth
/// asks and refuses records outside `path`; the JSON formats cannot carry NaN or infinity.
pub fn encode(format: u16, path: Path, records: &[Record]) -> Result<Vec<u8>, ContentError> {
    match format {
        format::TEXT | format::OPAQUE => {
            let [Record { path: at, value }] = records else {
                return Err(ContentError::NotSingle(path));
            };
            if *at != path || path.len() < 3 {
                return Err(ContentError::NotSingle(path));
            }
            match (format, value) {
                (format::OPAQUE, Value::Opaque(bytes)) => Ok(bytes.clone()),
                (format::OPAQUE, _) => {
                    Err(malformed("opaque", format!("{path}: a {:?} value is not opaque", value.kind())))
                }
                _ => encode_text(value)
                    .map(String::into_bytes)
                    .ok_or_else(|| malformed("text", format!("{path}: an opaque value has no text form"))),
            }
        }
        format::TLV | format::TLV_OLD => tlv::encode(path, records),
        format::LWM2M_JSON | format::LWM2M_JSON_OLD => lwm2m_json::encode(path, records),
        format::SENML_JSON => senml_json::encode(path, records),
        format::SENML_CBOR => senml_cbor::encode(path, records),
        other => Err(ContentError::Unsupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn text_values_by_kind() {
        let one = |k, s: &str| decode_text(p("/3/0/9"), s.as_bytes(), Some(k)).map(|r| r[0].value.clone());
        assert_eq!(one(Kind::Integer, "42"), Ok(Value::Integer(42)));
        assert_eq!(one(Kind::Float, "2.5"), Ok(Value::Float(2.5)));
        assert_eq!(one(Kind::Boolean, "1"), Ok(Value::Boolean(true)));
        assert_eq!(one(Kind::Objlnk, "3:0"), Ok(Value::Objlnk(3, 0)));
        assert!(one(Kind::Integer, "x").is_err());
        assert!(one(Kind::Boolean, "2").is_err());
        assert_eq!(decode_text(p("/3/0"), b"x", None), Err(ContentError::NotSingle(p("/3/0"))));
        for v in [Value::Integer(-7), Value::Boolean(false), Value::Objlnk(1, 2), Value::String("a b".into())] {
            let s = encode_text(&v).unwrap();
            assert_eq!(decode_text(p("/1/0/1"), s.as_bytes(), Some(v.kind())).unwrap()[0].value, v);
        }
    }
}
