//! Trace: every packet and message in and out for one client or one topic filter, written
//! to a file as text lines, for whoever is debugging a device in the field (EMQX's
//! `ctl trace`).
//!
//! The broker writes a line for each message a client publishes (`in`) and each delivery
//! handed to its connection (`out`), whatever its protocol. Adapters add wire-level lines
//! through [`Tracer::packet`] (the MQTT and MQTT-SN drivers do). With no trace running,
//! both cost one relaxed atomic load.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use crate::auth::ClientInfo;
use crate::types::Message;

/// Traces running at once, at most.
pub const MAX_TRACES: usize = 32;
/// Stopped traces remembered (newest kept), so their files can still be fetched by name.
pub const MAX_FINISHED: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the device to the gateway.
    In,
    /// From the gateway to the device.
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// What a trace follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceTarget {
    /// Everything of one client id.
    Client(String),
    /// Every message (and packet carrying a topic) matching a topic filter.
    Topic(String),
}

/// A running trace, as listed.
#[derive(Debug, Clone)]
pub struct TraceInfo {
    pub name: String,
    pub target: TraceTarget,
    pub file: PathBuf,
    pub started: SystemTime,
    pub lines: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("a trace named {0:?} is already running")]
    Exists(String),
    #[error("{MAX_TRACES} traces are running already")]
    TooMany,
    #[error("trace name is empty or longer than 64 bytes")]
    BadName,
    #[error("cannot open trace file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
}

struct Entry {
    name: String,
    target: TraceTarget,
    path: PathBuf,
    started: SystemTime,
    lines: AtomicU64,
    out: Mutex<Option<BufWriter<File>>>,
}

impl Entry {
    fn wants(&self, client_id: &str, topic: Option<&str>) -> bool {
        match &self.target {
            TraceTarget::Client(id) => id == client_id,
            TraceTarget::Topic(filter) => topic.is_some_and(|t| crate::topic::matches(filter, t)),
        }
    }

