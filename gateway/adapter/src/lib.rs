//! roost-adapter: the contract every protocol adapter fulfils, so the gateway can start,
//! list, measure and stop it without knowing the protocol.
//!
//! An adapter's life, in the order the gateway drives it:
//!
//! 1. **built** from its own config section (a typed settings struct; third-party adapters
//!    read `[adapter.NAME]` through a [`Factory`]);
//! 2. [`Adapter::bind`]: binds its sockets, before the store is opened, so a taken port
//!    fails fast;
//! 3. [`Adapter::start`]: spawns its tasks on the gateway's [`TaskTracker`], stopping when
//!    the [`CancellationToken`] fires, and returns [`Running`]: the addresses it listens on,
//!    the metric families it declares, optional API routes and its typed state.
//!
//! The gateway keeps every [`Running`] in one [`registry::AdapterRegistry`], which
//! `/metrics`, `$SYS` and the management API iterate: a counter declared once appears in all
//! three. See `docs/adding-a-protocol.md`.

pub mod metrics;
pub mod registry;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use roost_core::Broker;
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

pub use metrics::{Family, Kind, Sample};
pub use registry::AdapterRegistry;

/// What an adapter reports when it cannot bind or start; the gateway prefixes the adapter's
/// name.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The gateway's half of the contract: what every adapter gets at start.
#[derive(Clone)]
pub struct Context {
    pub broker: Broker,
    /// Fires at shutdown: stop accepting, let sessions end.
    pub shutdown: CancellationToken,
    /// Every task the adapter spawns goes here, so shutdown can wait for it.
    pub tracker: TaskTracker,
}

/// One bound socket of an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Which of the adapter's listeners this is (`"mqtt"`, a `[[codec]]` name, ...).
    pub name: String,
    /// `"tcp"`, `"udp"`, `"tls"`, `"dtls"`, `"ws"`, `"wss"`.
    pub transport: &'static str,
    /// The bound address (with the real port where the config said 0).
    pub addr: SocketAddr,
}

impl Listener {
    pub fn new(name: impl Into<String>, transport: &'static str, addr: SocketAddr) -> Listener {
        Listener { name: name.into(), transport, addr }
    }
}

/// A started adapter, as the gateway keeps it.
#[derive(Default)]
pub struct Running {
    pub listeners: Vec<Listener>,
    /// Every metric family this adapter declares (read at each scrape / `$SYS` tick).
    pub metrics: Vec<Family>,
    /// Routes merged under `/api/v1`, behind the API key check, with their state applied.
    pub routes: Option<axum::Router>,
    /// The adapter's own state, for tests and tools that know its type
    /// (`Gateway::adapter_state::<T>(name)`).
    pub state: Option<Arc<dyn Any + Send + Sync>>,
}

/// A protocol adapter. Object safe: the gateway holds `Box<dyn Adapter>`.
#[async_trait::async_trait]
pub trait Adapter: Send {
    /// The adapter's name: its `$SYS` and API key, and `[adapter.NAME]` for third-party
    /// adapters. Unique within a gateway.
    fn name(&self) -> &str;

    /// Binds every socket of the config section. Called for every adapter before the store
    /// is opened; nothing may be served yet.
    async fn bind(&mut self) -> Result<(), Error>;

    /// Serves what [`Adapter::bind`] bound: tasks go on `ctx.tracker` and stop at
    /// `ctx.shutdown`.
    async fn start(self: Box<Self>, ctx: Context) -> Result<Running, Error>;
}

/// Builds a third-party adapter from its `[adapter.NAME]` config table; registered with
/// `gateway::Builder::adapter` (one line), called only when the section is present.
pub trait Factory: Send + Sync {
    /// The `NAME` of `[adapter.NAME]`.
    fn name(&self) -> &str;
    fn build(&self, section: toml::Table) -> Result<Box<dyn Adapter>, Error>;
}

/// A [`Factory`] from a serde config type and a constructor: the section is deserialized
/// into `C` (use `#[serde(deny_unknown_fields)]` so typos are errors), then `build(c)`.
pub fn factory<C, A, F>(name: &'static str, build: F) -> Box<dyn Factory>
where
    C: serde::de::DeserializeOwned + 'static,
    A: Adapter + 'static,
    F: Fn(C) -> Result<A, Error> + Send + Sync + 'static,
{
    Box::new(Typed {
        name,
        build: move |t: toml::Table| -> Result<Box<dyn Adapter>, Error> {
            let config: C = t.try_into()?;
            Ok(Box::new(build(config)?))
        },
    })
}

struct Typed<F> {
    name: &'static str,
    build: F,
}

impl<F> Factory for Typed<F>
where
    F: Fn(toml::Table) -> Result<Box<dyn Adapter>, Error> + Send + Sync,
{
    fn name(&self) -> &str {
        self.name
    }
    fn build(&self, section: toml::Table) -> Result<Box<dyn Adapter>, Error> {
        (self.build)(section)
    }
}
