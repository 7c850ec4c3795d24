//! A Roost cluster for tests: one `nats-server -js` on a free loopback port with its store
//! in a temp dir, and `roost` processes (the built binary) joined to it, each with every
//! listener on port 0. A missing `nats-server` fails the test with how to install it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::WAIT;
use crate::api::Api;
use crate::roost_bin::roost_bin;

/// The API key every test node accepts.
pub const API_KEY: &str = "cluster-test-key-0123456789";

/// The Debian package's path first, then `PATH`.
fn nats_server_bin() -> PathBuf {
    let debian = PathBuf::from("/usr/sbin/nats-server");
    if debian.is_file() {
        return debian;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("nats-server")).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| {
        panic!("nats-server is not installed (looked in /usr/sbin and PATH): `apt-get install nats-server` (scripts/test does it)")
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A `nats-server` with JetStream.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    store: PathBuf,
}

impl Nats {
    /// Starts on a free port with its JetStream store under `dir`.
    pub async fn start(dir: &Path) -> Nats {
        let mut n = Nats { child: None, port: free_port(), store: dir.join("jetstream") };
        n.restart().await;
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts on the same port and store; returns once it accepts connections.
    pub async fn restart(&mut self) {
        let child = Command::new(nats_server_bin())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "nats-server did not listen on {} in time", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it (SIGKILL by its PID) and waits for it to be gone.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = tokio::time::timeout(WAIT, c.wait()).await;
        }
    }
}

/// One `roost` process of the cluster and the addresses it logged.
pub struct Node {
    pub name: String,
    child: Child,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    pub mqttsn: Option<SocketAddr>,
    pub coap: Option<SocketAddr>,
    pub lwm2m: Option<SocketAddr>,
    pub lorawan: Option<SocketAddr>,
}

impl Node {
    pub fn api(&self) -> Api {
        Api::new(self.http, API_KEY)
    }

    /// `/api/v1/cluster` of this node.
    pub async fn cluster(&self) -> Value {
        let (status, body) = self.api().get("/api/v1/cluster").await;
        assert_eq!(status, 200, "{}: /api/v1/cluster: {body}", self.name);
        body
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }
}

/// The config of node `name`: every listener on port 0, the cluster's timings short.
/// `nats` empty: no `[cluster]` section at all (a single node).
pub fn node_config(name: &str, nats: &str, data: &Path, extra: &str) -> String {
    if nats.is_empty() {
        let full = node_config(name, "x", data, extra);
        return full.split("[cluster]").next().unwrap_or_default().to_string();
    }
    format!(
        "[node]\nname = \"{name}\"\nsys_interval = \"1s\"\n[mqtt]\nbind = [\"127.0.0.1:0\"]\n[mqttsn]\nbind = [\"127.0.0.1:0\"]\n\
         [coap]\nbind = [\"127.0.0.1:0\"]\n[lwm2m]\nbind = [\"127.0.0.1:0\"]\n[lorawan]\nbind = [\"127.0.0.1:0\"]\n\
         [http]\nbind = [\"127.0.0.1:0\"]\napi_keys = [\"{API_KEY}\"]\n[storage]\ndata_dir = {data:?}\n\
         [cluster]\nnode = \"{name}\"\nnats = [\"{nats}\"]\nheartbeat = \"200ms\"\nnode_timeout = \"1500ms\"\n{extra}"
    )
}

fn first_addr(line: &str, key: &str) -> Option<SocketAddr> {
    let rest = line.split(&format!(" {key}=[")).nth(1)?;
    let end = rest.find([',', ']'])?;
    rest[..end].parse().ok()
}

/// Starts `roost` for node `name` and waits (bounded) for its start-up line.
pub async fn start_node(name: &str, nats: &str, dir: &Path, extra: &str) -> Node {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).expect("node data dir");
    let config = data.join("roost.toml");
    std::fs::write(&config, node_config(name, nats, &data, extra)).expect("write config");
    let mut child = Command::new(roost_bin())
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn roost");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = Vec::new();
    let started = tokio::time::timeout(WAIT * 5, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("roost started") {
                return Some(line);
            }
            log.push(line);
        }
        None
    })
    .await;
    let line = match started {
        Ok(Some(line)) => line,
        Ok(None) => panic!("roost {name} exited at start-up:\n{}", log.join("\n")),
        Err(_) => panic!("roost {name} did not start in time:\n{}", log.join("\n")),
    };
    let echo = std::env::var_os("ROOST_CLUSTER_LOG").is_some();
    let tag = name.to_string();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            if echo {
                eprintln!("[{tag}] {l}");
            }
        }
    });
    Node {
        name: name.to_string(),
        child,
        mqtt: first_addr(&line, "mqtt").unwrap_or_else(|| panic!("no mqtt address in {line}")),
        http: first_addr(&line, "http").unwrap_or_else(|| panic!("no http address in {line}")),
        mqttsn: first_addr(&line, "mqttsn"),
        coap: first_addr(&line, "coap"),
        lwm2m: first_addr(&line, "lwm2m"),
        lorawan: first_addr(&line, "lorawan"),
    }
}

/// NATS and nodes `names`, each seeing all the others up.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub nats: Nats,
    pub nodes: Vec<Node>,
}

impl TestCluster {
    pub async fn start(names: &[&str]) -> TestCluster {
        TestCluster::start_with(names, "").await
    }

    /// With `extra` appended to each node's config.
    pub async fn start_with(names: &[&str], extra: &str) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let nats = Nats::start(dir.path()).await;
        let mut nodes = Vec::new();
        for name in names {
            nodes.push(start_node(name, &nats.url(), dir.path(), extra).await);
        }
        let c = TestCluster { dir, nats, nodes };
        for n in &c.nodes {
            c.await_view(n, |v| nodes_up(v) >= names.len(), "every node up").await;
        }
        c
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Waits (bounded) until `node`'s `/api/v1/cluster` satisfies `ok`.
    pub async fn await_view(&self, node: &Node, ok: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        loop {
            let v = node.cluster().await;
            if ok(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "{}: not {what} in time: {v}", node.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `node` knows at least `n` routes of other nodes.
    pub async fn await_remote_routes(&self, node: &str, n: u64) {
        let node = self.node(node);
        self.await_view(node, |v| v["routes"]["remote"].as_u64().unwrap_or(0) >= n, "seeing the routes").await;
    }
}

/// Nodes shown as up (or as this node) in a `/api/v1/cluster` view.
pub fn nodes_up(v: &Value) -> usize {
    v["nodes"].as_array().map_or(0, |a| a.iter().filter(|n| n["state"] == "up" || n["state"] == "self").count())
}
