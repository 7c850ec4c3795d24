//! A real PostgreSQL server for a test: Debian's `postgresql` binaries, `initdb` into a
//! temporary directory, `postgres` on a free loopback port with its socket in that directory.
//! PostgreSQL refuses to run as root, so as root it runs as `nobody` (through `runuser`).
//! A missing server fails the test with a message naming the package.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long a fresh cluster may take to accept connections on a loaded box.
const READY: Duration = Duration::from_secs(60);

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
        let mut v: Vec<PathBuf> =
            d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect();
        v.sort();
        v.pop()
    });
    found.unwrap_or_else(|| panic!("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); scripts/test installs Debian's `postgresql`"))
}

pub fn is_root() -> bool {
    // The real uid from /proc: no libc call needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A command for a PostgreSQL binary, as `nobody` when we are root.
fn command(bin: &Path, name: &str) -> Command {
    let path = bin.join(name);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("addr").port()
}

impl Postgres {
    /// initdb (trust auth, user `roost`) and start; returns once it accepts connections.
    pub async fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            // `nobody` must own the cluster directory.
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).expect("chown the cluster dir to nobody");
        }
        let data = dir.path().join("data");
        let out = command(&bin, "initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "roost", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .await
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg = Postgres { port: free_port(), dir, child: None, bin };
        pg.up().await;
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again) on the same port and data, and waits until it answers.
    pub async fn up(&mut self) {
        let child = command(&self.bin, "postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-h", "127.0.0.1", "-c", "fsync=off", "-c", "max_connections=40"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY;
        loop {
            if self.client().await.is_ok() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "postgres did not accept connections within {READY:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The postmaster's PID, from its pid file (under `runuser` it is not our child).
    fn postmaster_pid(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next().map(|l| l.trim().to_string()).filter(|l| l.parse::<u32>().is_ok())
    }

    /// Stops the server (SIGINT to the postmaster's PID: fast shutdown) and waits for it.
    pub async fn down(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = self.postmaster_pid() {
            let _ = Command::new("kill").args(["-INT", &pid]).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        // The postmaster may outlive runuser for a moment: wait for its pid file to go.
        let pidfile = self.data().join("postmaster.pid");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while pidfile.exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// libpq-style connection string for the `roost` user and database `postgres`.
    pub fn conninfo(&self) -> String {
        format!("host=127.0.0.1 port={} user=roost dbname=postgres connect_timeout=2", self.port)
    }

    pub async fn client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.conninfo(), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// One `i64` from a query (e.g. `SELECT count(*) FROM t`).
    pub async fn count(&self, sql: &str) -> i64 {
        let c = self.client().await.expect("connect to postgres");
        c.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pid = self.postmaster_pid();
        if let Some(child) = &mut self.child {
            if let Some(pid) = pid {
                let _ = std::process::Command::new("kill").args(["-INT", &pid]).status();
            }
            let _ = child.start_kill();
        }
    }
}
