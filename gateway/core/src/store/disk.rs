//! The embedded store: one redb file under `storage.data_dir`, written by a single writer
//! thread that group-commits every change recorded since its last commit.
//!
//! redb commits are atomic and crash-safe (copy-on-write B-trees with checksums; an unclean
//! shutdown is repaired on open to the last commit). Durability per [`SyncMode`]:
//! `Always` commits (fsync) as soon as there is work, and acknowledgements wait for it;
//! `Batch` gathers changes for a few milliseconds first, acknowledgements still wait;
//! `None` never waits and flushes once a second (a crash loses up to that second).

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::watch;

use super::wire;
use super::{BoxFuture, Change, Snapshot, Store, StoreError, StoredSession};
use crate::types::ClientId;

const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("sessions");
const MESSAGES: TableDefinition<'static, (&str, u64), &[u8]> = TableDefinition::new("messages");
/// (client, seq) -> packet id | released << 16, for messages in flight.
const FLIGHT: TableDefinition<'static, (&str, u64), u32> = TableDefinition::new("inflight");
const AWAITING: TableDefinition<'static, (&str, u16), ()> = TableDefinition::new("awaiting_rel");
const RETAINED: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("retained");
/// (space, key) -> an adapter's opaque record ([`Change::Blob`]).
const BLOBS: TableDefinition<'static, (&str, &str), &[u8]> = TableDefinition::new("blobs");

/// The schema this code writes; older files are migrated on open, newer refused.
pub const SCHEMA_VERSION: u64 = 1;
/// Changes applied in one write transaction at most.
const MAX_BATCH: usize = 50_000;
/// Changes recorded but not yet committed, past which the store reports itself full, so a
/// disk slower than the traffic cannot grow the writer's queue without bound.
const MAX_PENDING: usize = 500_000;
/// How often `SyncMode::None` makes its commits durable.
const NONE_FLUSH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Always,
    Batch(Duration),
    None,
}

struct Sender {
    tx: mpsc::Sender<(u64, Change)>,
    last: u64,
}

pub struct DiskStore {
    path: PathBuf,
    /// Taken at close, so the file (and its lock) is released even while the broker lives on.
    db: Mutex<Option<Arc<Database>>>,
    sender: Mutex<Option<Sender>>,
    committed: watch::Receiver<u64>,
    failed: Arc<OnceLock<String>>,
    mode: SyncMode,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    full: Arc<std::sync::atomic::AtomicBool>,
    /// Changes sent to the writer and not yet committed.
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

/// What `roost store check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreCheck {
    pub sessions: usize,
    pub messages: usize,
    pub retained: usize,
    /// Records that could not be decoded: (table, key, what).
    pub bad: Vec<(String, String, String)>,
}

fn open_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open { path: path.display().to_string(), what: e.to_string() }
}

fn write_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Write(e.to_string())
}

/// Opens (or creates) the store file and checks its schema version.
fn open_db(path: &Path) -> Result<Database, StoreError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| open_err(dir, e))?;
    }
    let db = Database::create(path).map_err(|e| open_err(path, e))?;
    let txn = db.begin_write().map_err(|e| open_err(path, e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| open_err(path, e))?;
        let found = meta.get("schema_version").map_err(|e| open_err(path, e))?.map(|v| v.value());
        match found {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION).map_err(|e| open_err(path, e))?;
            }
            Some(v) if v > SCHEMA_VERSION => return Err(StoreError::Version { found: v, supported: SCHEMA_VERSION }),
            // Migrations from older schema versions go here, one step at a time.
            Some(_) => {}
        }
        txn.open_table(SESSIONS).map_err(|e| open_err(path, e))?;
        txn.open_table(MESSAGES).map_err(|e| open_err(path, e))?;
        txn.open_table(FLIGHT).map_err(|e| open_err(path, e))?;
        txn.open_table(AWAITING).map_err(|e| open_err(path, e))?;
        txn.open_table(RETAINED).map_err(|e| open_err(path, e))?;
        txn.open_table(BLOBS).map_err(|e| open_err(path, e))?;
    }
    txn.commit().map_err(|e| open_err(path, e))?;
    Ok(db)
}

