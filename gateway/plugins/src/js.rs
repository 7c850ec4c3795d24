//! Payload layer, JavaScript: LoRa Alliance TS013-1.0.0 payload codecs (`decodeUplink`,
//! `encodeDownlink`) run by QuickJS (`rquickjs`), sandboxed.
//!
//! A codec file is loaded once per version ([`JsLoader`], through [`crate::plugin::Plugin`]
//! for hot reload); it runs in **one QuickJS runtime per worker thread**, not per device:
//! the first call on a thread compiles the version in service into that thread's runtime,
//! later calls reuse it, and a newer version replaces it on that thread at its next call.
//! Every call has a deadline (an interrupt handler QuickJS polls while it runs) and the
//! runtime a memory limit; a call that runs out of either fails with an error (counted as a
//! timeout or a trap) and the runtime is thrown away, so nothing a hostile codec left
//! behind is reused. A thrown exception or `errors` in the result is the codec's own error.
//! Values cross the boundary as JSON (`JSON.stringify` in the engine, `serde_json` here),
//! so what the host reads back is bounded by the memory limit and by [`MAX_RESULT`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rquickjs::{Context, Ctx, Function, Object, Runtime, Value};
use serde_json::Value as Json;

use crate::plugin::Loader;
use crate::stats::{Outcome, PluginStats};

/// Largest JSON a codec may return (bytes).
pub const MAX_RESULT: usize = 1 << 20;

/// Limits of one JavaScript codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsLimits {
    /// Wall time one `decodeUplink`/`encodeDownlink` call may run.
    pub time_per_call: Duration,
    /// Bytes the worker's runtime for this codec may hold (the codec, its globals and what
    /// one call allocates).
    pub max_memory: usize,
}

impl Default for JsLimits {
    fn default() -> Self {
        JsLimits {
            time_per_call: Duration::from_millis(crate::config::TIME_LIMIT_MS),
            max_memory: crate::config::MAX_MEMORY,
        }
    }
}

/// The result of `decodeUplink`: `data` is `None` when the codec reported errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub data: Option<Json>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// The result of `encodeDownlink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub fport: Option<u8>,
    pub warnings: Vec<String>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Compiles `.js` files with one plugin's limits. `family` names the plugin in the
/// per-thread runtime table (one entry per plugin, replaced when its version changes).
pub struct JsLoader {
    family: u64,
    limits: JsLimits,
}

impl JsLoader {
    pub fn new(limits: JsLimits) -> Self {
        JsLoader { family: NEXT_ID.fetch_add(1, Relaxed), limits }
    }
}

/// One loaded version of a codec file.
pub struct JsScript {
    family: u64,
    version: u64,
    name: Arc<str>,
    source: Arc<str>,
    limits: JsLimits,
    stats: Arc<PluginStats>,
    /// Whether the file defines `encodeDownlink` (checked at load).
    pub can_encode: bool,
}

