//! Topic ids (MQTT-SN 1.2 §3, §5.4.10, §6.7, §6.8): predefined ids shared by all clients,
//! normal ids registered per client in both directions, short (two-character) names, and the
//! mountpoint that maps a client's topic names into the broker's namespace.

use std::collections::HashMap;
use std::sync::Arc;

use crate::settings::MqttSnSettings;

pub use crate::codec::TopicId;

/// Predefined topic ids, from config, the same for every client.
#[derive(Debug, Default)]
pub struct Predefined {
    by_id: HashMap<TopicId, Arc<str>>,
    by_name: HashMap<Arc<str>, TopicId>,
}

impl Predefined {
    /// From `[mqttsn] predefined` (id, topic name) pairs.
    pub fn new(entries: &[(u16, String)]) -> Self {
        let mut p = Predefined::default();
        for (id, name) in entries {
            let name: Arc<str> = Arc::from(name.as_str());
            p.by_id.insert(TopicId(*id), name.clone());
            p.by_name.insert(name, TopicId(*id));
        }
        p
    }
    pub fn name(&self, id: TopicId) -> Option<&Arc<str>> {
        self.by_id.get(&id)
    }
    pub fn id(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).copied()
    }
}

/// The mountpoint prefix (§ none: a gateway feature, as in EMQX).
#[derive(Debug, Clone, Default)]
pub struct Mountpoint(String);

impl Mountpoint {
    pub fn new(prefix: &str) -> Self {
        Mountpoint(prefix.to_string())
    }
    /// The broker topic for a client topic name or filter.
    pub fn mount(&self, topic: &str) -> String {
        if self.0.is_empty() { topic.to_string() } else { format!("{}{topic}", self.0) }
    }
    /// The client topic for a broker topic (`None` if outside the mountpoint).
    pub fn unmount<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic.strip_prefix(self.0.as_str())
    }
}

/// Why a registration failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("MQTT-SN REGISTER: the client's topic table is full ({0} names)")]
    Full(usize),
}

/// One client's registered topic names (normal topic ids).
#[derive(Debug)]
pub struct TopicTable {
    by_id: HashMap<TopicId, Arc<str>>,
    by_name: HashMap<Arc<str>, TopicId>,
    last: u16,
    limit: usize,
}

impl TopicTable {
    pub fn new(limit: usize) -> Self {
        TopicTable { by_id: HashMap::new(), by_name: HashMap::new(), last: 0, limit }
    }

    pub fn name(&self, id: TopicId) -> Option<&Arc<str>> {
        self.by_id.get(&id)
    }

    pub fn id(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The id of `name`, registering it if new.
    pub fn register(&mut self, name: &str) -> Result<TopicId, RegisterError> {
        if let Some(id) = self.id(name) {
            return Ok(id);
        }
        if self.by_id.len() >= self.limit {
            return Err(RegisterError::Full(self.limit));
        }
        let id = loop {
            self.last = self.last.wrapping_add(1);
            if self.last != 0 && self.last != 0xFFFF && !self.by_id.contains_key(&TopicId(self.last)) {
                break TopicId(self.last);
            }
        };
        let name: Arc<str> = Arc::from(name);
        self.by_id.insert(id, name.clone());
        self.by_name.insert(name, id);
        Ok(id)
    }

    pub fn remove(&mut self, id: TopicId) {
        if let Some(name) = self.by_id.remove(&id) {
            self.by_name.remove(&name);
        }
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
        self.by_name.clear();
    }
}

/// What every session shares about topics.
#[derive(Debug)]
pub struct TopicConfig {
    pub predefined: Predefined,
    pub mountpoint: Mountpoint,
}

impl TopicConfig {
    pub fn new(s: &MqttSnSettings) -> Self {
        TopicConfig { predefined: Predefined::new(&s.predefined), mountpoint: Mountpoint::new(&s.mountpoint) }
    }
}

/// A short topic name's two bytes as text (`None` if not UTF-8).
pub fn short_name(id: [u8; 2]) -> Option<String> {
    std::str::from_utf8(&id).ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_is_idempotent_bounded_and_skips_reserved_ids() {
        let mut t = TopicTable::new(2);
        let a = t.register("a/b").unwrap();
        assert_eq!(a, TopicId(1));
        assert_eq!(t.register("a/b").unwrap(), a);
        t.register("c").unwrap();
        assert_eq!(t.register("d"), Err(RegisterError::Full(2)));
        t.remove(TopicId(1));
        assert!(t.name(TopicId(1)).is_none());
        t.last = 0xFFFE;
        assert_eq!(t.register("e").unwrap(), TopicId(1));
    }

    #[test]
    fn mountpoint_maps_both_ways() {
        let m = Mountpoint::new("sn/");
        assert_eq!(m.mount("a/b"), "sn/a/b");
        assert_eq!(m.unmount("sn/a/b"), Some("a/b"));
        assert_eq!(m.unmount("x/a"), None);
        assert_eq!(Mountpoint::new("").unmount("x"), Some("x"));
    }
}
