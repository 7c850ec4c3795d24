//! A real Redis server for a test: Debian's `redis-server` on a free loopback port, no
//! persistence, data written with `redis-cli`. It can be paused (SIGSTOP: a backend that
//! accepts and never answers) and stopped and started again (empty, to be seeded again).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> Redis {
        let mut r =
            Redis { port: crate::postgres::free_port(), dir: tempfile::tempdir().expect("temp dir"), child: None };
        r.up().await;
        r
    }

    /// Starts the server (again, empty) on the same port; waits until it answers.
    pub async fn up(&mut self) {
        let child = Command::new(crate::mariadb::find_bin("redis-server", "redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.try_cmd(&["PING"]).await.map(|s| s.trim() == "PONG") != Ok(true) {
            assert!(tokio::time::Instant::now() < deadline, "redis-server did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a server that holds connections and answers nothing.
    pub async fn pause(&self, stop: bool) {
        let pid = self.child.as_ref().and_then(Child::id).expect("redis-server runs");
        let sig = if stop { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill").args([sig, &pid.to_string()]).status().await.expect("kill");
        assert!(ok.success(), "kill {sig} redis-server");
    }

    async fn try_cmd(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(crate::mariadb::find_bin("redis-cli", "redis-tools"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .await
            .map_err(|e| format!("redis-cli (Debian's `redis-tools`): {e}"))?;
        if out.status.success() { Ok(String::from_utf8_lossy(&out.stdout).into_owned()) } else { Err(String::new()) }
    }

    /// One command through `redis-cli`.
    pub async fn cmd(&self, args: &[&str]) -> String {
        self.try_cmd(args).await.unwrap_or_else(|e| panic!("redis-cli {args:?}: {e}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}
