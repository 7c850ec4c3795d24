//! The command line: `roost [--config FILE]`, `roost print-default`, `roost check-config FILE`,
//! `roost [--config FILE] store check|repair`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
        assert!(
            matches!(cli.command, Some(Command::CheckConfig { file }) if file == Path::new("b.toml"))
        );

        assert!(Cli::try_parse_from(["roost", "check-config"]).is_err());
    }
}
