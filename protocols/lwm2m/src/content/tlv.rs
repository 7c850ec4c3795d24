//! OMA TLV (`application/vnd.oma.lwm2m+tlv`, 11542), OMA LwM2M 1.1 Core §7.4.3.
//!
//! Each entry is a type byte (bits 7-6: object instance, resource instance, multiple
//! resource, resource with value; bit 5: 16-bit identifier; bits 4-3: length in 0/1/2/3
//! following bytes; bits 2-0: the length itself when bits 4-3 are 0), the identifier and
//! the value. Object instances hold resources, multiple resources hold resource instances.
//! The payload carries no types: values are typed with the object definitions, raw bytes
//! (Opaque) where the resource is unknown. Lengths are checked against the bytes left
//! before anything is sliced, so a header claiming 16 MB allocates nothing.

use super::{ContentError, malformed};
use crate::types::{Kind, Path, Record, Value};

const NAME: &str = "TLV";

/// The four identifier kinds (bits 7-6 of the type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ident {
    ObjectInstance = 0,
    ResourceInstance = 1,
    MultipleResource = 2,
    Resource = 3,
}

impl Ident {
    /// The length of the path this entry names (`/o/i` = 2, `/o/i/r` = 3, `/o/i/r/ri` = 4).
    fn depth(self) -> usize {
        match self {
            Ident::ObjectInstance => 2,
            Ident::MultipleResource | Ident::Resource => 3,
            Ident::ResourceInstance => 4,
        }
    }
}

/// One entry, borrowed from the payload.
struct Entry<'a> {
    ident: Ident,
    id: u16,
    value: &'a [u8],
}

/// Reads the entries of one level.
struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, ContentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = read_entry(self.rest).map(|(entry, rest)| {
            self.rest = rest;
            entry
        });
        if r.is_err() {
            self.rest = &[];
        }
        Some(r)
    }
}

fn read_entry(buf: &[u8]) -> Result<(Entry<'_>, &[u8]), ContentError> {
    let (&ty, mut rest) = buf.split_first().ok_or_else(|| malformed(NAME, "empty entry"))?;
    let ident = match ty >> 6 {
        0 => Ident::ObjectInstance,
        1 => Ident::ResourceInstance,
        2 => Ident::MultipleResource,
        _ => Ident::Resource,
    };
    let id_len = if ty & 0x20 != 0 { 2 } else { 1 };
    let id = take_uint(&mut rest, id_len, "identifier")? as u16;
    let len = match (ty >> 3) & 0x03 {
        0 => usize::from(ty & 0x07),
        n => take_uint(&mut rest, usize::from(n), "length")? as usize,
    };
    if len > rest.len() {
        return Err(malformed(NAME, format!("entry {id} claims {len} bytes, {} left", rest.len())));
    }
    let (value, rest) = rest.split_at(len);
    Ok((Entry { ident, id, value }, rest))
}

