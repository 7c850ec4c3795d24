//! Logs: tracing's fmt subscriber to standard error. The level comes from `[log] level`;
//! `RUST_LOG`, when set, overrides it (the usual habit of Rust programs).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is the validated `[log] level`. A `RUST_LOG` that
/// does not parse is reported on stderr and ignored, rather than silently logging nothing.
pub fn init(level: &str) {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.is_empty() => match EnvFilter::builder().parse(&directives) {
            Ok(filter) => filter,
            Err(e) => {
                eprintln!("roost: ignoring RUST_LOG={directives:?} ({e}); using [log] level {level:?}");
                from_config(level)
            }
        },
        _ => from_config(level),
    };
    // Colours only for a person at a terminal: journald, files and pipes get plain text.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    // Fails only if a subscriber is already set, which leaves that one in place: fine.
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_env_filter(filter).try_init();
}

fn from_config(level: &str) -> EnvFilter {
    // The config loader has validated `level`; the fallback only guards a caller that did not.
    EnvFilter::builder().parse(level).unwrap_or_else(|_| EnvFilter::new("info"))
}
