//! The simulated device's object tree (OMA LwM2M 1.1 Core §6.1 operations on objects 1
//! Server, 3 Device, 5 Firmware Update and IPSO 3303 Temperature), values held typed. The simulator carries
//! its own small resource table instead of the object registry so it stays a client that
//! only knows what a real device of its kind would know.

use std::collections::BTreeMap;

use roost_lwm2m::types::{Kind, Path, Record, Value};

/// What the server may do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
    Execute,
}

#[derive(Debug, Clone, Copy)]
pub struct ResourceDef {
    pub id: u16,
    pub kind: Kind,
    pub access: Access,
}

const fn r(id: u16, kind: Kind, access: Access) -> ResourceDef {
    ResourceDef { id, kind, access }
}

const SERVER: &[ResourceDef] = &[
    r(0, Kind::Integer, Access::Read),
    r(1, Kind::Integer, Access::ReadWrite),
    r(2, Kind::Integer, Access::ReadWrite),
    r(3, Kind::Integer, Access::ReadWrite),
    r(6, Kind::Boolean, Access::ReadWrite),
    r(7, Kind::String, Access::ReadWrite),
    r(8, Kind::None, Access::Execute),
];

const DEVICE: &[ResourceDef] = &[
    r(0, Kind::String, Access::Read),
    r(1, Kind::String, Access::Read),
    r(2, Kind::String, Access::Read),
    r(3, Kind::String, Access::Read),
    r(4, Kind::None, Access::Execute),
    r(9, Kind::Integer, Access::Read),
    r(13, Kind::Time, Access::ReadWrite),
    r(14, Kind::String, Access::ReadWrite),
    r(16, Kind::String, Access::Read),
];

const TEMPERATURE: &[ResourceDef] = &[
    r(5601, Kind::Float, Access::Read),
    r(5602, Kind::Float, Access::Read),
    r(5605, Kind::None, Access::Execute),
    r(5700, Kind::Float, Access::Read),
    r(5701, Kind::String, Access::ReadWrite),
];

/// Firmware Update (object 5). The Package (0) is write-only in the OMA definition; here it
/// reads back what was written, so a test can check a block-wise write arrived whole.
const FIRMWARE: &[ResourceDef] = &[
    r(0, Kind::Opaque, Access::ReadWrite),
    r(1, Kind::String, Access::ReadWrite),
    r(2, Kind::None, Access::Execute),
    r(3, Kind::Integer, Access::Read),
    r(5, Kind::Integer, Access::Read),
];

pub const TEMPERATURE_OBJECT: u16 = 3303;
const FIRMWARE_OBJECT: u16 = 5;

/// The resource table of an object this device implements.
pub fn object_defs(object: u16) -> Option<&'static [ResourceDef]> {
    match object {
        1 => Some(SERVER),
        3 => Some(DEVICE),
        FIRMWARE_OBJECT => Some(FIRMWARE),
        TEMPERATURE_OBJECT => Some(TEMPERATURE),
        _ => None,
    }
}

pub fn resource_def(path: &Path) -> Option<ResourceDef> {
    let defs = object_defs(path.object()?)?;
    let id = path.resource()?;
    defs.iter().find(|d| d.id == id).copied()
}

/// The type of a resource, for decoding what the server writes.
pub fn kind_of(path: &Path) -> Option<Kind> {
    resource_def(path).map(|d| d.kind)
}

/// Why an operation was refused; maps to a CoAP response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// What an Execute asks the device to do beyond answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exec {
    Reboot,
    UpdateTrigger,
    Done,
}

#[derive(Debug, Clone)]
pub struct Store {
    instances: BTreeMap<(u16, u16), BTreeMap<u16, Value>>,
    /// Max number of 3303 instances Create may make.
    max_sensors: usize,
}

fn sensor_instance() -> BTreeMap<u16, Value> {
    BTreeMap::from([
        (5700, Value::Float(21.0)),
        (5701, Value::String("Cel".into())),
        (5601, Value::Float(21.0)),
        (5602, Value::Float(21.0)),
    ])
}

