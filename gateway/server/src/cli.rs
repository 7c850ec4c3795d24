//! The command line: `roost [--config FILE]`, `roost print-default`, `roost check-config FILE`,
//! `roost [--config FILE] store check|repair`, `roost [--config FILE] ctl ...` (a running
//! gateway, through its HTTP API; see [`crate::ctl`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Roost, a multi-protocol IoT gateway. With no subcommand, runs the gateway.
#[derive(Debug, Parser)]
#[command(name = "roost", version, about)]
pub struct Cli {
    /// Configuration file. Without one, Roost runs with the defaults (listening on loopback only).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the annotated default configuration to standard output.
    PrintDefault,
    /// Check a configuration file: prints "FILE: ok", or the error and exits with status 2.
    CheckConfig {
        /// The file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Add a user to a users file (`[auth] password_file`), or change its password, as
    /// `mosquitto_passwd` does. The file is created if missing; the password is stored as an
    /// argon2id hash. Without -b the password is prompted for (twice) on the terminal.
    Passwd {
        /// Batch mode: the password is the third argument (it shows in the process list and
        /// shell history; prefer the prompt).
        #[arg(short = 'b')]
        batch: bool,
        /// Bind the user to this client id: it may connect with no other.
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
        /// The users file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(value_name = "USER")]
        user: String,
        /// With -b: the password.
        #[arg(value_name = "PASSWORD")]
        password: Option<String>,
    },
    /// Inspect the store file named by `[storage]` of the config (the gateway must be stopped).
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Act on a running gateway through its HTTP API (the key: --key, $ROOST_API_KEY,
    /// `[http] api_keys` of the config, or the generated `{data_dir}/api_key`).
    Ctl(CtlArgs),
}

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Base URL of the gateway's HTTP listener (default: the first `[http] bind` of the config).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// API key.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Write every packet and message in and out of a client, or on a topic filter, to a file.
    Trace {
        #[command(subcommand)]
        action: TraceAction,
    },
    /// List the connected clients and sessions.
    Clients,
    /// Disconnect a client.
    Kick {
        #[arg(value_name = "CLIENTID")]
        client_id: String,
    },
    /// Make the gateway read its config file again and apply what can change live (as
    /// SIGHUP does); prints what changed and what needs a restart. Exits 1 if the file is
    /// refused (the running configuration then stays).
    Reload,
}

#[derive(Debug, Subcommand)]
pub enum TraceAction {
    /// Start a trace: `trace start client CLIENTID FILE` or `trace start topic FILTER FILE`.
    Start {
        kind: TraceKind,
        /// The client id or topic filter.
        target: String,
        /// The file to write (a relative path is taken from the current directory).
        file: PathBuf,
    },
    /// Stop a trace and close its file: `trace stop client CLIENTID`, `trace stop topic FILTER`.
    Stop { kind: TraceKind, target: String },
    /// List the running traces.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceKind {
    Client,
    Topic,
}

impl TraceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceKind::Client => "client",
            TraceKind::Topic => "topic",
        }
    }
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum StoreAction {
    /// Read every record; exits 0 if all decode, 1 otherwise.
    Check,
    /// Repair the file and drop the records that cannot be decoded.
    Repair,
}

/// Exit status for a configuration the gateway cannot use (the same as clap's usage errors).
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the gateway fails to start or stop.
pub const EXIT_FAILURE: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_each_form() {
        let cli = Cli::try_parse_from(["roost"]).expect("no arguments");
        assert!(cli.config.is_none() && cli.command.is_none());

        let cli = Cli::try_parse_from(["roost", "-c", "a.toml"]).expect("-c");
        assert_eq!(cli.config, Some(PathBuf::from("a.toml")));

        let cli = Cli::try_parse_from(["roost", "--config", "a.toml"]).expect("--config");
        assert_eq!(cli.config, Some(PathBuf::from("a.toml")));

        let cli = Cli::try_parse_from(["roost", "print-default"]).expect("print-default");
        assert!(matches!(cli.command, Some(Command::PrintDefault)));

        let cli = Cli::try_parse_from(["roost", "check-config", "b.toml"]).expect("check-config");
        assert!(matches!(cli.command, Some(Command::CheckConfig { file }) if file == Path::new("b.toml")));

        assert!(Cli::try_parse_from(["roost", "check-config"]).is_err());

        let cli = Cli::try_parse_from(["roost", "ctl", "--key", "k", "trace", "start", "client", "dev-1", "t.log"])
            .expect("ctl trace start");
        let Some(Command::Ctl(ctl)) = cli.command else { panic!("ctl") };
        assert!(matches!(
            ctl.command,
            CtlCommand::Trace { action: TraceAction::Start { kind: TraceKind::Client, .. } }
        ));
        let cli = Cli::try_parse_from(["roost", "ctl", "trace", "stop", "topic", "a/#"]).expect("ctl trace stop");
        assert!(matches!(
            cli.command,
            Some(Command::Ctl(CtlArgs {
                command: CtlCommand::Trace { action: TraceAction::Stop { kind: TraceKind::Topic, .. } },
                ..
            }))
        ));
        assert!(Cli::try_parse_from(["roost", "ctl", "trace", "start", "nope", "x", "f"]).is_err());
    }
}