impl DiskStore {
    /// Opens the store at `path`, refusing a corrupt or too new file with a clear error.
    pub fn open(path: &Path, mode: SyncMode) -> Result<DiskStore, StoreError> {
        Self::open_limited(path, mode, None)
    }

    /// Like [`DiskStore::open`], with a size limit in bytes: past it the store reports
    /// [`Store::is_full`] until deletions bring the live data back under it.
    pub fn open_limited(path: &Path, mode: SyncMode, max_size: Option<u64>) -> Result<DiskStore, StoreError> {
        let db = Arc::new(open_db(path)?);
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = watch::channel(0u64);
        let failed = Arc::new(OnceLock::new());
        let writer = {
            let db = db.clone();
            let failed = failed.clone();
            let limit = max_size.map(|m| (m, full.clone()));
            let pending = pending.clone();
            std::thread::Builder::new()
                .name("roost-store".into())
                .spawn(move || writer(&db, rx, done_tx, mode, &failed, limit, &pending))
                .map_err(|e| open_err(path, e))?
        };
        Ok(DiskStore {
            path: path.to_path_buf(),
            db: Mutex::new(Some(db)),
            sender: Mutex::new(Some(Sender { tx, last: 0 })),
            committed: done_rx,
            failed,
            mode,
            writer: Mutex::new(Some(writer)),
            full,
            pending,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer after it has committed everything recorded (durably).
    pub fn close(&self) {
        self.sender.lock().take();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
        self.db.lock().take();
    }

    /// Reads every record of the file at `path` and reports what it holds and what is bad.
    pub fn check(path: &Path) -> Result<StoreCheck, StoreError> {
        let mut db = Database::open(path).map_err(|e| open_err(path, e))?;
        db.check_integrity().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        scan(&db, false)
    }

    /// Drops the records that cannot be decoded (after redb's own integrity repair).
    pub fn repair(path: &Path) -> Result<StoreCheck, StoreError> {
        let mut db = Database::open(path).map_err(|e| open_err(path, e))?;
        db.check_integrity().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        scan(&db, true)
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for DiskStore {
    fn record(&self, change: Change) -> u64 {
        let mut guard = self.sender.lock();
        let Some(s) = guard.as_mut() else { return 0 };
        s.last += 1;
        self.pending.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if s.tx.send((s.last, change)).is_err() {
            let _ = self.failed.set("the store writer has stopped".into());
        }
        s.last
    }

    fn last_ticket(&self) -> u64 {
        self.sender.lock().as_ref().map_or(0, |s| s.last)
    }

    fn durable(&self, ticket: u64) -> BoxFuture<Result<(), StoreError>> {
        if self.mode == SyncMode::None {
            return Box::pin(std::future::ready(Ok(())));
        }
        let mut rx = self.committed.clone();
        let failed = self.failed.clone();
        Box::pin(async move {
            let reached = rx.wait_for(|c| *c >= ticket).await.is_ok();
            match failed.get() {
                Some(e) => Err(StoreError::Write(e.clone())),
                None if reached => Ok(()),
                None => Err(StoreError::Write("the store writer has stopped".into())),
            }
        })
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        let db = self.db.lock().clone().ok_or_else(|| StoreError::Write("the store is closed".into()))?;
        load(&db)
    }

    fn load_blobs(&self, space: &str) -> Result<Vec<(String, bytes::Bytes)>, StoreError> {
        let db = self.db.lock().clone().ok_or_else(|| StoreError::Write("the store is closed".into()))?;
        let rd = |e: redb::StorageError| StoreError::Corrupt(e.to_string());
        let txn = db.begin_read().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let t = txn.open_table(BLOBS).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut out = Vec::new();
        for row in t.range::<(&str, &str)>((space, "")..).map_err(rd)? {
            let (k, v) = row.map_err(rd)?;
            let (s, key) = k.value();
            if s != space {
                break;
            }
            out.push((key.to_string(), bytes::Bytes::copy_from_slice(v.value())));
        }
        Ok(out)
    }

    fn close(&self) {
        DiskStore::close(self);
    }

    fn is_full(&self) -> bool {
        self.full.load(std::sync::atomic::Ordering::Relaxed)
            || self.pending.load(std::sync::atomic::Ordering::Relaxed) > MAX_PENDING
    }
}

/// Bytes of live data in the file: allocated pages (freed pages are reused by later commits,
/// so the file itself stops growing once steady state is reached).
fn live_bytes(db: &Database) -> Option<u64> {
    let txn = db.begin_write().ok()?;
    let stats = txn.stats().ok()?;
    let used = stats.allocated_pages() * stats.page_size() as u64;
    txn.abort().ok()?;
    Some(used)
}

fn writer(
    db: &Database,
    rx: mpsc::Receiver<(u64, Change)>,
    done: watch::Sender<u64>,
    mode: SyncMode,
    failed: &OnceLock<String>,
    limit: Option<(u64, Arc<std::sync::atomic::AtomicBool>)>,
    pending: &std::sync::atomic::AtomicUsize,
) {
    let mut last_durable = Instant::now();
    let mut last_size_check = Instant::now();
    let mut dirty = false;
    loop {
        let first = match mode {
            SyncMode::None if dirty => match rx.recv_timeout(NONE_FLUSH) {
                Ok(c) => Some(c),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            _ => match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => break,
            },
        };
        let mut batch = Vec::new();
        if let Some(c) = first {
            batch.push(c);
            if let SyncMode::Batch(window) = mode {
                let until = Instant::now() + window;
                while batch.len() < MAX_BATCH {
                    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
        }
        let durable = mode != SyncMode::None || last_durable.elapsed() >= NONE_FLUSH;
        let top = batch.last().map(|(t, _)| *t);
        let committed = batch.len();
        if let Err(e) = commit(db, batch, durable) {
            tracing::error!(error = %e, "store commit failed; acknowledgements now fail");
            let _ = failed.set(e.to_string());
            done.send_replace(u64::MAX);
            return;
        }
        if durable {
            last_durable = Instant::now();
            dirty = false;
        } else {
            dirty = true;
        }
        pending.fetch_sub(committed, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = top {
            done.send_replace(t);
        }
        if let Some((max, full)) = &limit
            && last_size_check.elapsed() >= Duration::from_millis(500)
        {
            last_size_check = Instant::now();
            if let Some(used) = live_bytes(db) {
                let over = used > *max;
                if over != full.swap(over, std::sync::atomic::Ordering::Relaxed) {
                    if over {
                        tracing::warn!(
                            used,
                            max,
                            "store past storage.max_size: new messages for persistent sessions stay in memory only"
                        );
                    } else {
                        tracing::info!(used, max, "store back under storage.max_size");
                    }
                }
            }
        }
    }
    // Senders gone: make everything written so far durable.
    if dirty && let Err(e) = commit(db, Vec::new(), true) {
        tracing::error!(error = %e, "final store commit failed");
    }
}

fn commit(db: &Database, batch: Vec<(u64, Change)>, durable: bool) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(write_err)?;
    txn.set_durability(if durable { Durability::Immediate } else { Durability::None }).map_err(write_err)?;
    for (_, change) in batch {
        apply(&txn, change)?;
    }
    txn.commit().map_err(write_err)
}

fn apply(txn: &WriteTransaction, change: Change) -> Result<(), StoreError> {
    match change {
        Change::Session(meta) => {
            txn.open_table(SESSIONS)
                .map_err(write_err)?
                .insert(meta.client_id.as_str(), wire::encode_session(&meta).as_slice())
                .map_err(write_err)?;
        }
        Change::SessionGone(client) => remove_session(txn, &client)?,
        Change::Enqueue { client, seq, pending } => {
            let rec = wire::encode_stored(&super::StoredMessage { pending, packet_id: None, released: false });
            txn.open_table(MESSAGES)
                .map_err(write_err)?
                .insert((client.as_str(), seq), rec.as_slice())
                .map_err(write_err)?;
        }
        Change::Sent { client, seq, packet_id } => {
            txn.open_table(FLIGHT)
                .map_err(write_err)?
                .insert((client.as_str(), seq), u32::from(packet_id))
                .map_err(write_err)?;
        }
        Change::Released { client, seq } => {
            let mut t = txn.open_table(FLIGHT).map_err(write_err)?;
            let v = t.get((client.as_str(), seq)).map_err(write_err)?.map(|v| v.value());
            if let Some(v) = v {
                t.insert((client.as_str(), seq), v | 1 << 16).map_err(write_err)?;
            }
        }
        Change::Remove { client, seq } => {
            txn.open_table(MESSAGES).map_err(write_err)?.remove((client.as_str(), seq)).map_err(write_err)?;
            txn.open_table(FLIGHT).map_err(write_err)?.remove((client.as_str(), seq)).map_err(write_err)?;
        }
        Change::AwaitRel { client, packet_id, awaiting } => {
            let mut t = txn.open_table(AWAITING).map_err(write_err)?;
            if awaiting {
                t.insert((client.as_str(), packet_id), ()).map_err(write_err)?;
            } else {
                t.remove((client.as_str(), packet_id)).map_err(write_err)?;
            }
        }
        Change::Retain { topic, message } => {
            let mut t = txn.open_table(RETAINED).map_err(write_err)?;
            match message {
                Some(m) => t.insert(&*topic, wire::encode_message(&m).as_slice()).map_err(write_err)?,
                None => t.remove(&*topic).map_err(write_err)?,
            };
        }
        Change::Blob { space, key, value } => {
            let mut t = txn.open_table(BLOBS).map_err(write_err)?;
            match value {
                Some(v) => t.insert((&*space, key.as_str()), v.as_ref()).map_err(write_err)?,
                None => t.remove((&*space, key.as_str())).map_err(write_err)?,
            };
        }
    }
    Ok(())
}

fn remove_session(txn: &WriteTransaction, client: &ClientId) -> Result<(), StoreError> {
    let c = client.as_str();
    txn.open_table(SESSIONS).map_err(write_err)?.remove(c).map_err(write_err)?;
    txn.open_table(MESSAGES).map_err(write_err)?.retain_in((c, 0)..=(c, u64::MAX), |_, _| false).map_err(write_err)?;
    txn.open_table(FLIGHT).map_err(write_err)?.retain_in((c, 0)..=(c, u64::MAX), |_, _| false).map_err(write_err)?;
    txn.open_table(AWAITING).map_err(write_err)?.retain_in((c, 0)..=(c, u16::MAX), |_, _| false).map_err(write_err)?;
    Ok(())
}

fn corrupt(table: &str, key: impl std::fmt::Display, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table} record {key}: {what}"))
}

fn load(db: &Database) -> Result<Snapshot, StoreError> {
    let txn = db.begin_read().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let rd = |e: redb::StorageError| StoreError::Corrupt(e.to_string());
    let tbl = |e: redb::TableError| StoreError::Corrupt(e.to_string());
    let sessions_t = txn.open_table(SESSIONS).map_err(tbl)?;
    let messages_t = txn.open_table(MESSAGES).map_err(tbl)?;
    let flight_t = txn.open_table(FLIGHT).map_err(tbl)?;
    let awaiting_t = txn.open_table(AWAITING).map_err(tbl)?;
    let retained_t = txn.open_table(RETAINED).map_err(tbl)?;
    let mut snapshot = Snapshot::default();
    for row in sessions_t.iter().map_err(rd)? {
        let (k, v) = row.map_err(rd)?;
        let meta = wire::decode_session(v.value()).map_err(|e| corrupt("session", k.value(), e))?;
        let c = k.value();
        let mut messages = Vec::new();
        for row in
            messages_t.range::<(&str, u64)>((Bound::Included((c, 0)), Bound::Included((c, u64::MAX)))).map_err(rd)?
        {
            let (k, v) = row.map_err(rd)?;
            let (_, seq) = k.value();
            let mut m = wire::decode_stored(v.value()).map_err(|e| corrupt("message", format!("{c}/{seq}"), e))?;
            if let Some(f) = flight_t.get((c, seq)).map_err(rd)? {
                m.packet_id = Some(f.value() as u16);
                m.released = f.value() >> 16 & 1 == 1;
            }
            messages.push((seq, m));
        }
        let mut awaiting_rel = Vec::new();
        for row in
            awaiting_t.range::<(&str, u16)>((Bound::Included((c, 0)), Bound::Included((c, u16::MAX)))).map_err(rd)?
        {
            awaiting_rel.push(row.map_err(rd)?.0.value().1);
        }
        snapshot.sessions.push(StoredSession { meta, messages, awaiting_rel });
    }
    for row in retained_t.iter().map_err(rd)? {
        let (k, v) = row.map_err(rd)?;
        let m = wire::decode_message(v.value()).map_err(|e| corrupt("retained", k.value(), e))?;
        snapshot.retained.push(Arc::new(m));
    }
    Ok(snapshot)
}

/// Decodes every record; with `fix`, deletes the undecodable ones.
fn scan(db: &Database, fix: bool) -> Result<StoreCheck, StoreError> {
    let mut check = StoreCheck::default();
    let rd = |e: redb::StorageError| StoreError::Corrupt(e.to_string());
    let tbl = |e: redb::TableError| StoreError::Corrupt(e.to_string());
    let txn = db.begin_read().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut bad_sessions = Vec::new();
    let mut bad_messages = Vec::new();
    let mut bad_retained = Vec::new();
    for row in txn.open_table(SESSIONS).map_err(tbl)?.iter().map_err(rd)? {
        let (k, v) = row.map_err(rd)?;
        match wire::decode_session(v.value()) {
            Ok(_) => check.sessions += 1,
            Err(e) => {
                check.bad.push(("sessions".into(), k.value().to_string(), e));
                bad_sessions.push(k.value().to_string());
            }
        }
    }
    for row in txn.open_table(MESSAGES).map_err(tbl)?.iter().map_err(rd)? {
        let (k, v) = row.map_err(rd)?;
        let (c, seq) = k.value();
        match wire::decode_stored(v.value()) {
            Ok(_) => check.messages += 1,
            Err(e) => {
                check.bad.push(("messages".into(), format!("{c}/{seq}"), e));
                bad_messages.push((c.to_string(), seq));
            }
        }
    }
    let retained = txn.open_table(RETAINED).map_err(tbl)?;
    for row in retained.iter().map_err(rd)? {
        let (k, v) = row.map_err(rd)?;
        match wire::decode_message(v.value()) {
            Ok(_) => check.retained += 1,
            Err(e) => {
                check.bad.push(("retained".into(), k.value().to_string(), e));
                bad_retained.push(k.value().to_string());
            }
        }
    }
    drop(txn);
    if fix && !check.bad.is_empty() {
        let txn = db.begin_write().map_err(write_err)?;
        for c in &bad_sessions {
            remove_session(&txn, &ClientId::new(c.as_str()))?;
        }
        for (c, seq) in &bad_messages {
            apply(&txn, Change::Remove { client: ClientId::new(c.as_str()), seq: *seq })?;
        }
        for t in &bad_retained {
            txn.open_table(RETAINED).map_err(write_err)?.remove(t.as_str()).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)?;
    }
    Ok(check)
}
