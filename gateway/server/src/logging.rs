//! Logs: tracing's fmt subscriber to standard error. The level comes from `[log] level`;
//! `RUST_LOG`, when set, overrides it (the usual habit of Rust programs). A reload sets the
//! level again from the new `[log] level` ([`set_level`]), unless `RUST_LOG` was given.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Replaces the running filter; set by [`init`] when the level comes from the config.
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Installs the global subscriber. `level` is the validated `[log] level`. A `RUST_LOG` that
/// does not parse is reported on stderr and ignored, rather than silently logging nothing.
pub fn init(level: &str) {
    let (filter, from_env) = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.is_empty() => match EnvFilter::builder().parse(&directives) {
            Ok(filter) => (filter, true),
            Err(e) => {
                eprintln!("roost: ignoring RUST_LOG={directives:?} ({e}); using [log] level {level:?}");
                (from_config(level), false)
            }
        },
        _ => (from_config(level), false),
    };
    // Colours only for a person at a terminal: journald, files and pipes get plain text.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    // Fails only if a subscriber is already set, which leaves that one in place: fine.
    if builder.try_init().is_ok() && !from_env {
        let _ = SET_FILTER.set(Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())));
    }
}

/// What a reload did to the log level: `Ok(true)` changed, `Ok(false)` not ours to change
/// (`RUST_LOG` given, or no subscriber of ours installed, as in tests).
pub fn set_level(level: &str) -> Result<bool, String> {
    let Some(set) = SET_FILTER.get() else { return Ok(false) };
    let filter = EnvFilter::builder().parse(level).map_err(|e| format!("log.level: {e}"))?;
    set(filter).map(|()| true)
}

fn from_config(level: &str) -> EnvFilter {
    // The config loader has validated `level`; the fallback only guards a caller that did not.
    EnvFilter::builder().parse(level).unwrap_or_else(|_| EnvFilter::new("info"))
}
