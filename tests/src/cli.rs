//! `mosquitto_sub` / `mosquitto_pub` as clients: the reference command-line tools must work
//! against the broker as users will run them. Every run has `-W` (give up after N seconds)
//! and a bounded wait here, so a test never hangs on them.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::{Instant, timeout, timeout_at};

use crate::WAIT;

/// Protocol version as the tools spell it in `-V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

impl Version {
    fn arg(self) -> &'static str {
        match self {
            Version::V311 => "mqttv311",
            Version::V5 => "mqttv5",
        }
    }
}

/// One message as `mosquitto_sub -d -v` printed it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `-v` line: `topic payload`.
    pub line: String,
    /// The debug line about the PUBLISH, e.g.
    /// `Client x received PUBLISH (d0, q1, r0, m1, 'a/b', ... (2 bytes))`.
    pub debug: String,
}

impl Received {
    /// The QoS the broker delivered with, read from the debug line (`q0`, `q1`, `q2`).
    pub fn qos(&self) -> u8 {
        match self.debug.split(", ").find_map(|part| part.strip_prefix('q')) {
            Some(q) => q.parse().unwrap_or_else(|_| panic!("bad QoS in {:?}", self.debug)),
            None => panic!("no QoS in {:?}", self.debug),
        }
    }
}

/// A running `mosquitto_sub -d -v`, subscribed (its SUBACK seen) when `start` returns.
pub struct Sub {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    output: Vec<String>,
}

impl Sub {
    /// Subscribes to `filter` at `qos`; exits after `count` messages or 10 s.
    pub async fn start(port: u16, version: Version, filter: &str, qos: u8, count: usize) -> Sub {
        // mosquitto_sub block-buffers a piped stdout; `stdbuf -oL` makes it line-buffered so
        // the SUBACK line arrives before the messages do.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version.arg()])
            .args(["-t", filter, "-q", &qos.to_string(), "-v", "-d"])
            .args(["-C", &count.to_string(), "-W", "10"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn mosquitto_sub (is mosquitto-clients installed?): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut sub = Sub { child, lines: BufReader::new(stdout).lines(), output: Vec::new() };
        // Publishing before the SUBACK would race the subscription.
        let deadline = Instant::now() + WAIT;
        while !sub.next_line(deadline).await.contains("received SUBACK") {}
        sub
    }

    /// The next message printed; panics if none within `wait`.
    pub async fn expect_message(&mut self, wait: Duration) -> Received {
        let deadline = Instant::now() + wait;
        let mut debug = String::new();
        loop {
            let line = self.next_line(deadline).await;
            if line.starts_with("Client ") {
                if line.contains("received PUBLISH") {
                    debug = line;
                }
            } else if !line.starts_with("Subscribed (mid") {
                return Received { line, debug };
            }
        }
    }

    /// Waits for the process to exit by itself (after its `-C` count) and checks it succeeded.
    pub async fn expect_exit(mut self) {
        match timeout(WAIT, self.child.wait()).await {
            Ok(Ok(status)) => {
                assert!(status.success(), "mosquitto_sub exited with {status}; output:\n{}", self.output.join("\n"))
            }
            Ok(Err(err)) => panic!("waiting for mosquitto_sub: {err}"),
            Err(_) => panic!("mosquitto_sub still running after {WAIT:?}; output:\n{}", self.output.join("\n")),
        }
    }

    async fn next_line(&mut self, deadline: Instant) -> String {
        match timeout_at(deadline, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                self.output.push(line.clone());
                line
            }
            Ok(Ok(None)) => panic!("mosquitto_sub ended; output:\n{}", self.output.join("\n")),
            Ok(Err(err)) => panic!("reading mosquitto_sub output: {err}"),
            Err(_) => panic!("mosquitto_sub printed nothing new in time; output:\n{}", self.output.join("\n")),
        }
    }
}

/// Runs `mosquitto_pub` once and checks it succeeded.
pub async fn publish(port: u16, version: Version, topic: &str, message: &str, qos: u8) {
    let run = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version.arg()])
        .args(["-t", topic, "-m", message, "-q", &qos.to_string()])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match timeout(WAIT, run).await {
        Ok(Ok(out)) => assert!(
            out.status.success(),
            "mosquitto_pub exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(Err(err)) => panic!("spawn mosquitto_pub (is mosquitto-clients installed?): {err}"),
        Err(_) => panic!("mosquitto_pub did not finish within {WAIT:?}"),
    }
}
