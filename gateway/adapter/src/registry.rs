//! Every started adapter, by name: its listeners, metric families and state. Built once at
//! start, then shared read-only by `/metrics`, `$SYS`, the API and the `Gateway` accessors.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use crate::{Family, Listener, Running};

/// One started adapter.
pub struct Entry {
    pub name: String,
    pub listeners: Vec<Listener>,
    pub metrics: Vec<Family>,
    pub state: Option<Arc<dyn Any + Send + Sync>>,
}

/// Why an adapter could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("adapter {0:?} is registered twice")]
    DuplicateAdapter(String),
    #[error("adapter {adapter:?} declares metric family {family:?}, which {other:?} declares already")]
    DuplicateFamily { adapter: String, family: &'static str, other: String },
}

/// The started adapters, in start order.
#[derive(Default)]
pub struct AdapterRegistry {
    entries: Vec<Entry>,
}

impl AdapterRegistry {
    /// Adds a started adapter; its API routes are returned for the HTTP listener to merge.
    pub fn add(&mut self, name: &str, running: Running) -> Result<Option<axum::Router>, RegistryError> {
        if self.entries.iter().any(|e| e.name == name) {
            return Err(RegistryError::DuplicateAdapter(name.to_string()));
        }
        let mut seen = HashSet::new();
        for f in &running.metrics {
            let taken = self.entries.iter().find(|e| e.metrics.iter().any(|g| g.name == f.name));
            if let Some(other) = taken {
                let other = other.name.clone();
                return Err(RegistryError::DuplicateFamily { adapter: name.to_string(), family: f.name, other });
            }
            if !seen.insert(f.name) {
                let other = name.to_string();
                return Err(RegistryError::DuplicateFamily { adapter: name.to_string(), family: f.name, other });
            }
        }
        let Running { listeners, metrics, routes, state } = running;
        self.entries.push(Entry { name: name.to_string(), listeners, metrics, state });
        Ok(routes)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The listeners of adapter `name` (empty if it is not running).
    pub fn listeners(&self, name: &str) -> &[Listener] {
        self.get(name).map_or(&[], |e| &e.listeners)
    }

    /// The typed state of adapter `name`, if it has one of type `T`.
    pub fn state<T: Any + Send + Sync>(&self, name: &str) -> Option<Arc<T>> {
        self.get(name)?.state.clone()?.downcast::<T>().ok()
    }

    /// Every declared family with its adapter's name.
    pub fn families(&self) -> impl Iterator<Item = (&str, &Family)> {
        self.entries.iter().flat_map(|e| e.metrics.iter().map(move |f| (e.name.as_str(), f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(families: &[&'static str]) -> Running {
        Running { metrics: families.iter().map(|n| Family::counter(n, "help", || 1)).collect(), ..Default::default() }
    }

    #[test]
    fn a_family_is_declared_once() {
        let mut r = AdapterRegistry::default();
        assert!(r.add("a", running(&["a_events"])).is_ok());
        assert!(matches!(r.add("a", running(&[])), Err(RegistryError::DuplicateAdapter(_))));
        assert!(matches!(r.add("b", running(&["a_events"])), Err(RegistryError::DuplicateFamily { .. })));
        assert!(matches!(r.add("c", running(&["x", "x"])), Err(RegistryError::DuplicateFamily { .. })));
        assert_eq!(r.families().map(|(a, f)| (a, f.name)).collect::<Vec<_>>(), vec![("a", "a_events")]);
    }
}