fn take_uint(rest: &mut &[u8], n: usize, what: &str) -> Result<u64, ContentError> {
    if rest.len() < n {
        return Err(malformed(NAME, format!("truncated {what}")));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// The path an entry names, below the path of its parent (the request path at the top
/// level). A client may wrap its answer in the entry for the requested node itself (an
/// object instance header around `/3/0`), and may answer a read of an object with one
/// instance's resources bare: those are taken as instance 0.
fn entry_path(parent: Path, ident: Ident, id: u16) -> Result<Path, ContentError> {
    let depth = ident.depth();
    let bad = || malformed(NAME, format!("{ident:?} {id} cannot stand under {parent}"));
    if parent.len() + 1 == depth {
        return parent.child(id).map_err(|_| bad());
    }
    if parent.len() >= depth && parent.ids()[depth - 1] == id {
        return Path::new(&parent.ids()[..depth]).map_err(|_| bad());
    }
    if parent.len() == 1 && depth == 3 {
        return parent.child(0).and_then(|p| p.child(id)).map_err(|_| bad());
    }
    Err(bad())
}

/// Decodes a TLV payload for a request on `path`.
pub fn decode(
    path: Path,
    payload: &[u8],
    kind_of: &dyn Fn(&Path) -> Option<Kind>,
) -> Result<Vec<Record>, ContentError> {
    if path.is_empty() {
        return Err(root());
    }
    let mut out = Vec::new();
    decode_level(path, payload, kind_of, &mut out, 0)?;
    Ok(out)
}

fn decode_level(
    parent: Path,
    buf: &[u8],
    kind_of: &dyn Fn(&Path) -> Option<Kind>,
    out: &mut Vec<Record>,
    nesting: u8,
) -> Result<(), ContentError> {
    for entry in (Entries { rest: buf }) {
        let entry = entry?;
        let path = entry_path(parent, entry.ident, entry.id)?;
        match entry.ident {
            Ident::ObjectInstance | Ident::MultipleResource => {
                // The structure is at most instance > multiple resource > instance, so two
                // levels of nesting below the top.
                if nesting >= 2 {
                    return Err(malformed(NAME, "nested too deep"));
                }
                decode_level(path, entry.value, kind_of, out, nesting + 1)?;
            }
            Ident::Resource | Ident::ResourceInstance => {
                let value = decode_value(&path, entry.value, kind_of(&path))?;
                out.push(Record { path, value });
            }
        }
    }
    Ok(())
}

fn root() -> ContentError {
    malformed(NAME, "TLV cannot carry the root: name an object")
}

/// One value, typed by the object definitions (§7.4.3 data types table).
pub fn decode_value(path: &Path, b: &[u8], kind: Option<Kind>) -> Result<Value, ContentError> {
    let bad = |what: &str| malformed(NAME, format!("{path}: {} bytes are not {what}", b.len()));
    let utf8 = || String::from_utf8(b.to_vec()).map_err(|_| malformed(NAME, format!("{path}: not UTF-8")));
    Ok(match kind {
        Some(Kind::String) => Value::String(utf8()?),
        Some(Kind::CoreLink) => Value::CoreLink(utf8()?),
        Some(Kind::Integer) => Value::Integer(signed(b).ok_or_else(|| bad("an integer"))?),
        Some(Kind::Time) => Value::Time(signed(b).ok_or_else(|| bad("a time"))?),
        Some(Kind::UnsignedInteger) => match b.len() {
            1 | 2 | 4 | 8 => Value::UnsignedInteger(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))),
            _ => return Err(bad("an unsigned integer")),
        },
        Some(Kind::Float) => match b {
            [a, b2, c, d] => Value::Float(f64::from(f32::from_be_bytes([*a, *b2, *c, *d]))),
            _ => Value::Float(f64::from_be_bytes(b.try_into().map_err(|_| bad("a float"))?)),
        },
        Some(Kind::Boolean) => match b {
            [0] => Value::Boolean(false),
            [1] => Value::Boolean(true),
            _ => return Err(bad("a boolean")),
        },
        Some(Kind::Objlnk) => match b {
            [a, b2, c, d] => Value::Objlnk(u16::from_be_bytes([*a, *b2]), u16::from_be_bytes([*c, *d])),
            _ => return Err(bad("an object link")),
        },
        Some(Kind::Opaque) | Some(Kind::None) | None => Value::Opaque(b.to_vec()),
    })
}

fn signed(b: &[u8]) -> Option<i64> {
    Some(match b.len() {
        1 => i64::from(b[0] as i8),
        2 => i64::from(i16::from_be_bytes([b[0], b[1]])),
        4 => i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        8 => i64::from_be_bytes(b.try_into().ok()?),
        _ => return None,
    })
}

/// One value's bytes: integers in the fewest of 1/2/4/8 bytes, floats in 4 bytes when that
/// is exact, else 8.
pub fn encode_value(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) | Value::CoreLink(s) => s.as_bytes().to_vec(),
        Value::Integer(i) | Value::Time(i) => {
            if let Ok(v) = i8::try_from(*i) {
                v.to_be_bytes().to_vec()
            } else if let Ok(v) = i16::try_from(*i) {
                v.to_be_bytes().to_vec()
            } else if let Ok(v) = i32::try_from(*i) {
                v.to_be_bytes().to_vec()
            } else {
                i.to_be_bytes().to_vec()
            }
        }
        Value::UnsignedInteger(u) => {
            if let Ok(v) = u8::try_from(*u) {
                vec![v]
            } else if let Ok(v) = u16::try_from(*u) {
                v.to_be_bytes().to_vec()
            } else if let Ok(v) = u32::try_from(*u) {
                v.to_be_bytes().to_vec()
            } else {
                u.to_be_bytes().to_vec()
            }
        }
        Value::Float(f) => {
            let single = *f as f32;
            if f64::from(single).to_bits() == f.to_bits() {
                single.to_be_bytes().to_vec()
            } else {
                f.to_be_bytes().to_vec()
            }
        }
        Value::Boolean(b) => vec![u8::from(*b)],
        Value::Objlnk(o, i) => [o.to_be_bytes(), i.to_be_bytes()].concat(),
        Value::Opaque(b) => b.clone(),
    }
}

