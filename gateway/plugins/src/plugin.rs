//! Plugin files and hot reload: a [`Plugin`] is one file (a `.wasm` codec or a `.js` payload
//! codec) with its current loaded version. [`Plugin::reload`] reads the file, and if its
//! SHA-256 changed, loads it *beside* the old version and swaps only once the new one is
//! valid: new work (a new connection, the next payload) gets the new version, work in
//! flight finishes on the old one, and a file that fails to load is refused (logged,
//! counted) with the old version staying in service. [`Plugins`] lists them for the API
//! and `/metrics`, and polls their files (mtime and size, then the hash).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

use crate::stats::{PluginStats, StatsSnapshot};

/// What kind of file a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A WebAssembly protocol codec (`[[codec]] plugin = "x.wasm"`).
    Wasm,
    /// A TS013 JavaScript payload codec.
    Js,
}

/// Turns a file's bytes into a loaded version (compile + validate).
pub trait Loader: Send + Sync + 'static {
    type Loaded: Send + Sync + 'static;
    fn load(&self, name: &str, bytes: &[u8], stats: &Arc<PluginStats>) -> Result<Self::Loaded, String>;
}

/// One loaded version.
pub struct Version<L> {
    pub loaded: L,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// 1 for the first load, +1 per accepted reload.
    pub generation: u64,
}

/// A plugin file with its current version.
pub struct Plugin<D: Loader> {
    pub path: PathBuf,
    pub kind: Kind,
    pub stats: Arc<PluginStats>,
    loader: D,
    current: RwLock<Arc<Version<D::Loaded>>>,
    /// The stamp last looked at, so an unchanged file is not re-read every poll.
    seen: Mutex<Option<Stamp>>,
    polls: std::sync::atomic::AtomicU64,
    /// Held through a reload: the watcher and the API reloading at once must not both load
    /// the same new file (one generation per change).
    reloading: Mutex<()>,
}

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What tells a changed file cheaply: mtime, size and (on Unix) the inode, which a
/// replace-by-rename changes even within one mtime tick.
type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some((m.modified().ok()?, m.len(), inode))
}

/// Every this many polls the file is hashed even if its stamp looks the same (an in-place
/// write of the same size within one mtime tick).
const FULL_CHECK_EVERY: u64 = 20;

/// The result of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// Same content as the version in service.
    Unchanged,
    /// The new version serves new work.
    Loaded { generation: u64, sha256: String },
}

impl<D: Loader> Plugin<D> {
    /// Loads `path` for the first time; an error here is a configuration error.
    pub fn open(path: &Path, kind: Kind, loader: D) -> Result<Self, String> {
        let seen = stamp(path);
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let stats = Arc::default();
        let loaded = loader.load(&path.display().to_string(), &bytes, &stats)?;
        let current = Arc::new(Version { loaded, sha256: sha256(&bytes), generation: 1 });
        Ok(Plugin {
            path: path.to_path_buf(),
            kind,
            stats,
            loader,
            current: RwLock::new(current),
            seen: Mutex::new(seen),
            polls: std::sync::atomic::AtomicU64::new(0),
            reloading: Mutex::new(()),
        })
    }

    /// The version in service now.
    pub fn current(&self) -> Arc<Version<D::Loaded>> {
        self.current.read().clone()
    }

    /// Re-reads the file; loads it if its content changed. On error the old version stays.
    pub fn reload(&self) -> Result<Reloaded, String> {
        let _one_at_a_time = self.reloading.lock();
        *self.seen.lock() = stamp(&self.path);
        let bytes = std::fs::read(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let hash = sha256(&bytes);
        let old = self.current();
        if hash == old.sha256 {
            return Ok(Reloaded::Unchanged);
        }
        let result = self.loader.load(&self.path.display().to_string(), &bytes, &self.stats);
        self.stats.reloaded(result.is_ok());
        let loaded = result.map_err(|e| {
            tracing::error!(plugin = %self.path.display(), error = %e, "plugin reload refused; the old version stays");
            e
        })?;
        let generation = old.generation + 1;
        *self.current.write() = Arc::new(Version { loaded, sha256: hash.clone(), generation });
        tracing::info!(plugin = %self.path.display(), generation, sha256 = %hash, "plugin reloaded");
        Ok(Reloaded::Loaded { generation, sha256: hash })
    }

    /// Reloads if the file's stamp changed since last looked at (or, now and then, anyway:
    /// the hash decides).
    pub fn poll(&self) {
        let now = stamp(&self.path);
        let full = self.polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(FULL_CHECK_EVERY);
        if now.is_some() && (full || now != *self.seen.lock()) {
            let _ = self.reload();
        }
    }
}

/// What the API and `/metrics` show of one plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub path: String,
    pub kind: Kind,
    pub abi_version: i32,
    pub generation: u64,
    pub sha256: String,
    pub stats: StatsSnapshot,
}

/// A loaded plugin seen through its kind-independent face.
pub trait AnyPlugin: Send + Sync {
    fn info(&self) -> PluginInfo;
    fn poll(&self);
    fn reload(&self) -> Result<Reloaded, String>;
}

impl<D: Loader> AnyPlugin for Plugin<D> {
    fn info(&self) -> PluginInfo {
        let v = self.current();
        PluginInfo {
            path: self.path.display().to_string(),
            kind: self.kind,
            // JavaScript codecs follow TS013, which has no version number of ours: 0.
            abi_version: if self.kind == Kind::Wasm { crate::abi::VERSION } else { 0 },
            generation: v.generation,
            sha256: v.sha256.clone(),
            stats: self.stats.snapshot(),
        }
    }
    fn poll(&self) {
        Plugin::poll(self)
    }
    fn reload(&self) -> Result<Reloaded, String> {
        Plugin::reload(self)
    }
}

/// Every plugin of one gateway. Holds them weakly: a plugin lives as long as the listener
/// or hook using it.
#[derive(Default)]
pub struct Plugins {
    list: Mutex<Vec<Weak<dyn AnyPlugin>>>,
}

impl Plugins {
    pub fn add(&self, plugin: Arc<dyn AnyPlugin>) {
        self.list.lock().push(Arc::downgrade(&plugin));
    }

    fn live(&self) -> Vec<Arc<dyn AnyPlugin>> {
        let mut list = self.list.lock();
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }

    pub fn infos(&self) -> Vec<PluginInfo> {
        self.live().iter().map(|p| p.info()).collect()
    }

    /// Reloads every plugin now (`roost ctl reload`, the API); one line per plugin.
    pub fn reload_all(&self) -> Vec<(String, Result<Reloaded, String>)> {
        self.live().iter().map(|p| (p.info().path, p.reload())).collect()
    }

    /// Polls every plugin's file every `interval` on a thread of its own until `plugins`
    /// is dropped. (A thread, not a task: a file read and a compile must not block a
    /// runtime worker.)
    pub fn watch(plugins: &Arc<Plugins>, interval: Duration) -> std::io::Result<()> {
        let weak = Arc::downgrade(plugins);
        std::thread::Builder::new().name("roost-plugin-watch".into()).spawn(move || {
            while let Some(plugins) = weak.upgrade() {
                for p in plugins.live() {
                    p.poll();
                }
                drop(plugins);
                std::thread::sleep(interval);
            }
        })?;
        Ok(())
    }
}
