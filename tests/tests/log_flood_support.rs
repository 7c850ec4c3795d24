//! Support for `log_flood`: the `roost` process with every listener on loopback port 0 and
//! its log in a file, the addresses read back from that log, an MQTT-SN device, and the
//! log and `/metrics` read back as (reason, source) counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use roost_e2e::WAIT;
use roost_e2e::roost_bin::roost_bin;
use roost_mqttsn::codec::{self, Connect, Flags, Message, ReturnCode, SnQos, TopicRef};
use tokio::net::UdpSocket;

/// Every listener of the process under test.
pub struct Listeners {
    pub mqtt: SocketAddr,
    pub tls: SocketAddr,
    pub ws: SocketAddr,
    pub http: SocketAddr,
    pub mqttsn: SocketAddr,
    pub coap: SocketAddr,
    pub coaps: SocketAddr,
    pub lwm2m: SocketAddr,
    pub lwm2ms: SocketAddr,
    pub lorawan: SocketAddr,
}

const ANY: &str = "\"127.0.0.1:0\"";

/// Starts `roost` with every listener open, at the default log level (no `RUST_LOG`), its
/// standard error in `log`; returns once the log names every address.
pub async fn start_roost(dir: &Path, log: &Path) -> (tokio::process::Child, Listeners) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("srv.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("srv.key"), cert.signing_key.serialize_pem()).unwrap();
    let d = dir.display();
    let config = format!(
        "[mqtt]\nbind = [{ANY}]\ntls_bind = [{ANY}]\nws_bind = [{ANY}]\n\
         [mqtt.tls]\ncert_file = \"{d}/srv.crt\"\nkey_file = \"{d}/srv.key\"\n\
         [mqttsn]\nbind = [{ANY}]\n\
         [coap]\nbind = [{ANY}]\ndtls_bind = [{ANY}]\n\
         [[coap.psk]]\nidentity = \"flood\"\nkey = \"flood-secret-key\"\n\
         [lorawan]\nbind = [{ANY}]\n\
         [lwm2m]\nbind = [{ANY}]\ndtls_bind = [{ANY}]\n\
         [http]\nbind = [{ANY}]\napi_keys = [\"flood-test-api-key-0123456789\"]\n\
         [storage]\nbackend = \"memory\"\ndata_dir = \"{d}/data\"\n"
    );
    let config_path = dir.join("roost.toml");
    std::fs::write(&config_path, config).unwrap();
    let stderr = std::fs::File::create(log).unwrap();
    let child = tokio::process::Command::new(roost_bin())
        .arg("--config")
        .arg(&config_path)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn roost");
    let deadline = Instant::now() + WAIT * 10;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("roost started") {
            return (child, listeners(&text));
        }
        assert!(Instant::now() < deadline, "roost did not start in time:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `addr=` of the first line holding `what` (and `also`, if given).
fn addr_of(log: &str, what: &str, also: &str) -> SocketAddr {
    log.lines()
        .filter(|l| l.contains(what) && l.contains(also))
        .find_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("addr=")).and_then(|a| a.parse().ok()))
        .unwrap_or_else(|| panic!("no address for {what} {also} in the log:\n{log}"))
}

fn listeners(log: &str) -> Listeners {
    Listeners {
        mqtt: addr_of(log, "MQTT listening", "transport=\"tcp\""),
        tls: addr_of(log, "MQTT listening", "transport=\"tls\""),
        ws: addr_of(log, "MQTT listening", "transport=\"ws\""),
        http: addr_of(log, "HTTP listening", ""),
        mqttsn: addr_of(log, "MQTT-SN listening (udp)", ""),
        coap: addr_of(log, "CoAP listening (udp)", ""),
        coaps: addr_of(log, "CoAP listening (dtls)", ""),
        lwm2m: addr_of(log, "LwM2M listening (udp)", ""),
        lwm2ms: addr_of(log, "LwM2M listening (dtls)", ""),
        lorawan: addr_of(log, "LoRaWAN packet forwarders listening", ""),
    }
}

