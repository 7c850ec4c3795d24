//! The third-party MQTT-SN client (`mqtt-sn-12` from PyPI, installed by scripts/test) driven
//! by `tests/peers/mqttsn_peer.py`: one line per event on its stdout, commands on stdin.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

pub struct SnPeer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl SnPeer {
    /// Runs `mqttsn_peer.py SCENARIO PORT ARGS...`.
    pub fn start(scenario: &str, port: u16, args: &[&str]) -> SnPeer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mqttsn_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(scenario)
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs mqtt-sn-12)");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        SnPeer { child, lines }
    }

    /// The next line the peer prints, within 10 s.
    pub async fn line(&mut self) -> String {
        match timeout(Duration::from_secs(10), self.lines.next_line()).await {
            Ok(Ok(Some(l))) => l,
            other => panic!("peer said nothing more: {other:?}; exit: {:?}", self.child.try_wait()),
        }
    }

    pub async fn expect(&mut self, want: &str) {
        let got = self.line().await;
        assert_eq!(got, want);
    }

    pub async fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(format!("{line}\n").as_bytes()).await.expect("write to peer");
        stdin.flush().await.expect("flush to peer");
    }

    pub async fn finish(mut self) {
        let status = timeout(Duration::from_secs(10), self.child.wait()).await.expect("peer exits").expect("wait");
        assert!(status.success(), "peer exited with {status}");
    }
}