impl Store {
    pub fn new(endpoint: &str, lifetime_s: u32, binding: &str) -> Store {
        let server = BTreeMap::from([
            (0, Value::Integer(1)),
            (1, Value::Integer(i64::from(lifetime_s))),
            (2, Value::Integer(0)),
            (3, Value::Integer(0)),
            (6, Value::Boolean(false)),
            (7, Value::String(binding.into())),
        ]);
        let device = BTreeMap::from([
            (0, Value::String("Roost".into())),
            (1, Value::String("roost-sim".into())),
            (2, Value::String(endpoint.into())),
            (3, Value::String("1.0".into())),
            (9, Value::Integer(100)),
            (13, Value::Time(0)),
            (14, Value::String("+00:00".into())),
            (16, Value::String(binding.into())),
        ]);
        // Firmware state 0 (Idle), update result 0 (initial).
        let firmware = BTreeMap::from([
            (0, Value::Opaque(Vec::new())),
            (1, Value::String(String::new())),
            (3, Value::Integer(0)),
            (5, Value::Integer(0)),
        ]);
        Store {
            instances: BTreeMap::from([
                ((1, 0), server),
                ((3, 0), device),
                ((FIRMWARE_OBJECT, 0), firmware),
                ((TEMPERATURE_OBJECT, 0), sensor_instance()),
            ]),
            max_sensors: 16,
        }
    }

    /// The registration link list, e.g. `</1/0>,</3/0>,</5/0>,</3303/0>`.
    pub fn object_links(&self) -> String {
        let links: Vec<String> = self.instances.keys().map(|(o, i)| format!("</{o}/{i}>")).collect();
        links.join(",")
    }

    pub fn get(&self, path: &Path) -> Option<&Value> {
        self.instances.get(&(path.object()?, path.instance()?))?.get(&path.resource()?)
    }

    /// Sets a sensor reading on every 3303 instance, keeping min/max.
    pub fn set_temperature(&mut self, celsius: f64) {
        for ((o, _), res) in self.instances.iter_mut() {
            if *o != TEMPERATURE_OBJECT {
                continue;
            }
            let min = match res.get(&5601) {
                Some(Value::Float(m)) => m.min(celsius),
                _ => celsius,
            };
            let max = match res.get(&5602) {
                Some(Value::Float(m)) => m.max(celsius),
                _ => celsius,
            };
            res.insert(5700, Value::Float(celsius));
            res.insert(5601, Value::Float(min));
            res.insert(5602, Value::Float(max));
        }
    }

    /// Read (§6.3.1) of an object, instance or resource: the readable values below `path`.
    pub fn read(&self, path: &Path) -> Result<Vec<Record>, Refusal> {
        let object = path.object().ok_or(Refusal::MethodNotAllowed)?;
        if object_defs(object).is_none() || path.len() > 3 {
            return Err(Refusal::NotFound);
        }
        if path.len() == 3 {
            let def = resource_def(path).ok_or(Refusal::NotFound)?;
            if def.access == Access::Execute {
                return Err(Refusal::MethodNotAllowed);
            }
        }
        let mut out = Vec::new();
        let mut found = false;
        for ((o, i), res) in &self.instances {
            if *o != object || path.instance().is_some_and(|want| want != *i) {
                continue;
            }
            found = true;
            for (id, value) in res {
                let p = Path::new(&[*o, *i, *id]).map_err(|_| Refusal::NotFound)?;
                if path.contains(&p) {
                    out.push(Record { path: p, value: value.clone() });
                }
            }
        }
        if !found || (path.len() == 3 && out.is_empty()) {
            return Err(Refusal::NotFound);
        }
        Ok(out)
    }

    /// Discover (§6.3.3): the link list of what is below `path`, with `attrs` (the written
    /// attributes, already as `;pmin=..` suffixes) where present.
    pub fn discover(&self, path: &Path, attrs: &dyn Fn(&Path) -> String) -> Result<String, Refusal> {
        let object = path.object().ok_or(Refusal::MethodNotAllowed)?;
        let defs = object_defs(object).ok_or(Refusal::NotFound)?;
        let mut links = Vec::new();
        if path.len() == 1 {
            links.push(format!("</{object}>{}", attrs(path)));
        }
        for ((o, i), res) in &self.instances {
            if *o != object || path.instance().is_some_and(|want| want != *i) {
                continue;
            }
            let ip = Path::new(&[*o, *i]).map_err(|_| Refusal::NotFound)?;
            if path.len() <= 2 {
                links.push(format!("<{ip}>{}", attrs(&ip)));
            }
            for d in defs {
                let rp = ip.child(d.id).map_err(|_| Refusal::NotFound)?;
                let present = res.contains_key(&d.id) || d.access == Access::Execute;
                if present && path.contains(&rp) {
                    links.push(format!("<{rp}>{}", attrs(&rp)));
                }
            }
        }
        if links.is_empty() {
            return Err(Refusal::NotFound);
        }
        Ok(links.join(","))
    }

