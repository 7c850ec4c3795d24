//! `roost`: parse the command line, load the config, run the gateway until SIGINT or SIGTERM;
//! SIGHUP reloads the config file (`roost::reload`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use roost::cli::{Cli, Command, EXIT_CONFIG, EXIT_FAILURE};
use roost::config::{self, ConfigError, Settings};
use roost::{DEFAULT_CONFIG, gateway, logging};
use tokio::signal::unix::{Signal, SignalKind, signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PrintDefault) => print_default(),
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::Store { action }) => store(cli.config, action),
        Some(Command::Ctl(args)) => ctl(cli.config, args),
        Some(Command::Passwd { batch, client_id, file, user, password }) => {
            passwd(batch, client_id, &file, &user, password)
        }
        None => run(cli.config),
    }
}

fn print_default() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`roost print-default | head`) is the reader's choice, not our failure.
    match stdout.write_all(DEFAULT_CONFIG.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost: cannot write to standard output: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn store(config_file: Option<PathBuf>, action: roost::cli::StoreAction) -> ExitCode {
    let settings = match config::load(config_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let file = config_file.as_deref().unwrap_or(Path::new("(defaults)"));
            eprintln!("roost: {}", describe(file, &e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let path = settings.storage.file();
    let result = match action {
        roost::cli::StoreAction::Check => roost_core::store::DiskStore::check(&path),
        roost::cli::StoreAction::Repair => roost_core::store::DiskStore::repair(&path),
    };
    match result {
        Ok(report) => {
            println!(
                "{}: {} sessions, {} queued messages, {} retained messages",
                path.display(),
                report.sessions,
                report.messages,
                report.retained
            );
            for (table, key, what) in &report.bad {
                println!("bad record in {table}: {key}: {what}");
            }
            match (action, report.bad.is_empty()) {
                (_, true) => ExitCode::SUCCESS,
                (roost::cli::StoreAction::Repair, false) => {
                    println!("dropped {} bad records", report.bad.len());
                    ExitCode::SUCCESS
                }
                (roost::cli::StoreAction::Check, false) => ExitCode::from(EXIT_FAILURE),
            }
        }
        Err(e) => {
            eprintln!("roost: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn ctl(config_file: Option<PathBuf>, args: roost::cli::CtlArgs) -> ExitCode {
    let settings = match config::load(config_file.as_deref()) {
        Ok(s) => s,
        // With --url the config is only a source of defaults: a file being edited (the
        // very case of `ctl reload`) must not stop the command; the gateway judges it.
        Err(e) if args.url.is_some() => {
            let file = config_file.as_deref().unwrap_or(Path::new("(defaults)"));
            eprintln!("roost: warning: {} (using --url)", describe(file, &e));
            Settings::default()
        }
        Err(e) => {
            let file = config_file.as_deref().unwrap_or(Path::new("(defaults)"));
            eprintln!("roost: {}", describe(file, &e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("roost: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(roost::ctl::run(&settings, args)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roost ctl: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn passwd(batch: bool, client_id: Option<String>, file: &Path, user: &str, password: Option<String>) -> ExitCode {
    let password = match (batch, password) {
        (true, Some(p)) => p,
        (true, None) => {
            eprintln!("roost passwd: -b needs the password as the third argument");
            return ExitCode::from(EXIT_CONFIG);
        }
        (false, Some(_)) => {
            eprintln!("roost passwd: a password argument needs -b");
            return ExitCode::from(EXIT_CONFIG);
        }
        (false, None) => match prompt_password() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("roost passwd: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        },
    };
    if password.is_empty() {
        eprintln!("roost passwd: empty password");
        return ExitCode::from(EXIT_CONFIG);
    }
    match roost_core::auth::users::set_user(file, user, password.as_bytes(), client_id.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost passwd: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Twice on the terminal, not echoed; without a terminal, one line of standard input.
fn prompt_password() -> Result<String, String> {
    match rpassword::prompt_password("Password: ") {
        Ok(first) => {
            let again = rpassword::prompt_password("Reenter password: ").map_err(|e| e.to_string())?;
            if first != again {
                return Err("passwords do not match".into());
            }
            Ok(first)
        }
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| format!("reading the password: {e}"))?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        }
    }
}

fn check_config(file: &Path) -> ExitCode {
    match config::load(Some(file)) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", describe(file, &e));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `FILE: key: message`; a read error already names the file.
fn describe(file: &Path, error: &ConfigError) -> String {
    match error {
        ConfigError::Read { .. } => error.to_string(),
        _ => format!("{}: {error}", file.display()),
    }
}

fn run(config_file: Option<PathBuf>) -> ExitCode {
    let settings = match config::load(config_file.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            let file = config_file.as_deref().unwrap_or(Path::new("(defaults)"));
            eprintln!("roost: {}", describe(file, &e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(&settings.log_level);
    match &config_file {
        Some(file) => {
            tracing::info!(config = %file.display(), version = env!("CARGO_PKG_VERSION"), "roost starting")
        }
        None => tracing::info!(version = env!("CARGO_PKG_VERSION"), "roost starting with the default configuration"),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("roost: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let code = runtime.block_on(serve(settings, config_file));
    // Tasks that ignore cancellation must not keep the process alive past shutdown.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn serve(settings: Settings, config_file: Option<PathBuf>) -> ExitCode {
    // Install the handlers before starting, so a signal during start-up is not fatal by
    // default but leads to an orderly shutdown once start has finished.
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("roost: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let grace = settings.shutdown_grace;
    let gateway = match gateway::Gateway::builder(settings).config_file(config_file).start().await {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("roost: cannot start: {e:#}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    tracing::info!(
        mqtt = ?gateway.mqtt_addrs(),
        http = ?gateway.http_addrs(),
        mqttsn = ?gateway.mqttsn_addrs(),
        coap = ?gateway.coap_addrs(),
        lwm2m = ?gateway.lwm2m_addrs(),
        lorawan = ?gateway.lorawan_addrs(),
        cluster = gateway.cluster().map(|c| c.node()),
        "roost started"
    );

    let name = loop {
        match signals.next().await {
            // The outcome is logged by the reload itself; a refused file changes nothing.
            "SIGHUP" => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = gateway.reload().await;
            }
            name => break name,
        }
    };
    tracing::info!(signal = name, grace = ?grace, "shutting down");
    tokio::select! {
        () = gateway.shutdown(grace) => {
            tracing::info!("roost stopped");
            ExitCode::SUCCESS
        }
        name = signals.next_stop() => {
            // A second signal means the operator will not wait for the grace period.
            tracing::warn!(signal = name, "second signal: exiting without waiting for connections");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// SIGINT and SIGTERM (stop), SIGHUP (reload), whichever comes first.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }

    /// A stop signal; a SIGHUP during shutdown is ignored.
    async fn next_stop(&mut self) -> &'static str {
        loop {
            match self.next().await {
                "SIGHUP" => continue,
                name => return name,
            }
        }
    }
}