fn write_entry(out: &mut Vec<u8>, ident: Ident, id: u16, value: &[u8]) -> Result<(), ContentError> {
    let len = value.len();
    let mut ty = (ident as u8) << 6;
    if id > 0xFF {
        ty |= 0x20;
    }
    let len_bytes: usize = match len {
        0..=7 => {
            ty |= len as u8;
            0
        }
        8..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => return Err(malformed(NAME, format!("a value of {len} bytes does not fit a 24-bit length"))),
    };
    ty |= (len_bytes as u8) << 3;
    out.push(ty);
    if id > 0xFF {
        out.extend_from_slice(&id.to_be_bytes());
    } else {
        out.push(id as u8);
    }
    out.extend_from_slice(&(len as u32).to_be_bytes()[4 - len_bytes..]);
    out.extend_from_slice(value);
    Ok(())
}

/// One resource entry to write: a single value, or a multiple resource's instances.
enum Res<'a> {
    Single(u16, &'a Value),
    Multiple(u16, Vec<(u16, &'a Value)>),
}

/// Resources of one instance, in the order first seen.
#[derive(Default)]
struct Resources<'a> {
    items: Vec<Res<'a>>,
}

impl<'a> Resources<'a> {
    fn add(&mut self, path: &Path, value: &'a Value) {
        let ids = path.ids();
        let rid = ids[2];
        let Some(&ri) = ids.get(3) else {
            self.items.push(Res::Single(rid, value));
            return;
        };
        for item in &mut self.items {
            if let Res::Multiple(id, list) = item
                && *id == rid
            {
                list.push((ri, value));
                return;
            }
        }
        self.items.push(Res::Multiple(rid, vec![(ri, value)]));
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), ContentError> {
        for item in &self.items {
            match item {
                Res::Single(rid, v) => write_entry(out, Ident::Resource, *rid, &encode_value(v))?,
                Res::Multiple(rid, list) => {
                    let mut inner = Vec::new();
                    for (ri, v) in list {
                        write_entry(&mut inner, Ident::ResourceInstance, *ri, &encode_value(v))?;
                    }
                    write_entry(out, Ident::MultipleResource, *rid, &inner)?;
                }
            }
        }
        Ok(())
    }
}

/// Encodes `records` for a request on `path`: object instance entries under an object,
/// resources (single or multiple) under an instance, a multiple resource or a resource
/// under a resource, resource instances under a resource instance.
pub fn encode(path: Path, records: &[Record]) -> Result<Vec<u8>, ContentError> {
    for r in records {
        if !path.contains(&r.path) || r.path.len() < 3 {
            return Err(malformed(NAME, format!("cannot write a value at {} in a payload for {path}", r.path)));
        }
    }
    let mut out = Vec::new();
    match path.len() {
        1 => {
            let mut instances: Vec<(u16, Resources<'_>)> = Vec::new();
            for r in records {
                let iid = r.path.ids()[1];
                let pos = match instances.iter().position(|(id, _)| *id == iid) {
                    Some(pos) => pos,
                    None => {
                        instances.push((iid, Resources::default()));
                        instances.len() - 1
                    }
                };
                instances[pos].1.add(&r.path, &r.value);
            }
            for (iid, resources) in &instances {
                let mut inner = Vec::new();
                resources.write(&mut inner)?;
                write_entry(&mut out, Ident::ObjectInstance, *iid, &inner)?;
            }
        }
        2 | 3 => {
            let mut resources = Resources::default();
            for r in records {
                resources.add(&r.path, &r.value);
            }
            resources.write(&mut out)?;
        }
        4 => {
            for r in records {
                write_entry(&mut out, Ident::ResourceInstance, r.path.ids()[3], &encode_value(&r.value))?;
            }
        }
        _ => return Err(root()),
    }
    Ok(out)
}