    /// Write (§6.3.4), replace or partial update alike: each record must name a writable
    /// resource below `path` of an existing instance, with a value of its type.
    pub fn write(&mut self, path: &Path, records: &[Record]) -> Result<(), Refusal> {
        if path.len() < 2 || records.is_empty() {
            return Err(Refusal::BadRequest);
        }
        for rec in records {
            if !path.contains(&rec.path) || rec.path.len() != 3 {
                return Err(Refusal::BadRequest);
            }
            let def = resource_def(&rec.path).ok_or(Refusal::NotFound)?;
            if def.access != Access::ReadWrite {
                return Err(Refusal::MethodNotAllowed);
            }
            if def.kind != rec.value.kind() {
                return Err(Refusal::BadRequest);
            }
            self.instance(&rec.path).ok_or(Refusal::NotFound)?;
        }
        for rec in records {
            if let (Some(res), Some(id)) = (self.instance_mut(&rec.path), rec.path.resource()) {
                res.insert(id, rec.value.clone());
                // A firmware package written: state 2 (Downloaded); an empty one: 0 (Idle).
                if rec.path.object() == Some(FIRMWARE_OBJECT) && id == 0 {
                    let downloaded = matches!(&rec.value, Value::Opaque(b) if !b.is_empty());
                    res.insert(3, Value::Integer(if downloaded { 2 } else { 0 }));
                }
            }
        }
        Ok(())
    }

    /// Execute (§6.3.5) of an executable resource.
    pub fn execute(&mut self, path: &Path) -> Result<Exec, Refusal> {
        if path.len() != 3 {
            return Err(Refusal::MethodNotAllowed);
        }
        let def = resource_def(path).ok_or(Refusal::NotFound)?;
        self.instance(path).ok_or(Refusal::NotFound)?;
        if def.access != Access::Execute {
            return Err(Refusal::MethodNotAllowed);
        }
        Ok(match (path.object(), path.resource()) {
            (Some(3), Some(4)) => Exec::Reboot,
            (Some(1), Some(8)) => Exec::UpdateTrigger,
            (Some(TEMPERATURE_OBJECT), Some(5605)) => {
                if let Some(res) = self.instance_mut(path)
                    && let Some(v) = res.get(&5700).cloned()
                {
                    res.insert(5601, v.clone());
                    res.insert(5602, v);
                }
                Exec::Done
            }
            _ => Exec::Done,
        })
    }

    /// Create (§6.3.6) of a 3303 instance; the instance id comes from the records or is the
    /// lowest free one. Returns the new instance's path.
    pub fn create(&mut self, object: u16, records: &[Record]) -> Result<Path, Refusal> {
        if object != TEMPERATURE_OBJECT {
            return Err(if object_defs(object).is_some() { Refusal::MethodNotAllowed } else { Refusal::NotFound });
        }
        let count = self.instances.keys().filter(|(o, _)| *o == object).count();
        if count >= self.max_sensors {
            return Err(Refusal::BadRequest);
        }
        let id = match records.first().and_then(|r| r.path.instance()) {
            Some(i) => i,
            None => (0..u16::MAX).find(|i| !self.instances.contains_key(&(object, *i))).ok_or(Refusal::BadRequest)?,
        };
        if self.instances.contains_key(&(object, id)) {
            return Err(Refusal::BadRequest);
        }
        let mut res = sensor_instance();
        for rec in records {
            let def = resource_def(&rec.path).ok_or(Refusal::NotFound)?;
            if rec.path.object() != Some(object) || rec.path.instance() != Some(id) || def.kind != rec.value.kind() {
                return Err(Refusal::BadRequest);
            }
            if let Some(rid) = rec.path.resource() {
                res.insert(rid, rec.value.clone());
            }
        }
        self.instances.insert((object, id), res);
        Path::new(&[object, id]).map_err(|_| Refusal::BadRequest)
    }

