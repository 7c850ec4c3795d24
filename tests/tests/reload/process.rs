//! The `roost` process under test (a real process: the test sends it SIGHUP) with its log
//! kept for the reload outcome, and TLS clients speaking MQTT 3.1.1 by hand over rustls so
//! each can tell which certificate it got and prove with a PINGREQ that it is still
//! connected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use roost_e2e::WAIT;
use roost_e2e::metrics::scrape;
use roost_e2e::roost_bin::roost_bin;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::client::TlsStream;

pub struct Roost {
    child: tokio::process::Child,
    config: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    pub mqtt: SocketAddr,
    pub tls: SocketAddr,
    pub dtls: SocketAddr,
    pub http: SocketAddr,
}

/// The address after `addr=` in a log line.
fn addr_in(line: &str, key: &str) -> Option<SocketAddr> {
    let rest = line.split(key).nth(1)?;
    let end = rest.find([' ', ',', ']']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Roost {
    pub async fn spawn(config: &Path) -> Roost {
        let mut child = tokio::process::Command::new(roost_bin())
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn roost");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().push(line);
            }
        });
        let mut roost = Roost { child, config: config.into(), log, mqtt: any(), tls: any(), dtls: any(), http: any() };
        let started = roost.wait_log(0, "roost started").await;
        roost.mqtt = addr_in(&started, "mqtt=[").expect("mqtt address");
        roost.http = addr_in(&started, "http=[").expect("http address");
        let lines = roost.log.lock().clone();
        let find = |what: &str| lines.iter().find(|l| l.contains(what)).and_then(|l| addr_in(l, "addr="));
        let missing = |what: &str| panic!("no {what} listener in the log:\n{}", lines.join("\n"));
        roost.tls = find("transport=\"tls\"").unwrap_or_else(|| missing("TLS"));
        roost.dtls = find("CoAP listening (dtls)").unwrap_or_else(|| missing("DTLS"));
        roost
    }

    pub fn log_len(&self) -> usize {
        self.log.lock().len()
    }

    /// The first log line from `from` on containing `needle` (bounded wait).
    pub async fn wait_log(&self, from: usize, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT * 10;
        loop {
            if let Some(l) = self.log.lock().iter().skip(from).find(|l| l.contains(needle)) {
                return l.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no log line with {needle:?}:\n{}", self.log.lock().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn sighup(&self) {
        let pid = self.child.id().expect("roost is running");
        let status = tokio::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().await.unwrap();
        assert!(status.success(), "kill -HUP {pid}");
    }

    /// `roost ctl reload` against this gateway: (exit status 0, stdout + stderr).
    pub async fn ctl_reload(&self) -> (bool, String) {
        let url = format!("http://{}", self.http);
        let out = tokio::process::Command::new(roost_bin())
            .arg("--config")
            .arg(&self.config)
            .args(["ctl", "--url", &url, "--key", "reload-test-key-0001", "reload"])
            .output();
        let out = tokio::time::timeout(WAIT * 5, out).await.expect("roost ctl in time").unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// `roost_connections{protocol="mqtt"}`.
    pub async fn connected_mqtt(&self) -> f64 {
        roost_e2e::metrics::value(&scrape(self.http).await, "roost_connections", Some(("protocol", "mqtt")))
    }

    /// Completed DTLS handshakes, from `/metrics`.
    pub async fn dtls_handshakes_ok(&self) -> f64 {
        roost_e2e::metrics::value(&scrape(self.http).await, "roost_dtls_handshakes_total", Some(("result", "ok")))
    }
}

fn any() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// An MQTT 3.1.1 client over TLS; `server_cert` is the certificate the server presented.
pub struct TlsClient {
    stream: TlsStream<tokio::net::TcpStream>,
    id: String,
    pub server_cert: Vec<u8>,
}

impl TlsClient {
    pub async fn connect(addr: SocketAddr, roots: &Arc<rustls::RootCertStore>, id: &str) -> TlsClient {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap()
        };
        let mut stream = tokio::time::timeout(WAIT * 5, connect).await.expect("TLS handshake in time");
        let server_cert = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        // CONNECT, MQTT 3.1.1, clean session, no keep alive (the test decides when to ping).
        let mut packet = vec![0x10, (12 + id.len()) as u8, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0];
        packet.push(id.len() as u8);
        packet.extend_from_slice(id.as_bytes());
        stream.write_all(&packet).await.unwrap();
        let mut connack = [0u8; 4];
        tokio::time::timeout(WAIT * 5, stream.read_exact(&mut connack)).await.expect("CONNACK in time").unwrap();
        assert_eq!(connack, [0x20, 2, 0, 0], "{id}: CONNACK accepted");
        TlsClient { stream, id: id.into(), server_cert }
    }

    /// Publishes QoS 0 on `fleet/{id}` every 100 ms until stopped.
    pub fn publish_until_stopped(mut self) -> Traffic {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let topic = format!("fleet/{}", self.id);
            let mut packet = vec![0x30, (2 + topic.len() + 4) as u8, 0, topic.len() as u8];
            packet.extend_from_slice(topic.as_bytes());
            packet.extend_from_slice(b"tick");
            loop {
                if self.stream.write_all(&packet).await.is_err() {
                    return false;
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            // PINGREQ -> PINGRESP: the connection is still up.
            if self.stream.write_all(&[0xC0, 0]).await.is_err() {
                return false;
            }
            let mut resp = [0u8; 2];
            matches!(tokio::time::timeout(WAIT, self.stream.read_exact(&mut resp)).await, Ok(Ok(_)) if resp == [0xD0, 0])
        });
        Traffic { stop, task }
    }
}

pub struct Traffic {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<bool>,
}

impl Traffic {
    /// Stops publishing; whether the connection then answered a PINGREQ.
    pub async fn stop_and_ping(self) -> bool {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(false)
    }
}