    fn write(&self, line: fmt::Arguments<'_>) {
        let mut out = self.out.lock();
        if let Some(w) = out.as_mut() {
            // Flushed per line: a trace is read while it runs (tail -f), and only runs
            // while someone is debugging.
            if writeln!(w, "{line}").and_then(|()| w.flush()).is_ok() {
                self.lines.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn info(e: &Entry) -> TraceInfo {
    TraceInfo {
        name: e.name.clone(),
        target: e.target.clone(),
        file: e.path.clone(),
        started: e.started,
        lines: e.lines.load(Ordering::Relaxed),
    }
}

/// The broker's running traces.
#[derive(Default)]
pub struct Tracer {
    active: AtomicBool,
    traces: RwLock<Vec<Arc<Entry>>>,
    /// The last [`MAX_FINISHED`] stopped traces, oldest first.
    finished: Mutex<std::collections::VecDeque<TraceInfo>>,
}

impl Tracer {
    /// Some trace is running (check before building what to trace).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Starts a trace writing to `path` (created, or truncated if it exists).
    pub fn start(&self, name: &str, target: TraceTarget, path: &Path) -> Result<(), TraceError> {
        if name.is_empty() || name.len() > 64 {
            return Err(TraceError::BadName);
        }
        let mut traces = self.traces.write();
        if traces.iter().any(|t| t.name == name) {
            return Err(TraceError::Exists(name.to_string()));
        }
        if traces.len() >= MAX_TRACES {
            return Err(TraceError::TooMany);
        }
        let file = File::create(path).map_err(|source| TraceError::File { path: path.to_path_buf(), source })?;
        let entry = Arc::new(Entry {
            name: name.to_string(),
            target,
            path: path.to_path_buf(),
            started: SystemTime::now(),
            lines: AtomicU64::new(0),
            out: Mutex::new(Some(BufWriter::new(file))),
        });
        entry.write(format_args!("{} trace {name} started: {:?}", timestamp(SystemTime::now()), entry.target));
        traces.push(entry);
        self.active.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Stops the trace `name`, flushing and closing its file; false if there is none.
    pub fn stop(&self, name: &str) -> bool {
        let entry = {
            let mut traces = self.traces.write();
            let Some(i) = traces.iter().position(|t| t.name == name) else { return false };
            let e = traces.remove(i);
            self.active.store(!traces.is_empty(), Ordering::Relaxed);
            e
        };
        entry.write(format_args!("{} trace {name} stopped", timestamp(SystemTime::now())));
        if let Some(mut w) = entry.out.lock().take() {
            let _ = w.flush();
        }
        let mut finished = self.finished.lock();
        // A trace started again under the same name replaces its older run.
        finished.retain(|t| t.name != entry.name);
        if finished.len() >= MAX_FINISHED {
            finished.pop_front();
        }
        finished.push_back(info(&entry));
        true
    }

    /// The last stopped traces ([`MAX_FINISHED`] at most), oldest first.
    pub fn finished(&self) -> Vec<TraceInfo> {
        self.finished.lock().iter().cloned().collect()
    }

    /// The file of the running or stopped trace `name` (only the files of traces, never
    /// another path: the API serves it for download).
    pub fn file_of(&self, name: &str) -> Option<PathBuf> {
        if let Some(e) = self.traces.read().iter().find(|t| t.name == name) {
            return Some(e.path.clone());
        }
        self.finished.lock().iter().find(|t| t.name == name).map(|t| t.file.clone())
    }

    /// The running traces.
    pub fn list(&self) -> Vec<TraceInfo> {
        self.traces.read().iter().map(|e| info(e)).collect()
    }

    /// A wire-level packet of an adapter: `client_id` as the device named itself (it may
    /// not be connected yet), `topic` if the packet carries one, `packet` its decoded form.
    pub fn packet(
        &self,
        protocol: &str,
        client_id: &str,
        peer: Option<SocketAddr>,
        direction: Direction,
        topic: Option<&str>,
        packet: &dyn fmt::Debug,
    ) {
        if !self.is_active() {
            return;
        }
        self.each(client_id, topic, |e| {
            e.write(format_args!(
                "{} {protocol} client={client_id} peer={} {} packet {packet:?}",
                timestamp(SystemTime::now()),
                peer.map_or("-".to_string(), |p| p.to_string()),
                direction.as_str(),
            ))
        });
    }

    /// A message published by (`In`) or delivered to (`Out`) a client, any protocol.
    pub(crate) fn message(&self, client: &ClientInfo, direction: Direction, msg: &Message) {
        if !self.is_active() {
            return;
        }
        self.each(client.client_id.as_str(), Some(&msg.topic), |e| {
            e.write(format_args!(
                "{} {} client={} peer={} {} message topic={} qos={} retain={} payload={:?}",
                timestamp(SystemTime::now()),
                client.protocol_name(),
                client.client_id,
                client.peer.map_or("-".to_string(), |p| p.to_string()),
                direction.as_str(),
                msg.topic,
                msg.qos as u8,
                msg.retain,
                String::from_utf8_lossy(&msg.payload[..msg.payload.len().min(256)]),
            ))
        });
    }

    fn each(&self, client_id: &str, topic: Option<&str>, f: impl Fn(&Entry)) {
        for e in self.traces.read().iter() {
            if e.wants(client_id, topic) {
                f(e);
            }
        }
    }
}

/// RFC 3339 UTC with milliseconds (trace lines, API listings).
pub fn timestamp(t: SystemTime) -> String {
    rfc3339(t, false)
}

/// RFC 3339 UTC, without a date crate: with milliseconds, or with nanoseconds (`nanos`,
/// as protobuf JSON writes a Timestamp).
pub fn rfc3339(t: SystemTime, nanos: bool) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if nanos {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:09}Z", d.subsec_nanos())
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z", d.subsec_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_086_400_123);
        assert_eq!(timestamp(t), "2025-11-25T16:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_trace_writes_what_it_follows_and_stops() {
        let dir = std::env::temp_dir().join(format!("roost-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.log");
        let tracer = Tracer::default();
        assert!(!tracer.is_active());
        tracer.start("t", TraceTarget::Client("dev".into()), &path).unwrap();
        assert!(matches!(tracer.start("t", TraceTarget::Topic("#".into()), &path), Err(TraceError::Exists(_))));
        tracer.packet("mqtt", "dev", None, Direction::In, None, &"PINGREQ");
        tracer.packet("mqtt", "other", None, Direction::In, None, &"PINGREQ");
        assert!(tracer.stop("t"));
        assert!(!tracer.is_active() && !tracer.stop("t"));
        assert_eq!(tracer.file_of("t"), Some(path.clone()), "a stopped trace's file is still known");
        assert_eq!(tracer.finished().len(), 1);
        assert_eq!(tracer.file_of("u"), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("client=dev peer=- in packet \"PINGREQ\""), "{text}");
        assert!(!text.contains("other") && text.ends_with("stopped\n"), "{text}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stopped_traces_are_remembered_within_a_bound() {
        let dir = std::env::temp_dir().join(format!("roost-trace-bound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tracer = Tracer::default();
        for i in 0..MAX_FINISHED + 4 {
            let name = format!("t{i}");
            tracer.start(&name, TraceTarget::Client("dev".into()), &dir.join(&name)).unwrap();
            assert!(tracer.stop(&name));
        }
        let names: Vec<String> = tracer.finished().into_iter().map(|t| t.name).collect();
        assert_eq!(names.len(), MAX_FINISHED);
        assert_eq!(names.first().map(String::as_str), Some("t4"), "the oldest are forgotten");
        assert_eq!(tracer.file_of("t3"), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
