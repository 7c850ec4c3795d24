//! LwM2M paths, typed values and content-format numbers (OMA LwM2M 1.1 Core, §7).

use std::fmt;
use std::str::FromStr;

/// CoAP Content-Format numbers LwM2M uses.
pub mod format {
    pub const TEXT: u16 = 0;
    pub const LINK: u16 = 40;
    pub const OPAQUE: u16 = 42;
    pub const CBOR: u16 = 60;
    pub const SENML_JSON: u16 = 110;
    pub const SENML_CBOR: u16 = 112;
    /// `application/vnd.oma.lwm2m+tlv`
    pub const TLV: u16 = 11542;
    /// `application/vnd.oma.lwm2m+json` (LwM2M 1.0 JSON)
    pub const LWM2M_JSON: u16 = 11543;
    /// Pre-registration numbers some 1.0 clients still send.
    pub const TLV_OLD: u16 = 1542;
    pub const LWM2M_JSON_OLD: u16 = 1543;

    /// Names for configuration and commands: `senml-cbor`, `senml-json`, `tlv`,
    /// `lwm2m-json`, `cbor`, `text`, `opaque`; or the number itself.
    pub fn by_name(name: &str) -> Option<u16> {
        Some(match name {
            "senml-cbor" => SENML_CBOR,
            "senml-json" => SENML_JSON,
            "tlv" => TLV,
            "lwm2m-json" => LWM2M_JSON,
            "cbor" => CBOR,
            "text" => TEXT,
            "opaque" => OPAQUE,
            n => return n.parse().ok(),
        })
    }
}

/// A path: `/`, `/3`, `/3/0`, `/3/0/1` or `/3/0/1/2` (object, instance, resource, resource
/// instance). Each id is 0..=65534 (65535 is reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Path {
    ids: [u16; 4],
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad LwM2M path {0:?}: expected /object[/instance[/resource[/resource-instance]]] with ids 0..65534")]
pub struct BadPath(pub String);

impl Path {
    pub const ROOT: Path = Path { ids: [0; 4], len: 0 };

    pub fn new(ids: &[u16]) -> Result<Path, BadPath> {
        if ids.len() > 4 || ids.contains(&u16::MAX) {
            return Err(BadPath(format!("{ids:?}")));
        }
        let mut p = Path { ids: [0; 4], len: ids.len() as u8 };
        p.ids[..ids.len()].copy_from_slice(ids);
        Ok(p)
    }

    pub fn ids(&self) -> &[u16] {
        &self.ids[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn object(&self) -> Option<u16> {
        self.ids().first().copied()
    }

    pub fn instance(&self) -> Option<u16> {
        self.ids().get(1).copied()
    }

    pub fn resource(&self) -> Option<u16> {
        self.ids().get(2).copied()
    }

    pub fn resource_instance(&self) -> Option<u16> {
        self.ids().get(3).copied()
    }

    /// This path with `id` appended, if it is not already 4 deep.
    pub fn child(&self, id: u16) -> Result<Path, BadPath> {
        let mut ids = self.ids().to_vec();
        ids.push(id);
        Path::new(&ids)
    }

    /// Whether `other` is this path or below it.
    pub fn contains(&self, other: &Path) -> bool {
        other.len >= self.len && other.ids()[..self.len()] == *self.ids()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("/");
        }
        for id in self.ids() {
            write!(f, "/{id}")?;
        }
        Ok(())
    }
}

impl FromStr for Path {
    type Err = BadPath;

    /// `/3/0/1`, also without the leading slash or with a trailing one; `/` is the root.
    fn from_str(s: &str) -> Result<Path, BadPath> {
        let t = s.trim();
        let t = t.strip_prefix('/').unwrap_or(t);
        let t = t.strip_suffix('/').unwrap_or(t);
        if t.is_empty() {
            return Ok(Path::ROOT);
        }
        let ids: Result<Vec<u16>, _> = t.split('/').map(str::parse::<u16>).collect();
        Path::new(&ids.map_err(|_| BadPath(s.to_string()))?).map_err(|_| BadPath(s.to_string()))
    }
}

/// The resource data types of OMA LwM2M 1.1 (Appendix C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    String,
    Integer,
    UnsignedInteger,
    Float,
    Boolean,
    Opaque,
    Time,
    Objlnk,
    CoreLink,
    /// Executable resources carry no value.
    None,
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    UnsignedInteger(u64),
    Float(f64),
    Boolean(bool),
    Opaque(Vec<u8>),
    /// Seconds since the Unix epoch.
    Time(i64),
    /// Object link: object id, instance id.
    Objlnk(u16, u16),
    CoreLink(String),
}

impl Value {
    pub fn kind(&self) -> Kind {
        match self {
            Value::String(_) => Kind::String,
            Value::Integer(_) => Kind::Integer,
            Value::UnsignedInteger(_) => Kind::UnsignedInteger,
            Value::Float(_) => Kind::Float,
            Value::Boolean(_) => Kind::Boolean,
            Value::Opaque(_) => Kind::Opaque,
            Value::Time(_) => Kind::Time,
            Value::Objlnk(..) => Kind::Objlnk,
            Value::CoreLink(_) => Kind::CoreLink,
        }
    }
}

/// One resource (or resource instance) value at a full path.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub path: Path,
    pub value: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_print() {
        for s in ["/", "/3", "/3/0", "/3/0/1", "/3/0/7/1", "/65534/0"] {
            assert_eq!(s.parse::<Path>().unwrap().to_string(), s);
        }
        assert_eq!("3/0/".parse::<Path>().unwrap().to_string(), "/3/0");
        for bad in ["/a", "/3/x", "/1/2/3/4/5", "/65535", "//3", "/-1", "/70000"] {
            assert!(bad.parse::<Path>().is_err(), "{bad}");
        }
        let p: Path = "/3/0".parse().unwrap();
        assert_eq!((p.object(), p.instance(), p.resource()), (Some(3), Some(0), None));
        assert!(p.contains(&"/3/0/1".parse().unwrap()) && !p.contains(&"/3/1/1".parse().unwrap()));
        assert_eq!(p.child(9).unwrap().to_string(), "/3/0/9");
    }
}