    /// Delete (§6.3.7) of a 3303 instance.
    pub fn delete(&mut self, path: &Path) -> Result<(), Refusal> {
        if path.len() != 2 || path.object() != Some(TEMPERATURE_OBJECT) {
            return Err(Refusal::MethodNotAllowed);
        }
        let key = (TEMPERATURE_OBJECT, path.instance().unwrap_or(0));
        self.instances.remove(&key).map(|_| ()).ok_or(Refusal::NotFound)
    }

    fn instance(&self, path: &Path) -> Option<&BTreeMap<u16, Value>> {
        self.instances.get(&(path.object()?, path.instance()?))
    }

    fn instance_mut(&mut self, path: &Path) -> Option<&mut BTreeMap<u16, Value>> {
        self.instances.get_mut(&(path.object()?, path.instance()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn read_write_create_delete() {
        let mut s = Store::new("ep1", 60, "U");
        assert_eq!(s.object_links(), "</1/0>,</3/0>,</5/0>,</3303/0>");
        assert_eq!(s.read(&p("/3/0/2")).unwrap()[0].value, Value::String("ep1".into()));
        assert_eq!(s.read(&p("/3303/0")).unwrap().len(), 4);
        assert_eq!(s.read(&p("/3/0/4")), Err(Refusal::MethodNotAllowed));
        assert_eq!(s.read(&p("/3/1")), Err(Refusal::NotFound));
        assert_eq!(s.read(&p("/9")), Err(Refusal::NotFound));
        s.set_temperature(25.5);
        s.set_temperature(19.0);
        let v = |s: &Store, x| s.get(&p(x)).cloned();
        assert_eq!(
            (v(&s, "/3303/0/5700"), v(&s, "/3303/0/5601"), v(&s, "/3303/0/5602")),
            (Some(Value::Float(19.0)), Some(Value::Float(19.0)), Some(Value::Float(25.5)))
        );
        let w = Record { path: p("/1/0/1"), value: Value::Integer(300) };
        s.write(&p("/1/0/1"), &[w]).unwrap();
        assert_eq!(v(&s, "/1/0/1"), Some(Value::Integer(300)));
        let ro = Record { path: p("/3/0/0"), value: Value::String("x".into()) };
        assert_eq!(s.write(&p("/3/0/0"), &[ro]), Err(Refusal::MethodNotAllowed));
        let typo = Record { path: p("/1/0/1"), value: Value::String("x".into()) };
        assert_eq!(s.write(&p("/1/0/1"), &[typo]), Err(Refusal::BadRequest));
        assert_eq!(s.create(3303, &[]).unwrap(), p("/3303/1"));
        assert_eq!(s.object_links(), "</1/0>,</3/0>,</5/0>,</3303/0>,</3303/1>");
        assert_eq!(s.create(3, &[]), Err(Refusal::MethodNotAllowed));
        s.delete(&p("/3303/1")).unwrap();
        assert_eq!(s.delete(&p("/3303/1")), Err(Refusal::NotFound));
        assert_eq!(s.delete(&p("/3/0")), Err(Refusal::MethodNotAllowed));
        assert_eq!(s.execute(&p("/3/0/4")), Ok(Exec::Reboot));
        assert_eq!(s.execute(&p("/3/0/0")), Err(Refusal::MethodNotAllowed));
    }

    #[test]
    fn discover_lists_resources_with_attributes() {
        let s = Store::new("ep1", 60, "U");
        let attrs = |x: &Path| if x.to_string() == "/3303/0/5700" { ";pmin=5".to_string() } else { String::new() };
        assert_eq!(
            s.discover(&p("/3303"), &attrs).unwrap(),
            "</3303>,</3303/0>,</3303/0/5601>,</3303/0/5602>,</3303/0/5605>,</3303/0/5700>;pmin=5,</3303/0/5701>"
        );
        assert_eq!(s.discover(&p("/3/0/4"), &attrs).unwrap(), "</3/0/4>");
    }
}
