//! Live reload: `SIGHUP`, `roost ctl reload` and `POST /api/v1/reload` read the config file
//! again and apply what can change while clients stay connected.
//!
//! Each subsystem that can change live is a [`Reload`] part registered with the
//! [`Reloader`]. A reload runs in two phases so a bad file changes nothing: first every
//! part [`Reload::prepare`]s (reads certificates, parses users files, builds the ACL) and
//! may refuse; only when all have succeeded is each part's [`Apply`] run. What no part can
//! change live (bind addresses, the store, ...) is named in [`Report::restart_needed`] and
//! left as it is ([`fixed`]). Adding a subsystem: implement [`Reload`] for a handle to its
//! running state and call [`Reloader::add`] where the gateway starts it (see `parts`).

mod fixed;
pub mod parts;
pub mod switch;

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::Settings;

/// Makes a prepared change take effect; returns the line the report shows for it. Runs
/// only after every part has prepared without error, so it cannot fail.
pub type Apply = Box<dyn FnOnce() -> String + Send>;

/// One subsystem that can take a new configuration live.
pub trait Reload: Send + Sync {
    /// The config section(s) this part applies, as the report names them (`"acl"`).
    fn name(&self) -> &'static str;
    /// Checks `new` and builds everything the change needs, applying nothing: an error
    /// refuses the whole reload and the running configuration stays. `Ok(None)`: nothing
    /// to do for this part.
    fn prepare(&self, old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>>;
}

/// What a reload did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// One line per part that changed something, `"section: what"`.
    pub applied: Vec<String>,
    /// Changed settings that only a restart applies; they were left as they were.
    pub restart_needed: Vec<String>,
}

/// A refused reload: the file could not be read or validated, or a part refused it.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no config file: the gateway was started with the defaults, there is nothing to reload")]
    NoFile,
    #[error("{0}")]
    Invalid(String),
}

/// The registered parts and the configuration in force.
pub struct Reloader {
    file: Option<PathBuf>,
    current: Mutex<Settings>,
    parts: Mutex<Vec<Arc<dyn Reload>>>,
    /// One reload at a time (a SIGHUP during an API reload waits its turn).
    running: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(file: Option<PathBuf>, settings: Settings) -> Arc<Reloader> {
        Arc::new(Reloader {
            file,
            current: Mutex::new(settings),
            parts: Mutex::new(Vec::new()),
            running: Default::default(),
        })
    }

    /// Registers a part; reloads after this call include it.
    pub fn add(&self, part: Arc<dyn Reload>) {
        self.parts.lock().push(part);
    }

    /// The configuration in force (the start-up one, or the last reload's).
    pub fn current(&self) -> Settings {
        self.current.lock().clone()
    }

    /// Reads the config file again and applies it; logs the outcome.
    pub async fn reload(&self) -> Result<Report, ReloadError> {
        let Some(file) = self.file.clone() else { return Err(ReloadError::NoFile) };
        let loaded = tokio::task::spawn_blocking(move || crate::config::load(Some(&file)).map_err(|e| (file, e)))
            .await
            .map_err(|e| ReloadError::Invalid(format!("reload task failed: {e}")))?;
        let result = match loaded {
            Ok(settings) => self.apply(settings).await,
            Err((file, e)) => Err(ReloadError::Invalid(match e {
                crate::config::ConfigError::Read { .. } => e.to_string(),
                _ => format!("{}: {e}", file.display()),
            })),
        };
        match &result {
            Ok(r) => tracing::info!(applied = ?r.applied, restart_needed = ?r.restart_needed, "configuration reloaded"),
            Err(e) => tracing::error!(error = %e, "configuration reload refused; the running configuration stays"),
        }
        result
    }

    /// Applies `new` (already validated as a file): every part prepares, then all apply.
    pub async fn apply(&self, new: Settings) -> Result<Report, ReloadError> {
        let _one = self.running.lock().await;
        let old = self.current();
        let parts = self.parts.lock().clone();
        let applied = {
            let (old, new) = (old.clone(), new.clone());
            // Parts read files and load plugins: off the async workers. (Bridges spawn
            // tasks from here: a blocking thread has the runtime's context.)
            tokio::task::spawn_blocking(move || -> Result<Vec<String>, ReloadError> {
                let mut prepared = Vec::new();
                for p in &parts {
                    match p.prepare(&old, &new) {
                        Ok(Some(apply)) => prepared.push(apply),
                        Ok(None) => {}
                        Err(e) => return Err(ReloadError::Invalid(format!("{}: {e:#}", p.name()))),
                    }
                }
                Ok(prepared.into_iter().map(|apply| apply()).collect())
            })
            .await
            .map_err(|e| ReloadError::Invalid(format!("reload task failed: {e}")))??
        };
        let restart_needed = fixed::changed(&old, &new);
        // What is left as it was stays in the record of what runs, so the next reload
        // still reports it.
        *self.current.lock() = fixed::keep(&old, new);
        Ok(Report { applied, restart_needed })
    }
}

#[cfg(feature = "codec")]
/// Plugin files are read again by every reload (`roost ctl reload` covers them too).
pub(crate) fn register_plugins(reloader: &Reloader, plugins: &Arc<roost_plugins::Plugins>) {
    reloader.add(Arc::new(parts::PluginsPart(plugins.clone())));
}

/// `POST /api/v1/reload` (what `roost ctl reload` calls): the [`Report`], or 400
/// `BAD_CONFIG` with the error when the file is refused.
pub(crate) fn routes(reloader: Arc<Reloader>) -> axum::Router {
    use axum::response::IntoResponse;
    axum::Router::new().route(
        "/reload",
        axum::routing::post(move || async move {
            match reloader.reload().await {
                Ok(report) => axum::Json(report).into_response(),
                Err(e) => crate::api::ApiError {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    code: "BAD_CONFIG",
                    message: e.to_string(),
                }
                .into_response(),
            }
        }),
    )
}
