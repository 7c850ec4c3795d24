//! The codec registry: codecs by name, so that a `[[codec]]` listener names its codec in
//! config and a user's own `main` adds codecs of their own crate in a few lines:
//!
//! ```
//! # use roost_codec::{Registry, codecs::line::LineCodec};
//! let mut codecs = Registry::default();            // the codecs that ship with Roost
//! codecs.register("my-line", |_options| Ok(|| LineCodec::default()));
//! assert!(codecs.names().any(|n| n == "my-line"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec::CodecFactory;
use crate::codecs;

/// A codec's `options` table from its `[[codec]]` entry, as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options(pub toml::Table);

// Options come from a config file and are compared only to tell configurations apart; a
// NaN option would make a configuration unequal to itself, which is harmless there.
impl Eq for Options {}

impl Options {
    /// The whole table as the codec's own options type. Unknown keys are refused when the
    /// type says `#[serde(deny_unknown_fields)]`; errors name the key.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, OptionsError> {
        toml::Value::Table(self.0.clone())
            .try_into()
            .map_err(|e: toml::de::Error| OptionsError(e.message().trim().to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What is wrong with a codec's options; the gateway reports it as
/// `codec[N].options: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionsError(pub String);

impl OptionsError {
    pub fn new(message: impl Into<String>) -> Self {
        OptionsError(message.into())
    }
}

type Build = dyn Fn(&Options) -> Result<Arc<dyn CodecFactory>, OptionsError> + Send + Sync;

/// Codecs by name.
#[derive(Clone)]
pub struct Registry {
    codecs: BTreeMap<String, Arc<Build>>,
}

impl Default for Registry {
    /// The codecs that ship with Roost: `tlv-sensor` and `line`.
    fn default() -> Self {
        let mut r = Registry::empty();
        codecs::register_builtin(&mut r);
        r
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.codecs.keys()).finish()
    }
}

impl Registry {
    /// A registry with no codec at all.
    pub fn empty() -> Self {
        Registry { codecs: BTreeMap::new() }
    }

    /// Registers (or replaces) the codec `name`. `build` reads the listener's options
    /// and returns the factory that makes one codec per connection; it runs once per
    /// listener at start-up, so bad options stop the gateway with a clear error.
    pub fn register<F, B>(&mut self, name: &str, build: B) -> &mut Self
    where
        F: CodecFactory,
        B: Fn(&Options) -> Result<F, OptionsError> + Send + Sync + 'static,
    {
        let build: Arc<Build> =
            Arc::new(move |options: &Options| build(options).map(|f| Arc::new(f) as Arc<dyn CodecFactory>));
        self.codecs.insert(name.to_string(), build);
        self
    }

    /// Builds the factory of codec `name` with `options`.
    pub fn build(&self, name: &str, options: &Options) -> Result<Arc<dyn CodecFactory>, RegistryError> {
        let build = self.codecs.get(name).ok_or_else(|| RegistryError::Unknown {
            name: name.to_string(),
            known: self.names().collect::<Vec<_>>().join(", "),
        })?;
        build(options).map_err(RegistryError::Options)
    }

    /// Registered codec names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.codecs.keys().map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("no codec named {name:?} is registered (registered: {known})")]
    Unknown { name: String, known: String },
    #[error("{0}")]
    Options(OptionsError),
}
