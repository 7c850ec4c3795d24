//! The broker under test: everything that knows *which* broker runs lives here and nowhere
//! else, so switching the suite from the stand-in to Roost means replacing this one file.
//!
//! Today: Debian's `mosquitto`, spawned per test with its own `mosquitto.conf` in a temp dir
//! and a free loopback port. A few Roost config keys are translated to their Mosquitto
//! equivalents (see [`mosquitto_conf`]); the rest of the Roost config text is ignored.
//!
//! What the Roost version must provide (same signatures): `start`, `start_with(toml)`,
//! `addr`, `port`, `stop`, and `queue_drops` from the gateway's metrics.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

/// How long a broker may take to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How many fresh ports to try when the one we picked was taken in between.
const START_ATTEMPTS: usize = 3;

/// One broker, private to one test: its own process, port and (temporary) files.
pub struct TestBroker {
    addr: SocketAddr,
    child: Child,
    // Held so the config and log outlive the process; deleted on drop.
    dir: tempfile::TempDir,
}

impl TestBroker {
    /// A broker with the default configuration.
    pub async fn start() -> TestBroker {
        TestBroker::start_with("").await
    }

    /// A broker configured by Roost config text (TOML), e.g.
    /// `"[limits]\nmax_queued_messages = 10\n"`.
    pub async fn start_with(config_toml: &str) -> TestBroker {
        let table: toml::Table = match config_toml.parse() {
            Ok(table) => table,
            Err(err) => panic!("test config is not valid TOML: {err}\n{config_toml}"),
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match spawn_mosquitto(&table).await {
                Ok(broker) => return broker,
                Err(err) => last_error = err,
            }
        }
        panic!("mosquitto did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// The MQTT (TCP) listener address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Messages dropped from session queues because they were full, if the broker exposes it.
    /// Mosquitto does not (not per test, at least): `None`. Roost: its metrics counter.
    pub fn queue_drops(&self) -> Option<u64> {
        None
    }

    /// Stops the broker and waits for it to exit.
    pub async fn stop(mut self) {
        // SIGKILL is fine for a stand-in with no persistence; the Roost backend shuts down
        // its gateway gracefully instead.
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(START_TIMEOUT, self.child.wait()).await;
        if std::env::var_os("ROOST_E2E_LOG").is_some() {
            print_log(self.dir.path());
        }
    }
}

async fn spawn_mosquitto(config: &toml::Table) -> Result<TestBroker, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    // Mosquitto cannot listen on port 0 and report the port, so one is picked for it; if another
    // process takes it in between, mosquitto exits and `start_with` tries a new one.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, crate::free_port()));
    let conf_path = dir.path().join("mosquitto.conf");
    let log_path = dir.path().join("mosquitto.log");
    let conf = mosquitto_conf(addr.port(), &log_path, config);
    std::fs::write(&conf_path, conf).map_err(|e| format!("write {}: {e}", conf_path.display()))?;

    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn mosquitto (is it installed?): {e}"))?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            print_log(dir.path());
            return Err(format!(
                "mosquitto exited early with {status} (port {} taken?)",
                addr.port()
            ));
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(TestBroker { addr, child, dir });
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "mosquitto did not accept on {addr} within {START_TIMEOUT:?}"
            ));
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// The Mosquitto configuration equivalent to the Roost config, as far as one exists. Roost's
/// defaults that tests rely on (1 MiB packet limit) are applied here too, so the stand-in
/// behaves like Roost with no config.
fn mosquitto_conf(port: u16, log_path: &Path, config: &toml::Table) -> String {
    let int = |section: &str, key: &str| -> Option<i64> {
        config.get(section)?.as_table()?.get(key)?.as_integer()
    };
    let mut conf = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         log_dest file {}\n\
         log_type all\n\
         connection_messages true\n",
        log_path.display()
    );
    let max_packet = int("mqtt", "max_packet_size").unwrap_or(1024 * 1024);
    conf += &format!("max_packet_size {max_packet}\n");
    if let Some(n) = int("mqtt", "max_keep_alive") {
        conf += &format!("max_keepalive {n}\n");
    }
    if let Some(n) = int("mqtt", "topic_alias_maximum") {
        conf += &format!("max_topic_alias {n}\n");
    }
    if let Some(n) = int("limits", "max_inflight") {
        conf += &format!("max_inflight_messages {n}\n");
    }
    if let Some(n) = int("limits", "max_queued_messages") {
        conf += &format!("max_queued_messages {n}\n");
    }
    // `[mqtt] connect_timeout` has no Mosquitto equivalent.
    conf
}

fn print_log(dir: &Path) {
    if let Ok(log) = std::fs::read_to_string(dir.join("mosquitto.log")) {
        eprintln!("---- mosquitto.log ----\n{log}---- end ----");
    }
}
