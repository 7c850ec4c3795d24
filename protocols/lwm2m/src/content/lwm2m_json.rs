//! LwM2M 1.0 JSON (`application/vnd.oma.lwm2m+json`, 11543), OMA LwM2M 1.0.2 TS §6.4.4:
//! `{"bn":"/3/0/","e":[{"n":"0","sv":"..."},{"n":"6/0","v":1}]}` with `v` (numbers and
//! times), `sv` (strings; opaque as base64), `bv` and `ov` (`"3:0"`); `bt`/`t` are read and
//! dropped. Without `bn` the names are taken below the request path.

use base64::Engine as _;
use serde_json::{Map, Value as Json};

use super::senml::{self, B64STD, Raw};
use super::{ContentError, malformed};
use crate::types::{Kind, Path, Record};

const NAME: &str = "LwM2M JSON";

pub fn decode(
    path: Path,
    payload: &[u8],
    kind_of: &dyn Fn(&Path) -> Option<Kind>,
) -> Result<Vec<Record>, ContentError> {
    let json: Json = serde_json::from_slice(payload).map_err(|e| malformed(NAME, e.to_string()))?;
    let Json::Object(top) = json else {
        return Err(malformed(NAME, "not an object"));
    };
    let bn = match top.get("bn") {
        Some(b) => b.as_str().ok_or_else(|| malformed(NAME, "bn is not a string"))?.to_string(),
        None if path.is_empty() => "/".to_string(),
        None => format!("{path}/"),
    };
    let Some(Json::Array(entries)) = top.get("e") else {
        return Err(malformed(NAME, "no \"e\" array"));
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Json::Object(map) = entry else {
            return Err(malformed(NAME, "an entry is not an object"));
        };
        let n = match map.get("n") {
            None => None,
            Some(n) => Some(n.as_str().ok_or_else(|| malformed(NAME, "n is not a string"))?),
        };
        let path = senml::full_name(NAME, &bn, n)?;
        let raw = raw_value(map, &path)?;
        out.push(Record { path, value: senml::typed(NAME, &path, raw, kind_of(&path))? });
    }
    Ok(out)
}

fn raw_value(map: &Map<String, Json>, path: &Path) -> Result<Raw, ContentError> {
    let mut found = None;
    for key in ["v", "sv", "bv", "ov"] {
        let Some(v) = map.get(key) else { continue };
        if found.is_some() {
            return Err(malformed(NAME, format!("{path}: more than one value")));
        }
        let bad = || malformed(NAME, format!("{path}: {key} is {v}"));
        found = Some(match key {
            "v" => v.as_number().and_then(senml::raw_number).ok_or_else(bad)?,
            "sv" => Raw::Str(v.as_str().ok_or_else(bad)?.to_string()),
            "bv" => Raw::Bool(v.as_bool().ok_or_else(bad)?),
            _ => Raw::Link(v.as_str().ok_or_else(bad)?.to_string()),
        });
    }
    found.ok_or_else(|| malformed(NAME, format!("{path}: an entry without a value")))
}

pub fn encode(path: Path, records: &[Record]) -> Result<Vec<u8>, ContentError> {
    let (bn, names) = senml::names(path, records);
    let mut entries = Vec::with_capacity(records.len());
    for (r, n) in records.iter().zip(names) {
        let mut map = Map::new();
        if !n.is_empty() {
            map.insert("n".into(), Json::String(n));
        }
        let (key, value) = match senml::raw_of(&r.value) {
            Raw::Str(s) => ("sv", Json::String(s)),
            Raw::Bool(b) => ("bv", Json::Bool(b)),
            // 1.0 has no opaque field: base64 in a string, typed back by the definitions.
            Raw::Data(d) => ("sv", Json::String(B64STD.encode(d))),
            Raw::Link(l) => ("ov", Json::String(l)),
            number => (
                "v",
                senml::json_number(&number)
                    .ok_or_else(|| malformed(NAME, format!("{}: {:?} has no JSON form", r.path, r.value)))?,
            ),
        };
        map.insert(key.into(), value);
        entries.push(Json::Object(map));
    }
    let mut top = Map::new();
    // Without a base name the decoder takes names below the request path, so full names
    // (records outside the path) need an explicit empty base.
    top.insert("bn".into(), Json::String(bn.unwrap_or_default()));
    top.insert("e".into(), Json::Array(entries));
    serde_json::to_vec(&Json::Object(top)).map_err(|e| malformed(NAME, e.to_string()))
}
