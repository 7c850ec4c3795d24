//! Debian's `mosquitto` as a real upstream broker for bridge tests. Mosquitto cannot listen
//! on port 0 and report the port, so a free one is picked (bound and released) and the
//! start is retried with a new port if another process took it in between.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

pub struct Mosquitto {
    addr: SocketAddr,
    /// Extra `mosquitto.conf` lines for the listener (e.g. TLS files).
    listener_extra: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Mosquitto {
    /// Starts mosquitto on a fresh loopback port.
    pub async fn start() -> Mosquitto {
        Mosquitto::start_with("").await
    }

    /// Starts mosquitto with extra listener lines, e.g. `cafile`/`certfile`/`keyfile`.
    pub async fn start_with(extra: &str) -> Mosquitto {
        let mut dir = tempfile::tempdir().expect("temp dir");
        for _ in 0..3 {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let mut m = Mosquitto { addr, listener_extra: extra.to_string(), child: None, dir };
            if m.spawn().await {
                return m;
            }
            dir = m.dir;
        }
        panic!("mosquitto did not start (is it installed? scripts/test installs it)");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts it again on the same port (after [`Mosquitto::stop`]), as a link coming back.
    pub async fn restart(&mut self) {
        assert!(self.spawn().await, "mosquitto did not restart on {}", self.addr);
    }

    /// Stops it (SIGTERM, so it saves its sessions): the link goes down.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(10), c.wait()).await.is_err() {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }

    async fn spawn(&mut self) -> bool {
        let conf = self.dir.path().join("mosquitto.conf");
        // Persistence on (saved at SIGTERM), so sessions survive a stop/restart like a real
        // cloud broker's would.
        let text = format!(
            "listener {} 127.0.0.1\n{}allow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\n{}",
            self.addr.port(),
            self.listener_extra,
            self.dir.path().display(),
            // Run as root, mosquitto would switch to its own user, which cannot write the
            // test's temp dir; stay whoever we are.
            if is_root() { "user root\n" } else { "" }
        );
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mosquitto (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                self.child = Some(child);
                return true;
            }
            sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}