impl Loader for JsLoader {
    type Loaded = JsScript;
    fn load(&self, name: &str, bytes: &[u8], stats: &Arc<PluginStats>) -> Result<JsScript, String> {
        let source: Arc<str> = std::str::from_utf8(bytes).map_err(|e| format!("{name}: not UTF-8: {e}"))?.into();
        let mut script = JsScript {
            family: self.family,
            version: NEXT_ID.fetch_add(1, Relaxed),
            name: name.into(),
            source,
            limits: self.limits,
            stats: stats.clone(),
            can_encode: false,
        };
        // Compiled and run once here, in a runtime of its own, so a file that does not
        // parse, throws at top level, loops or lacks decodeUplink is refused at load.
        let engine = Engine::new(&script).map_err(|e| format!("{name}: {e}"))?;
        script.can_encode = engine
            .context
            .with(|ctx| ctx.globals().get::<_, Value<'_>>("encodeDownlink").is_ok_and(|v| v.is_function()));
        Ok(script)
    }
}

/// Why a call failed, before it is turned into `errors`.
#[derive(Debug)]
enum CallError {
    /// The codec threw, or its result was not what TS013 says.
    Codec(String),
    /// Past the deadline: the runtime is dropped.
    Timeout,
    /// Out of memory or stack: the runtime is dropped.
    Resources(String),
}

/// A QuickJS runtime with one codec version evaluated in it.
struct Engine {
    version: u64,
    runtime: Runtime,
    context: Context,
    /// Nanoseconds since `epoch` after which the running call is interrupted (0: none).
    deadline: Arc<AtomicU64>,
    interrupted: Arc<AtomicBool>,
    epoch: Instant,
}

impl Engine {
    fn new(script: &JsScript) -> Result<Engine, String> {
        let runtime = Runtime::new().map_err(|e| format!("QuickJS runtime: {e}"))?;
        runtime.set_memory_limit(script.limits.max_memory);
        runtime.set_max_stack_size(256 * 1024);
        let (deadline, interrupted, epoch) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)), Instant::now());
        let (d, i) = (deadline.clone(), interrupted.clone());
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let at = d.load(Relaxed);
            let over = at != 0 && epoch.elapsed().as_nanos() as u64 > at;
            if over {
                i.store(true, Relaxed);
            }
            over
        })));
        let context = Context::full(&runtime).map_err(|e| format!("QuickJS context: {e}"))?;
        let engine = Engine { version: script.version, runtime, context, deadline, interrupted, epoch };
        let checked = engine.call(script, |ctx| {
            ctx.eval::<(), _>(script.source.as_bytes()).map_err(|e| thrown(ctx, e))?;
            let f: Value<'_> = ctx.globals().get("decodeUplink").map_err(|e| thrown(ctx, e))?;
            if !f.is_function() { Err(CallError::Codec("defines no function decodeUplink".into())) } else { Ok(()) }
        });
        match checked {
            Ok(()) => Ok(engine),
            Err(CallError::Timeout) => Err(format!("top level ran past {:?}", script.limits.time_per_call)),
            Err(CallError::Codec(e) | CallError::Resources(e)) => Err(e),
        }
    }

    /// Runs `f` in the context with the call's deadline armed.
    fn call<R>(&self, script: &JsScript, f: impl FnOnce(&Ctx<'_>) -> Result<R, CallError>) -> Result<R, CallError> {
        let limit = self.epoch.elapsed() + script.limits.time_per_call;
        self.interrupted.store(false, Relaxed);
        self.deadline.store(limit.as_nanos().max(1) as u64, Relaxed);
        let r = self.context.with(|ctx| f(&ctx));
        self.deadline.store(0, Relaxed);
        match r {
            Err(_) if self.interrupted.load(Relaxed) => Err(CallError::Timeout),
            r => r,
        }
    }
}

/// The message of what a failed engine call threw.
fn thrown(ctx: &Ctx<'_>, e: rquickjs::Error) -> CallError {
    match e {
        rquickjs::Error::Exception => {
            let v = ctx.catch();
            let text = v
                .get::<rquickjs::convert::Coerced<String>>()
                .map(|c| c.0)
                .unwrap_or_else(|_| "an exception that cannot be shown".into());
            let text: String = text.chars().take(512).collect();
            if text.contains("out of memory") || text.contains("stack overflow") || text.contains("call stack size") {
                CallError::Resources(text)
            } else {
                CallError::Codec(text)
            }
        }
        rquickjs::Error::Allocation => CallError::Resources("out of memory".into()),
        e => CallError::Codec(e.to_string()),
    }
}

thread_local! {
    /// This worker's runtimes: one per codec plugin, holding the version last used here.
    static ENGINES: RefCell<HashMap<u64, Engine>> = RefCell::new(HashMap::new());
}

