//! The independent LwM2M client the interop tests drive: npm `lwm2m-node-lib` (Telefonica
//! FIWARE), through `tests/peers/lwm2m_client.js`, installed by scripts/test.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The peer's lines, as it prints them.
pub type PeerLines = Lines<BufReader<ChildStdout>>;

const WAIT: Duration = Duration::from_secs(20);

/// Starts the peer registering `ep` (objects /1/0, /3/0, /3303/0) with the server at
/// `server`. Fails loudly when the peer is not installed.
pub fn spawn(server: SocketAddr, ep: &str) -> (Child, PeerLines) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");
    assert!(
        std::path::Path::new(dir).join("lwm2m_client/node_modules/lwm2m-node-lib").is_dir(),
        "lwm2m-node-lib is missing: run scripts/test (it runs `npm install --prefix tests/tests/peers/lwm2m_client lwm2m-node-lib`)"
    );
    let mut child = Command::new("node")
        .arg(format!("{dir}/lwm2m_client.js"))
        .env("HOST", server.ip().to_string())
        .env("PORT", server.port().to_string())
        .env("EP", ep)
        .env("LIFETIME", "120")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/test installs nodejs)");
    let stdout = child.stdout.take().expect("piped stdout");
    (child, BufReader::new(stdout).lines())
}

/// The peer's next line starting with `prefix` (its library may log other lines).
pub async fn line(lines: &mut PeerLines, prefix: &str) -> String {
    let find = async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with(prefix) {
                return l;
            }
        }
        panic!("the peer ended before printing {prefix:?}");
    };
    tokio::time::timeout(WAIT, find)
        .await
        .unwrap_or_else(|_| panic!("no {prefix:?} line from the peer within {WAIT:?}"))
}
