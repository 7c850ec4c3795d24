//! Real servers for the rules sinks, each started by a test on free loopback ports in a
//! temporary directory, and stopped (killed) when dropped: `redis-server`, MariaDB
//! (`mariadb-install-db` + `mariadbd`), RabbitMQ (`rabbitmq-server` with its own node name,
//! ports, Mnesia and log directories, no plugins) and InfluxDB 1.x (`influxd` with its own
//! config). A missing server fails the test with a message naming the Debian package
//! (scripts/test installs them).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::postgres::{free_port, is_root};

/// How long a fresh server may take to listen on a loaded box (RabbitMQ needs the most).
const READY: Duration = Duration::from_secs(90);

fn spawn(cmd: &mut Command, what: &str, package: &str) -> Child {
    cmd.stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} (Debian `{package}`; scripts/test installs it): {e}"))
}

/// Waits until `port` accepts TCP connections, or panics naming `what` and its log.
async fn listening(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = tokio::time::Instant::now() + READY;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        let log = || std::fs::read_to_string(log).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening on {port}:\n{}", log());
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} not listening within {READY:?}:\n{}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_file(dir: &Path) -> (std::fs::File, std::fs::File) {
    let f = std::fs::File::create(dir.join("server.log")).expect("log file");
    let g = f.try_clone().expect("log file");
    (f, g)
}

/// `redis-server`, no persistence.
pub struct Redis {
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Redis {
    pub async fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let (out, err) = log_file(dir.path());
        let mut child = spawn(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(out)
                .stderr(err),
            "redis-server",
            "redis-server",
        );
        listening(port, &mut child, "redis-server", &dir.path().join("server.log")).await;
        Redis { port, _dir: dir, _child: child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// MariaDB: a fresh data directory; `root` without a password from 127.0.0.1.
pub struct Mariadb {
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Mariadb {
    pub async fn start() -> Mariadb {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            install.arg("--user=root");
        }
        let out = install.output().await.unwrap_or_else(|e| {
            panic!("cannot run mariadb-install-db (Debian `mariadb-server`; scripts/test installs it): {e}")
        });
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let (o, e) = log_file(dir.path());
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"])
            .args(["--innodb-buffer-pool-size=16M", "--skip-name-resolve"])
            .stdout(o)
            .stderr(e);
        if is_root() {
            cmd.arg("--user=root");
        }
        let mut child = spawn(&mut cmd, "mariadbd", "mariadb-server");
        listening(port, &mut child, "mariadbd", &dir.path().join("server.log")).await;
        Mariadb { port, _dir: dir, _child: child }
    }

    /// For database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }
}

/// RabbitMQ with the default `guest` user (allowed from loopback). Its Erlang port mapper
/// daemon (`epmd`) runs on a port of its own and is stopped with the server.
pub struct Rabbitmq {
    pub port: u16,
    epmd: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Rabbitmq {
    fn drop(&mut self) {
        // The script runs the Erlang VM as its own child: the VM's PID is in the pid file.
        let vm = std::fs::read_to_string(self._dir.path().join("pid")).ok().map(|p| p.trim().to_string());
        if let Some(pid) = vm.as_deref().filter(|p| p.parse::<u32>().is_ok()) {
            let _ = std::process::Command::new("kill").args(["-KILL", pid]).status();
            // The node must be gone before its epmd can be stopped.
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.start_kill();
        let _ = std::process::Command::new("epmd")
            .args(["-port", &self.epmd.to_string(), "-kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Rabbitmq {
    pub async fn start() -> Rabbitmq {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let (port, dist, epmd) = (free_port(), free_port(), free_port());
        std::fs::write(d.join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(d.join("rabbitmq.conf"), "").expect("config file");
        let (o, e) = log_file(d);
        let bin = ["/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/sbin/rabbitmq-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("rabbitmq-server");
        let child = spawn(
            Command::new(bin)
                .env("HOME", d)
                .env("ERL_EPMD_PORT", epmd.to_string())
                .env("RABBITMQ_NODENAME", format!("roost{port}@localhost"))
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", port.to_string())
                .env("RABBITMQ_DIST_PORT", dist.to_string())
                .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", d.join("log"))
                .env("RABBITMQ_PID_FILE", d.join("pid"))
                .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
                .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
                .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
                .stdout(o)
                .stderr(e),
            "rabbitmq-server",
            "rabbitmq-server",
        );
        let log = d.join("server.log");
        // Made before the wait, so a test that fails meanwhile still stops the VM and epmd.
        let mut r = Rabbitmq { port, epmd, _dir: dir, child };
        listening(port, &mut r.child, "rabbitmq-server", &log).await;
        r
    }

    /// A channel as `guest`.
    pub async fn channel(&self) -> (amqprs::connection::Connection, amqprs::channel::Channel) {
        let args = amqprs::connection::OpenConnectionArguments::new("127.0.0.1", self.port, "guest", "guest");
        // The listener opens a moment before the broker takes connections.
        let deadline = tokio::time::Instant::now() + READY;
        let conn = loop {
            match amqprs::connection::Connection::open(&args).await {
                Ok(c) => break c,
                Err(e) => assert!(tokio::time::Instant::now() < deadline, "AMQP connection: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let ch = conn.open_channel(None).await.expect("AMQP channel");
        (conn, ch)
    }
}

/// InfluxDB 1.x (`influxd`), HTTP on a free port, no reporting or monitoring.
pub struct Influxdb {
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Influxdb {
    pub async fn start() -> Influxdb {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display();
        let (port, rpc) = (free_port(), free_port());
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\ndir = \"{d}/meta\"\n\
             [data]\ndir = \"{d}/data\"\nwal-dir = \"{d}/wal\"\nquery-log-enabled = false\n\
             [http]\nbind-address = \"127.0.0.1:{port}\"\nlog-enabled = false\n\
             [monitor]\nstore-enabled = false\n[continuous_queries]\nenabled = false\n"
        );
        std::fs::write(dir.path().join("influxdb.conf"), config).expect("config");
        let (o, e) = log_file(dir.path());
        let mut child = spawn(
            Command::new("influxd").arg("-config").arg(dir.path().join("influxdb.conf")).stdout(o).stderr(e),
            "influxd",
            "influxdb",
        );
        listening(port, &mut child, "influxd", &dir.path().join("server.log")).await;
        Influxdb { port, _dir: dir, _child: child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An InfluxQL statement (`CREATE DATABASE`, `SELECT`); the JSON answer.
    pub async fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect()
        };
        let body = format!("db={}&q={}", enc(db), enc(q));
        let req = format!(
            "POST /query HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect to influxd");
        s.write_all(req.as_bytes()).await.expect("send the query");
        let mut resp = Vec::new();
        tokio::time::timeout(crate::WAIT * 10, s.read_to_end(&mut resp)).await.expect("influxd answers").expect("read");
        let text = String::from_utf8_lossy(&resp);
        let json = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(json).unwrap_or_else(|e| panic!("influxd answer {text}: {e}"))
    }

    /// `SELECT count(field) FROM measurement [WHERE ...]` as a number (0 when no series).
    pub async fn count(&self, db: &str, q: &str) -> i64 {
        let r = self.query(db, q).await;
        r["results"][0]["series"][0]["values"][0][1].as_i64().unwrap_or(0)
    }
}
