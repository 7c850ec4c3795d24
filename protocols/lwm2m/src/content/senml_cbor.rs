//! SenML CBOR (`application/senml+cbor`, 112): RFC 8428 §6 with OMA LwM2M 1.1 Core
//! §7.4.6: an array of maps with integer labels (bn -2, bt -3, n 0, v 2, vs 3, vb 4, t 6,
//! vd 8) and the text label `"vlo"` for object links. Other labels are read past.

use super::cbor::{CborError, Item, Reader, Writer};
use super::senml::{self, Raw};
use super::{ContentError, malformed};
use crate::types::{Kind, Path, Record};

const NAME: &str = "SenML CBOR";

const BN: i64 = -2;
const BT: i64 = -3;
const N: i64 = 0;
const V: i64 = 2;
const VS: i64 = 3;
const VB: i64 = 4;
const T: i64 = 6;
const VD: i64 = 8;
const VLO: &str = "vlo";

impl From<CborError> for ContentError {
    fn from(e: CborError) -> ContentError {
        malformed(NAME, e.0)
    }
}

/// A map key: an integer label or a text one.
enum Label<'a> {
    Int(i64),
    Text(&'a str),
    Other,
}

pub fn decode(payload: &[u8], kind_of: &dyn Fn(&Path) -> Option<Kind>) -> Result<Vec<Record>, ContentError> {
    let mut r = Reader::new(payload);
    let count = match r.next()? {
        Item::Array(n) => n,
        _ => return Err(malformed(NAME, "not an array of records")),
    };
    let mut bn = String::new();
    // Grown as records are read, never sized from the declared count.
    let mut out = Vec::new();
    let mut seen = 0u64;
    loop {
        if count.is_some_and(|n| seen >= n) {
            break;
        }
        let pairs = match r.next()? {
            Item::Break if count.is_none() => break,
            Item::Map(n) => n,
            _ => return Err(malformed(NAME, "a record is not a map")),
        };
        seen += 1;
        let (n, raw) = record(&mut r, pairs, &mut bn)?;
        let path = senml::full_name(NAME, &bn, n)?;
        let raw = raw.ok_or_else(|| malformed(NAME, format!("{path}: a record without a value")))?;
        out.push(Record { path, value: senml::typed(NAME, &path, raw, kind_of(&path))? });
    }
    if !r.at_end() {
        return Err(malformed(NAME, "bytes after the records"));
    }
    Ok(out)
}

/// Reads one record's map: its name and value; a base name updates `bn`.
fn record<'a>(
    r: &mut Reader<'a>,
    pairs: Option<u64>,
    bn: &mut String,
) -> Result<(Option<&'a str>, Option<Raw>), ContentError> {
    let (mut n, mut raw) = (None, None);
    let mut seen = 0u64;
    loop {
        if pairs.is_some_and(|p| seen >= p) {
            break;
        }
        let label = match r.next()? {
            Item::Break if pairs.is_none() => break,
            Item::Uint(u) => i64::try_from(u).map_or(Label::Other, Label::Int),
            Item::Nint(u) => i64::try_from(u).map_or(Label::Other, |u| Label::Int(-1 - u)),
            Item::Text(t) => Label::Text(t),
            other => {
                r.skip_rest(other, 0)?;
                Label::Other
            }
        };
        seen += 1;
        let item = r.next()?;
        let text = |item: &Item<'a>, what: &str| match item {
            Item::Text(t) => Ok(*t),
            _ => Err(malformed(NAME, format!("{what} is not a text string"))),
        };
        let value = match label {
            Label::Int(BN) => {
                *bn = text(&item, "bn")?.to_string();
                None
            }
            Label::Int(N) => {
                n = Some(text(&item, "n")?);
                None
            }
            Label::Int(BT | T) => match item {
                Item::Uint(_) | Item::Nint(_) | Item::Float(_) => None,
                _ => return Err(malformed(NAME, "a time is not a number")),
            },
            Label::Int(V) => Some(match item {
                Item::Uint(u) => Raw::Uint(u),
                Item::Nint(u) => i64::try_from(u).map_or(Raw::Float(-1.0 - u as f64), |u| Raw::Int(-1 - u)),
                Item::Float(f) => Raw::Float(f),
                _ => return Err(malformed(NAME, "v is not a number")),
            }),
            Label::Int(VS) => Some(Raw::Str(text(&item, "vs")?.to_string())),
            Label::Int(VB) => match item {
                Item::Bool(b) => Some(Raw::Bool(b)),
                _ => return Err(malformed(NAME, "vb is not a boolean")),
            },
            Label::Int(VD) => match item {
                Item::Bytes(b) => Some(Raw::Data(b.to_vec())),
                _ => return Err(malformed(NAME, "vd is not a byte string")),
            },
            Label::Text(VLO) => Some(Raw::Link(text(&item, "vlo")?.to_string())),
            _ => {
                r.skip_rest(item, 0)?;
                None
            }
        };
        if let Some(v) = value {
            if raw.is_some() {
                return Err(malformed(NAME, "a record with more than one value"));
            }
            raw = Some(match v {
                // Non-negative integers read as unsigned; typed() narrows them.
                Raw::Uint(u) => i64::try_from(u).map_or(Raw::Uint(u), Raw::Int),
                v => v,
            });
        }
    }
    Ok((n, raw))
}

pub fn encode(path: Path, records: &[Record]) -> Result<Vec<u8>, ContentError> {
    let (bn, names) = senml::names(path, records);
    let mut w = Writer::default();
    w.array(records.len());
    for (i, (r, n)) in records.iter().zip(names).enumerate() {
        let with_bn = i == 0 && bn.is_some();
        w.map(1 + usize::from(with_bn) + usize::from(!n.is_empty()));
        if let (true, Some(bn)) = (with_bn, &bn) {
            w.int(BN);
            w.text(bn);
        }
        if !n.is_empty() {
            w.int(N);
            w.text(&n);
        }
        match senml::raw_of(&r.value) {
            Raw::Int(i) => {
                w.int(V);
                w.int(i);
            }
            Raw::Uint(u) => {
                w.int(V);
                w.uint(u);
            }
            Raw::Float(f) => {
                w.int(V);
                w.float(f);
            }
            Raw::Str(s) => {
                w.int(VS);
                w.text(&s);
            }
            Raw::Bool(b) => {
                w.int(VB);
                w.bool(b);
            }
            Raw::Data(d) => {
                w.int(VD);
                w.bytes(&d);
            }
            Raw::Link(l) => {
                w.text(VLO);
                w.text(&l);
            }
        }
    }
    Ok(w.out)
}
