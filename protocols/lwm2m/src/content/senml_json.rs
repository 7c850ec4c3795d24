//! SenML JSON (`application/senml+json`, 110): RFC 8428 §4-5 with OMA LwM2M 1.1 Core
//! §7.4.5's rules: names are paths (base name + name), `v`/`vs`/`vb`, `vd` base64url
//! opaque, `vlo` object links (`"3:0"`). Base name and base time carry over to the records
//! after them; times are read and dropped (a [`Record`] holds the latest value).

use base64::Engine as _;
use serde_json::{Map, Value as Json};

use super::senml::{self, B64STD, B64URL, Raw};
use super::{ContentError, malformed};
use crate::types::{Kind, Path, Record};

const NAME: &str = "SenML JSON";

pub fn decode(payload: &[u8], kind_of: &dyn Fn(&Path) -> Option<Kind>) -> Result<Vec<Record>, ContentError> {
    let json: Json = serde_json::from_slice(payload).map_err(|e| malformed(NAME, e.to_string()))?;
    let Json::Array(items) = json else {
        return Err(malformed(NAME, "not an array of records"));
    };
    let mut bn = String::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Json::Object(map) = item else {
            return Err(malformed(NAME, "a record is not an object"));
        };
        if let Some(b) = map.get("bn") {
            bn = b.as_str().ok_or_else(|| malformed(NAME, "bn is not a string"))?.to_string();
        }
        let n = match map.get("n") {
            None => None,
            Some(n) => Some(n.as_str().ok_or_else(|| malformed(NAME, "n is not a string"))?),
        };
        for key in ["bt", "t"] {
            if map.get(key).is_some_and(|t| !t.is_number()) {
                return Err(malformed(NAME, format!("{key} is not a number")));
            }
        }
        let path = senml::full_name(NAME, &bn, n)?;
        let raw = raw_value(&map, &path)?;
        out.push(Record { path, value: senml::typed(NAME, &path, raw, kind_of(&path))? });
    }
    Ok(out)
}

fn raw_value(map: &Map<String, Json>, path: &Path) -> Result<Raw, ContentError> {
    let mut found = None;
    for key in ["v", "vs", "vb", "vd", "vlo"] {
        let Some(v) = map.get(key) else { continue };
        if found.is_some() {
            return Err(malformed(NAME, format!("{path}: more than one value")));
        }
        let bad = || malformed(NAME, format!("{path}: {key} is {v}"));
        found = Some(match key {
            "v" => v.as_number().and_then(senml::raw_number).ok_or_else(bad)?,
            "vs" => Raw::Str(v.as_str().ok_or_else(bad)?.to_string()),
            "vb" => Raw::Bool(v.as_bool().ok_or_else(bad)?),
            "vd" => {
                let s = v.as_str().ok_or_else(bad)?;
                Raw::Data(B64URL.decode(s).or_else(|_| B64STD.decode(s)).map_err(|_| bad())?)
            }
            _ => Raw::Link(v.as_str().ok_or_else(bad)?.to_string()),
        });
    }
    found.ok_or_else(|| malformed(NAME, format!("{path}: a record without a value")))
}

pub fn encode(path: Path, records: &[Record]) -> Result<Vec<u8>, ContentError> {
    let (bn, names) = senml::names(path, records);
    let mut items = Vec::with_capacity(records.len());
    for (i, (r, n)) in records.iter().zip(names).enumerate() {
        let mut map = Map::new();
        if let (0, Some(bn)) = (i, &bn) {
            map.insert("bn".into(), Json::String(bn.clone()));
        }
        if !n.is_empty() {
            map.insert("n".into(), Json::String(n));
        }
        let (key, value) = match senml::raw_of(&r.value) {
            Raw::Str(s) => ("vs", Json::String(s)),
            Raw::Bool(b) => ("vb", Json::Bool(b)),
            Raw::Data(d) => ("vd", Json::String(B64URL.encode(d))),
            Raw::Link(l) => ("vlo", Json::String(l)),
            number => (
                "v",
                senml::json_number(&number)
                    .ok_or_else(|| malformed(NAME, format!("{}: {:?} has no JSON form", r.path, r.value)))?,
            ),
        };
        map.insert(key.into(), value);
        items.push(Json::Object(map));
    }
    serde_json::to_vec(&Json::Array(items)).map_err(|e| malformed(NAME, e.to_string()))
}
