//! Object definitions (OMA LwM2M 1.1 Core §7.1, Appendix D): the registry's XML files
//! (`<LWM2M><Object><ObjectID/>...<Resources><Item ID=".."><Type/>...`) parsed into
//! [`ObjectDef`]s, so payloads that do not carry types (TLV, plain text) are typed and
//! commands can be checked. [`Registry::builtin`] holds the shipped objects (0-7 and IPSO
//! 3303, 3304, 3311, in `protocols/lwm2m/objects/`); [`Registry::load_dir`] adds or
//! replaces definitions from a directory of XML files (the config's `xml_dir`).

use std::collections::{BTreeMap, HashMap};

use crate::types::{Kind, Path};

/// What the server may do with a resource (`<Operations>`: R, W, RW, E or empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Operations {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    pub id: u16,
    pub name: String,
    pub operations: Operations,
    pub multiple: bool,
    pub mandatory: bool,
    /// `Kind::None` for executable resources (no `<Type>`).
    pub kind: Kind,
    pub range: String,
    pub units: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDef {
    pub id: u16,
    pub name: String,
    pub urn: String,
    pub version: String,
    pub multiple: bool,
    pub mandatory: bool,
    pub resources: BTreeMap<u16, ResourceDef>,
}

impl ObjectDef {
    pub fn resource(&self, id: u16) -> Option<&ResourceDef> {
        self.resources.get(&id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectsError {
    #[error("object definitions {file}: {reason}")]
    Xml { file: String, reason: String },
    #[error("object definitions {file}: {reason}")]
    Io { file: String, reason: String },
}

/// An XML file larger than this is refused (the largest registry objects are ~150 KB).
const MAX_FILE: u64 = 4 << 20;

/// The shipped definitions, by file name.
const BUILTIN: &[(&str, &str)] = &[
    ("0.xml", include_str!("../objects/0.xml")),
    ("1.xml", include_str!("../objects/1.xml")),
    ("2.xml", include_str!("../objects/2.xml")),
    ("3.xml", include_str!("../objects/3.xml")),
    ("4.xml", include_str!("../objects/4.xml")),
    ("5.xml", include_str!("../objects/5.xml")),
    ("6.xml", include_str!("../objects/6.xml")),
    ("7.xml", include_str!("../objects/7.xml")),
    ("3303.xml", include_str!("../objects/3303.xml")),
    ("3304.xml", include_str!("../objects/3304.xml")),
    ("3311.xml", include_str!("../objects/3311.xml")),
];

/// Object definitions by object id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    objects: HashMap<u16, ObjectDef>,
}

impl Registry {
    /// The shipped objects. They are ours and tested to parse; one that did not would be
    /// left out and logged rather than stop the gateway.
    pub fn builtin() -> Registry {
        let mut reg = Registry::default();
        for (name, text) in BUILTIN {
            if let Err(e) = reg.load_xml(name, text) {
                tracing::error!("built-in {e}");
            }
        }
        reg
    }

    /// The shipped objects plus (replacing same ids) those in `dir`.
    pub fn with_dir(dir: impl AsRef<std::path::Path>) -> Result<Registry, ObjectsError> {
        let mut reg = Registry::builtin();
        reg.load_dir(dir)?;
        Ok(reg)
    }

    /// Adds the objects of every `*.xml` file in `dir` (in file name order), replacing
    /// definitions with the same id; returns how many objects were read. The first file
    /// that cannot be read or parsed fails the whole call, naming the file, and nothing
    /// from `dir` is added.
    pub fn load_dir(&mut self, dir: impl AsRef<std::path::Path>) -> Result<usize, ObjectsError> {
        let dir = dir.as_ref();
        let io = |file: &std::path::Path, e: std::io::Error| ObjectsError::Io {
            file: file.display().to_string(),
            reason: e.to_string(),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")) && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut staged = Registry::default();
        for file in &files {
            let len = std::fs::metadata(file).map_err(|e| io(file, e))?.len();
            if len > MAX_FILE {
                return Err(ObjectsError::Io {
                    file: file.display().to_string(),
                    reason: format!("{len} bytes, over the {MAX_FILE}-byte limit"),
                });
            }
            let text = std::fs::read_to_string(file).map_err(|e| io(file, e))?;
            staged.load_xml(&file.display().to_string(), &text)?;
        }
        let n = staged.objects.len();
        self.objects.extend(staged.objects);
        Ok(n)
    }

    /// Adds the objects of one XML document (`file` names it in errors).
    pub fn load_xml(&mut self, file: &str, text: &str) -> Result<usize, ObjectsError> {
        let defs = parse_xml(text).map_err(|reason| ObjectsError::Xml { file: file.to_string(), reason })?;
        let n = defs.len();
        for def in defs {
            self.insert(def);
        }
        Ok(n)
    }

    pub fn insert(&mut self, def: ObjectDef) {
        self.objects.insert(def.id, def);
    }

    pub fn object(&self, id: u16) -> Option<&ObjectDef> {
        self.objects.get(&id)
    }

    /// The definition of the resource `path` names (`/o/i/r` or `/o/i/r/ri`).
    pub fn resource(&self, path: &Path) -> Option<&ResourceDef> {
        self.object(path.object()?)?.resource(path.resource()?)
    }

    /// The data type of the resource `path` names, if its object is known.
    pub fn kind(&self, path: &Path) -> Option<Kind> {
        self.resource(path).map(|r| r.kind)
    }

    /// The known object ids, ascending.
    pub fn ids(&self) -> Vec<u16> {
        let mut ids: Vec<u16> = self.objects.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Parses an `<LWM2M>` document with one or more `<Object>`s.
pub fn parse_xml(text: &str) -> Result<Vec<ObjectDef>, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    let objects: Vec<_> = if root.has_tag_name("Object") {
        vec![root]
    } else {
        root.children().filter(|n| n.has_tag_name("Object")).collect()
    };
    if objects.is_empty() {
        return Err(format!("no <Object> under <{}>", root.tag_name().name()));
    }
    objects.into_iter().map(object).collect()
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    node.children().find(|n| n.has_tag_name(name)).and_then(|n| n.text()).map_or("", str::trim)
}

fn object(node: roxmltree::Node<'_, '_>) -> Result<ObjectDef, String> {
    let id_text = child_text(node, "ObjectID");
    let id: u16 = id_text
        .parse()
        .ok()
        .filter(|id| *id != u16::MAX)
        .ok_or_else(|| format!("<ObjectID> {id_text:?} is not an object id"))?;
    let mut resources = BTreeMap::new();
    let items = node
        .children()
        .filter(|n| n.has_tag_name("Resources"))
        .flat_map(|r| r.children())
        .filter(|n| n.has_tag_name("Item"));
    for item in items {
        let res = resource(item).map_err(|e| format!("object {id}: {e}"))?;
        resources.insert(res.id, res);
    }
    Ok(ObjectDef {
        id,
        name: child_text(node, "Name").to_string(),
        urn: child_text(node, "ObjectURN").to_string(),
        version: child_text(node, "ObjectVersion").to_string(),
        multiple: is_multiple(child_text(node, "MultipleInstances")),
        mandatory: child_text(node, "Mandatory").eq_ignore_ascii_case("mandatory"),
        resources,
    })
}

fn resource(item: roxmltree::Node<'_, '_>) -> Result<ResourceDef, String> {
    let id_text = item.attribute("ID").unwrap_or("").trim();
    let id: u16 = id_text
        .parse()
        .ok()
        .filter(|id| *id != u16::MAX)
        .ok_or_else(|| format!("<Item ID={id_text:?}> is not a resource id"))?;
    let ops = child_text(item, "Operations").to_ascii_uppercase();
    let ty = child_text(item, "Type");
    let kind = kind_of_type(ty).ok_or_else(|| format!("resource {id}: unknown <Type> {ty:?}"))?;
    Ok(ResourceDef {
        id,
        name: child_text(item, "Name").to_string(),
        operations: Operations { read: ops.contains('R'), write: ops.contains('W'), execute: ops.contains('E') },
        multiple: is_multiple(child_text(item, "MultipleInstances")),
        mandatory: child_text(item, "Mandatory").eq_ignore_ascii_case("mandatory"),
        kind,
        range: child_text(item, "RangeEnumeration").to_string(),
        units: child_text(item, "Units").to_string(),
    })
}

fn is_multiple(s: &str) -> bool {
    s.eq_ignore_ascii_case("multiple")
}

/// `<Type>` as the registry spells it (Appendix C); empty for executable resources.
fn kind_of_type(ty: &str) -> Option<Kind> {
    Some(match ty.to_ascii_lowercase().as_str() {
        "" | "none" => Kind::None,
        "string" => Kind::String,
        "integer" => Kind::Integer,
        "unsigned integer" | "unsignedinteger" => Kind::UnsignedInteger,
        "float" => Kind::Float,
        "boolean" => Kind::Boolean,
        "opaque" => Kind::Opaque,
        "time" => Kind::Time,
        "objlnk" => Kind::Objlnk,
        "corelnk" | "corelink" => Kind::CoreLink,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn builtin_objects_parse_and_type_resources() {
        let reg = Registry::builtin();
        assert_eq!(reg.ids(), [0, 1, 2, 3, 4, 5, 6, 7, 3303, 3304, 3311]);
        for (name, text) in BUILTIN {
            assert_eq!(Registry::default().load_xml(name, text), Ok(1), "{name}");
        }
        assert_eq!(reg.kind(&p("/3/0/9")), Some(Kind::Integer));
        assert_eq!(reg.kind(&p("/3/0/13")), Some(Kind::Time));
        assert_eq!(reg.kind(&p("/3/0/0")), Some(Kind::String));
        assert_eq!(reg.kind(&p("/3/0/6/1")), Some(Kind::Integer));
        assert_eq!(reg.kind(&p("/3/0/4")), Some(Kind::None));
        assert_eq!(reg.kind(&p("/3303/0/5700")), Some(Kind::Float));
        assert_eq!(reg.kind(&p("/3311/2/5850")), Some(Kind::Boolean));
        assert_eq!(reg.kind(&p("/0/1/3")), Some(Kind::Opaque));
        assert_eq!(reg.kind(&p("/1/0/1")), Some(Kind::Integer));
        assert_eq!(reg.kind(&p("/9999/0/1")), None);
        assert_eq!(reg.kind(&p("/3/0/999")), None);
        assert_eq!(reg.kind(&p("/3/0")), None);
        let device = reg.object(3).unwrap();
        assert_eq!((device.name.as_str(), device.multiple, device.mandatory), ("Device", false, true));
        let power = device.resource(6).unwrap();
        assert!(power.multiple && power.operations == Operations { read: true, write: false, execute: false });
        assert!(reg.object(3303).unwrap().multiple);
    }

    #[test]
    fn load_dir_adds_and_overrides_and_names_bad_files() {
        let dir = std::env::temp_dir().join(format!("roost-lwm2m-objects-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let custom = r#"<?xml version="1.0"?><LWM2M><Object ObjectType="MODefinition"><Name>Meter</Name>
            <ObjectID>10300</ObjectID><MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>
            <Resources><Item ID="1"><Name>Reading</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances>
            <Mandatory>Mandatory</Mandatory><Type>Unsigned Integer</Type></Item></Resources></Object>
            <Object><Name>Device</Name><ObjectID>3</ObjectID><Resources><Item ID="9"><Type>Float</Type></Item></Resources></Object></LWM2M>"#;
        std::fs::write(dir.join("custom.xml"), custom).unwrap();
        std::fs::write(dir.join("notes.txt"), "not xml, not read").unwrap();
        let mut reg = Registry::builtin();
        assert_eq!(reg.load_dir(&dir), Ok(2));
        assert_eq!(reg.kind(&p("/10300/0/1")), Some(Kind::UnsignedInteger));
        assert_eq!(reg.kind(&p("/3/0/9")), Some(Kind::Float));
        assert_eq!(reg.kind(&p("/3/0/13")), None, "the whole object is replaced");

        std::fs::write(dir.join("zz-broken.xml"), "<LWM2M><Object><ObjectID>x</ObjectID></Object></LWM2M>").unwrap();
        let err = Registry::with_dir(&dir).unwrap_err();
        assert!(err.to_string().contains("zz-broken.xml") && err.to_string().contains("ObjectID"), "{err}");
        std::fs::write(dir.join("zz-broken.xml"), "<LWM2M><Object><ObjectID>5</ObjectID><Resources><Item ID=\"1\"><Type>Quaternion</Type></Item></Resources></Object></LWM2M>").unwrap();
        assert!(Registry::with_dir(&dir).unwrap_err().to_string().contains("Quaternion"));
        std::fs::write(dir.join("zz-broken.xml"), "<LWM2M><Object>").unwrap();
        assert!(Registry::with_dir(&dir).unwrap_err().to_string().contains("zz-broken.xml"));
        let missing = dir.join("missing");
        assert!(Registry::with_dir(&missing).unwrap_err().to_string().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