impl JsScript {
    /// Runs `f` in this thread's runtime for this version (made on first use); counts the
    /// call; drops the runtime after a timeout or running out of memory.
    fn run<R>(&self, f: impl FnOnce(&Ctx<'_>) -> Result<R, CallError>) -> Result<R, String> {
        let started = Instant::now();
        let r = ENGINES.with(|cell| {
            let mut engines = cell.borrow_mut();
            if engines.get(&self.family).is_none_or(|e| e.version != self.version) {
                engines.remove(&self.family);
                engines.insert(self.family, Engine::new(self).map_err(CallError::Resources)?);
            }
            let engine = engines.get(&self.family).ok_or_else(|| CallError::Resources("no engine".into()))?;
            let r = engine.call(self, f);
            if matches!(r, Err(CallError::Timeout | CallError::Resources(_))) {
                engines.remove(&self.family);
            }
            r
        });
        let nanos = started.elapsed().as_nanos().max(1) as u64;
        let (outcome, r) = match r {
            Ok(v) => (Outcome::Ok, Ok(v)),
            Err(CallError::Codec(e)) => (Outcome::Error, Err(e)),
            Err(CallError::Timeout) => {
                (Outcome::Timeout, Err(format!("ran past its time limit of {:?}", self.limits.time_per_call)))
            }
            Err(CallError::Resources(e)) => (Outcome::Trap, Err(format!("out of resources: {e}"))),
        };
        self.stats.count(outcome, nanos);
        if let Err(e) = &r {
            tracing::debug!(plugin = %self.name, error = %e, "JavaScript codec call failed");
        }
        r
    }

    /// Bytes held by this thread's runtime for this codec (0: none made here yet): the
    /// memory one loaded codec costs per worker.
    pub fn memory_used(&self) -> usize {
        ENGINES.with(|cell| {
            cell.borrow().get(&self.family).map_or(0, |e| e.runtime.memory_usage().memory_used_size.max(0) as usize)
        })
    }

    /// TS013 `decodeUplink({bytes, fPort})`. Never fails: what went wrong is in `errors`.
    pub fn decode_uplink(&self, fport: u8, bytes: &[u8]) -> Decoded {
        let out = self.run(|ctx| {
            let input = Object::new(ctx.clone()).map_err(|e| thrown(ctx, e))?;
            input.set("bytes", bytes.to_vec()).map_err(|e| thrown(ctx, e))?;
            input.set("fPort", fport).map_err(|e| thrown(ctx, e))?;
            call_json(ctx, "decodeUplink", input)
        });
        let out = match out {
            Ok(v) => v,
            Err(e) => return Decoded { data: None, errors: vec![format!("decodeUplink: {e}")], warnings: vec![] },
        };
        let (errors, warnings) = (strings(&out, "errors"), strings(&out, "warnings"));
        let data = out.get("data").cloned();
        match (errors.is_empty(), data) {
            (true, Some(data)) => Decoded { data: Some(data), errors, warnings },
            (true, None) => {
                self.stats.count(Outcome::Error, 0);
                Decoded { data: None, errors: vec!["decodeUplink returned no data".into()], warnings }
            }
            (false, _) => {
                self.stats.count(Outcome::Error, 0);
                Decoded { data: None, errors, warnings }
            }
        }
    }

    /// TS013 `encodeDownlink({data})`: the bytes (and fPort, if the codec chose one), or the
    /// codec's errors.
    pub fn encode_downlink(&self, data: &Json) -> Result<Encoded, Vec<String>> {
        if !self.can_encode {
            return Err(vec![format!("{} defines no encodeDownlink", self.name)]);
        }
        let text = data.to_string();
        let out = self
            .run(|ctx| {
                let input = Object::new(ctx.clone()).map_err(|e| thrown(ctx, e))?;
                input
                    .set("data", ctx.json_parse(text.as_bytes()).map_err(|e| thrown(ctx, e))?)
                    .map_err(|e| thrown(ctx, e))?;
                call_json(ctx, "encodeDownlink", input)
            })
            .map_err(|e| vec![format!("encodeDownlink: {e}")])?;
        let errors = strings(&out, "errors");
        let result = if errors.is_empty() { encoded(&out) } else { Err(errors) };
        if result.is_err() {
            self.stats.count(Outcome::Error, 0);
        }
        result
    }
}

/// Calls global `name(input)` and reads its result back as JSON.
fn call_json<'js>(ctx: &Ctx<'js>, name: &str, input: Object<'js>) -> Result<Json, CallError> {
    let f: Function<'js> = ctx.globals().get(name).map_err(|e| thrown(ctx, e))?;
    let out: Value<'js> = f.call((input,)).map_err(|e| thrown(ctx, e))?;
    if !out.is_object() {
        return Err(CallError::Codec(format!("{name} returned no object")));
    }
    let text = ctx.json_stringify(out).map_err(|e| thrown(ctx, e))?;
    let text = text.map(|s| s.to_string()).transpose().map_err(|e| thrown(ctx, e))?.unwrap_or_default();
    if text.len() > MAX_RESULT {
        return Err(CallError::Codec(format!("{name} returned {} bytes of JSON (at most {MAX_RESULT})", text.len())));
    }
    serde_json::from_str(&text).map_err(|e| CallError::Codec(format!("{name} result: {e}")))
}

/// `out[key]` as a list of strings (a lone string counts as one; other values are shown).
fn strings(out: &Json, key: &str) -> Vec<String> {
    match out.get(key) {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect(),
        Some(Json::String(s)) => vec![s.clone()],
        Some(v) => vec![v.to_string()],
    }
}

/// `{bytes: [0..=255, ...], fPort?}` of an `encodeDownlink` result.
fn encoded(out: &Json) -> Result<Encoded, Vec<String>> {
    let bytes = out
        .get("bytes")
        .and_then(Json::as_array)
        .ok_or_else(|| vec!["encodeDownlink returned no bytes array".to_string()])?;
    let bytes = bytes
        .iter()
        .map(|b| b.as_u64().filter(|b| *b <= 255).map(|b| b as u8))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| vec!["encodeDownlink: bytes holds a value that is not an integer 0..=255".to_string()])?;
    let fport = match out.get("fPort") {
        None | Some(Json::Null) => None,
        Some(p) => Some(
            p.as_u64()
                .filter(|p| (1..=223).contains(p))
                .map(|p| p as u8)
                .ok_or_else(|| vec![format!("encodeDownlink: fPort {p} is not 1..=223")])?,
        ),
    };
    Ok(Encoded { bytes, fport, warnings: strings(out, "warnings") })
}
