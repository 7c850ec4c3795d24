//! A real MariaDB server for a test: Debian's `mariadb-server`, `mariadb-install-db` into a
//! temporary directory, `mariadbd` on a free loopback port with its socket there; SQL is run
//! with the `mariadb` client over that socket. A missing server fails the test with a
//! message naming the package.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long a fresh server may take to accept connections on a loaded box.
const READY: Duration = Duration::from_secs(60);

pub struct Mariadb {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The path of `bin` on PATH or in /usr/sbin (Debian's servers live there, which a non-root
/// PATH often lacks); panics naming the Debian `package` that provides it.
pub fn find_bin(bin: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(bin))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{bin} is not installed; scripts/test installs Debian's `{package}`"))
}

impl Mariadb {
    /// Creates the data directory and starts the server; returns once it answers.
    pub async fn start() -> Mariadb {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(find_bin("mariadb-install-db", "mariadb-server"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args(["--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdout(Stdio::null())
            .output()
            .await
            .expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut db = Mariadb { port: crate::postgres::free_port(), dir, child: None };
        db.up().await;
        db
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Starts the server (again) on the same port and data, and waits until it answers.
    pub async fn up(&mut self) {
        let child = Command::new(find_bin("mariadbd", "mariadb-server"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.path().join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", self.dir.path().join("mysqld.pid").display()))
            .arg(format!("--port={}", self.port))
            .args(["--user=root", "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin"])
            .args(["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=OFF"])
            .args(["--innodb-flush-log-at-trx-commit=0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY;
        while self.try_sql("SELECT 1").await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "mariadbd did not answer within {READY:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server (SIGTERM: a clean shutdown) and waits for it.
    pub async fn down(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    async fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(find_bin("mariadb", "mariadb-client"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs SQL as root over the socket; panics with the server's message on failure.
    pub async fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}
