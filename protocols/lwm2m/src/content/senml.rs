//! What SenML JSON (RFC 8428 §4-5), SenML CBOR (§6) and the LwM2M 1.0 JSON format share
//! (OMA LwM2M 1.1 Core §7.4.4-7.4.6): a record names its resource by base name + name,
//! carries its value with its own JSON/CBOR type, and the object definitions refine that
//! type (a number is an Integer, Time or Float resource; a string may be a Corelnk).
//! Written here rather than with a SenML crate: none handles LwM2M's `vlo` and name rules.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{ContentError, malformed};
use crate::types::{Kind, Path, Record, Value};

/// A value as the payload carries it, before the object definitions type it.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Int(i64),
    Uint(u64),
    Float(f64),
    /// `vs` (`sv` in LwM2M JSON)
    Str(String),
    /// `vb` (`bv`)
    Bool(bool),
    /// `vd`: opaque bytes
    Data(Vec<u8>),
    /// `vlo` (`ov`): `"3:0"`
    Link(String),
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// base64url without padding (RFC 4648 §5), as SenML JSON's `vd` is written; read with or
/// without padding.
pub const B64URL: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
/// Standard base64, which LwM2M 1.0 JSON uses for opaque values in `sv`; also accepted for
/// `vd` from clients that use it.
pub const B64STD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT.with_encode_padding(true));

/// The full name of a record: base name + name (SenML concatenation). A base name without
/// a trailing `/` before a name without a leading one (`/3/0` + `1`) is joined with a `/`,
/// as that is what such clients mean. Only resources and resource instances carry values.
pub fn full_name(format: &'static str, bn: &str, n: Option<&str>) -> Result<Path, ContentError> {
    let n = n.unwrap_or("");
    let name = if !bn.is_empty() && !n.is_empty() && !bn.ends_with('/') && !n.starts_with('/') {
        format!("{bn}/{n}")
    } else {
        format!("{bn}{n}")
    };
    if name.is_empty() {
        return Err(malformed(format, "a record without a name"));
    }
    let path: Path = name.parse().map_err(|_| malformed(format, format!("{name:?} is not an LwM2M path")))?;
    if path.len() < 3 {
        return Err(malformed(format, format!("{path}: a value must name a resource")));
    }
    Ok(path)
}

/// Names for encoding: a base name of the request path (with a trailing `/` unless every
/// record is the path itself) and names relative to it; with no base name and full names
/// when some record is not under the path.
pub fn names(path: Path, records: &[Record]) -> (Option<String>, Vec<String>) {
    if !records.iter().all(|r| path.contains(&r.path)) {
        return (None, records.iter().map(|r| r.path.to_string()).collect());
    }
    if !records.is_empty() && records.iter().all(|r| r.path == path) && !path.is_empty() {
        return (Some(path.to_string()), records.iter().map(|_| String::new()).collect());
    }
    let bn = if path.is_empty() { "/".to_string() } else { format!("{path}/") };
    let names = records
        .iter()
        .map(|r| r.path.ids()[path.len()..].iter().map(u16::to_string).collect::<Vec<_>>().join("/"))
        .collect();
    (Some(bn), names)
}

/// Types a payload value with the resource's kind, where the definitions give it. The
/// payload's own type wins where the two disagree (a string for an Integer resource stays
/// a string), so a value is never lost to a wrong definition.
pub fn typed(format: &'static str, path: &Path, raw: Raw, kind: Option<Kind>) -> Result<Value, ContentError> {
    Ok(match raw {
        Raw::Int(i) => match kind {
            Some(Kind::Time) => Value::Time(i),
            Some(Kind::Float) => Value::Float(i as f64),
            Some(Kind::UnsignedInteger) if i >= 0 => Value::UnsignedInteger(i as u64),
            _ => Value::Integer(i),
        },
        Raw::Uint(u) => match (kind, i64::try_from(u)) {
            (Some(Kind::Float), _) => Value::Float(u as f64),
            (Some(Kind::UnsignedInteger), _) | (_, Err(_)) => Value::UnsignedInteger(u),
            (Some(Kind::Time), Ok(i)) => Value::Time(i),
            (_, Ok(i)) => Value::Integer(i),
        },
        Raw::Float(f) => {
            let integral = f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f);
            match kind {
                Some(Kind::Integer) if integral => Value::Integer(f as i64),
                Some(Kind::Time) if integral => Value::Time(f as i64),
                Some(Kind::UnsignedInteger) if f.fract() == 0.0 && (0.0..2.0 * TWO_63).contains(&f) => {
                    Value::UnsignedInteger(f as u64)
                }
                _ => Value::Float(f),
            }
        }
        Raw::Str(s) => match kind {
            Some(Kind::CoreLink) => Value::CoreLink(s),
            Some(Kind::Opaque) => match B64STD.decode(&s).or_else(|_| B64URL.decode(&s)) {
                Ok(bytes) => Value::Opaque(bytes),
                Err(_) => Value::String(s),
            },
            Some(Kind::Objlnk) => objlnk(&s).map_or(Value::String(s), |(o, i)| Value::Objlnk(o, i)),
            _ => Value::String(s),
        },
        Raw::Bool(b) => Value::Boolean(b),
        Raw::Data(d) => Value::Opaque(d),
        Raw::Link(s) => {
            let (o, i) =
                objlnk(&s).ok_or_else(|| malformed(format, format!("{path}: {s:?} is not an object link (o:i)")))?;
            Value::Objlnk(o, i)
        }
    })
}

/// 2^63: integral floats in [-2^63, 2^63) convert to i64 exactly.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

fn objlnk(s: &str) -> Option<(u16, u16)> {
    let (o, i) = s.split_once(':')?;
    Some((o.parse().ok()?, i.parse().ok()?))
}

/// A value as SenML carries it (`vd` for opaque, `vlo` for an object link).
pub fn raw_of(value: &Value) -> Raw {
    match value {
        Value::Integer(i) | Value::Time(i) => Raw::Int(*i),
        Value::UnsignedInteger(u) => Raw::Uint(*u),
        Value::Float(f) => Raw::Float(*f),
        Value::String(s) | Value::CoreLink(s) => Raw::Str(s.clone()),
        Value::Boolean(b) => Raw::Bool(*b),
        Value::Opaque(d) => Raw::Data(d.clone()),
        Value::Objlnk(o, i) => Raw::Link(format!("{o}:{i}")),
    }
}

/// A JSON number as a raw value.
pub fn raw_number(n: &serde_json::Number) -> Option<Raw> {
    if let Some(i) = n.as_i64() {
        Some(Raw::Int(i))
    } else if let Some(u) = n.as_u64() {
        Some(Raw::Uint(u))
    } else {
        n.as_f64().map(Raw::Float)
    }
}

/// A raw number as JSON; `None` for NaN and the infinities, which JSON has no form for.
pub fn json_number(raw: &Raw) -> Option<serde_json::Value> {
    match raw {
        Raw::Int(i) => Some((*i).into()),
        Raw::Uint(u) => Some((*u).into()),
        Raw::Float(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number),
        _ => None,
    }
}