/// An MQTT-SN device on 127.0.0.1, subscribed at QoS 1 before the flood.
pub struct SnDevice {
    sock: UdpSocket,
    gw: SocketAddr,
}

impl SnDevice {
    async fn send(&self, m: &Message) {
        self.sock.send_to(&codec::to_bytes(m).unwrap(), self.gw).await.unwrap();
    }

    async fn recv(&self, wait: Duration) -> Option<Message> {
        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf)).await.ok()?.unwrap();
        Some(codec::decode(&Bytes::copy_from_slice(&buf[..n])).unwrap())
    }

    pub async fn connect(gw: SocketAddr, id: &str, filter: &str) -> SnDevice {
        let sn = SnDevice { sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(), gw };
        let connect =
            Connect { flags: Flags { clean_session: true, ..Flags::default() }, duration: 900, client_id: id.into() };
        sn.send(&Message::Connect(connect)).await;
        assert_eq!(sn.recv(WAIT).await, Some(Message::ConnAck { rc: ReturnCode::Accepted }));
        let flags = Flags { qos: SnQos::AtLeastOnce, ..Flags::default() };
        sn.send(&Message::Subscribe { flags, msg_id: codec::MsgId(1), topic: TopicRef::Name(filter.into()) }).await;
        match sn.recv(WAIT).await {
            Some(Message::SubAck { rc: ReturnCode::Accepted, .. }) => sn,
            other => panic!("SUBACK expected, got {other:?}"),
        }
    }

    /// Acknowledges and records every PUBLISH (answering REGISTERs) until `stop`, then until
    /// 3 s pass without one; returns the payloads.
    pub async fn receive_until(self, stop: Arc<AtomicBool>) -> BTreeSet<String> {
        let mut got = BTreeSet::new();
        let mut quiet_since = None;
        loop {
            match self.recv(Duration::from_millis(200)).await {
                Some(Message::Register { topic_id, msg_id, .. }) => {
                    self.send(&Message::RegAck { topic_id, msg_id, rc: ReturnCode::Accepted }).await;
                }
                Some(Message::Publish(p)) => {
                    quiet_since = None;
                    if p.flags.qos == SnQos::AtLeastOnce {
                        let ack = Message::PubAck { topic_id: p.topic_id, msg_id: p.msg_id, rc: ReturnCode::Accepted };
                        self.send(&ack).await;
                    }
                    got.insert(String::from_utf8_lossy(&p.data).into_owned());
                }
                Some(_) | None => {
                    if stop.load(Relaxed) {
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(3) {
                            return got;
                        }
                    }
                }
            }
        }
    }
}

/// Log lines of a stretch of log, by reason and by (reason, source).
#[derive(Default)]
pub struct LogCounts<'a> {
    pub total: u64,
    /// reason -> (lines, sum of their `suppressed`)
    pub by_reason: HashMap<&'a str, (u64, u64)>,
    pub by_source: HashMap<(&'a str, &'a str), u32>,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    let value = rest.split_whitespace().next()?;
    Some(value.trim_matches('"'))
}

pub fn parse_log(log: &str) -> LogCounts<'_> {
    let mut c = LogCounts::default();
    for line in log.lines() {
        c.total += 1;
        let Some(reason) = field(line, "reason") else { continue };
        let source = field(line, "source").unwrap_or("-");
        let suppressed: u64 = field(line, "suppressed").and_then(|s| s.parse().ok()).unwrap_or(0);
        let r = c.by_reason.entry(reason).or_default();
        r.0 += 1;
        r.1 += suppressed;
        *c.by_source.entry((reason, source)).or_default() += 1;
    }
    c
}

/// `roost_peer_events_total` by reason.
pub fn peer_events(scrape: &prometheus_parse::Scrape) -> BTreeMap<String, u64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "roost_peer_events_total")
        .filter_map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            Some((s.labels.get("reason")?.to_string(), v as u64))
        })
        .collect()
}
