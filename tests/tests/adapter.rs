//! The adapter contract, shown by a protocol the gateway does not know: a UDP echo adapter
//! defined in this test binary and registered with one line (`Builder::adapter`). It gets
//! its `[adapter.echo]` section, its listener and its metrics in `/metrics`, `$SYS` and the
//! API with no other wiring. Also: every family every built-in adapter declares is scraped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use roost_adapter::metrics::load;
use roost_adapter::{Adapter, Context, Error, Family, Listener, Running};
use roost_core::{Message, QoS};
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};
use serde::Deserialize;
use tokio::net::UdpSocket;

/// `[adapter.echo]`: unknown keys are errors, as in every Roost section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoConfig {
    bind: SocketAddr,
    /// Every datagram is also published here.
    topic: String,
}

#[derive(Default)]
struct EchoCounters {
    echoed: AtomicU64,
    bytes: AtomicU64,
}

struct EchoAdapter {
    config: EchoConfig,
    socket: Option<UdpSocket>,
}

#[async_trait::async_trait]
impl Adapter for EchoAdapter {
    fn name(&self) -> &str {
        "echo"
    }

    async fn bind(&mut self) -> Result<(), Error> {
        self.socket = Some(UdpSocket::bind(self.config.bind).await?);
        Ok(())
    }

    async fn start(self: Box<Self>, ctx: Context) -> Result<Running, Error> {
        let socket = self.socket.ok_or("start before bind")?;
        let addr = socket.local_addr()?;
        let counters = Arc::new(EchoCounters::default());
        let (c, topic) = (counters.clone(), self.config.topic);
        ctx.tracker.spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let (n, peer) = tokio::select! {
                    _ = ctx.shutdown.cancelled() => return,
                    r = socket.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
                };
                if socket.send_to(&buf[..n], peer).await.is_ok() {
                    c.echoed.fetch_add(1, Relaxed);
                    c.bytes.fetch_add(n as u64, Relaxed);
                }
                ctx.broker.publish(Message::new(topic.clone(), buf[..n].to_vec(), QoS::AtMostOnce, false));
            }
        });
        let (a, b) = (counters.clone(), counters.clone());
        let metrics = vec![
            Family::counters("echo_datagrams", "Datagrams by outcome", "outcome", move || {
                vec![("echoed", load(&a.echoed))]
            }),
            Family::counter("echo_bytes", "Bytes echoed", move || load(&b.bytes)),
        ];
        Ok(Running { listeners: vec![Listener::new("echo", "udp", addr)], metrics, ..Default::default() })
    }
}

fn echo_factory() -> Box<dyn roost_adapter::Factory> {
    roost_adapter::factory("echo", |config: EchoConfig| Ok(EchoAdapter { config, socket: None }))
}

const CONFIG: &str = "[node]\nname = \"n1\"\nsys_interval = \"1s\"\n\
                      [adapter.echo]\nbind = \"127.0.0.1:0\"\ntopic = \"echo/in\"\n";

#[tokio::test]
async fn a_registered_adapter_gets_config_listener_and_metrics_everywhere() {
    let broker = TestBroker::start_custom(CONFIG, |b| b.adapter(echo_factory())).await;
    let addr = broker.gateway().addrs("echo", "udp")[0];
    let mut sub = Client5::connect(broker.addr(), "watcher").await;
    sub.subscribe("echo/in", mqtt5::qos(0)).await;

    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"hello", addr).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(WAIT, udp.recv_from(&mut buf)).await.expect("echo in time").unwrap();
    assert_eq!(&buf[..n], b"hello");
    let p = sub.expect_publish(WAIT).await;
    assert_eq!(&p.payload[..], b"hello", "the configured topic carries the datagram");

    // /metrics: the declared families, with no code in the HTTP listener.
    let scrape = roost_e2e::metrics::scrape(broker.http_addr()).await;
    assert_eq!(roost_e2e::metrics::value(&scrape, "roost_echo_datagrams_total", Some(("outcome", "echoed"))), 1.0);
    assert_eq!(roost_e2e::metrics::value(&scrape, "roost_echo_bytes_total", None), 5.0);

    // The API: listener and metrics.
    let (status, body) = broker.api().get("/api/v1/adapters/echo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["listeners"][0]["addr"], addr.to_string());
    assert_eq!(body["listeners"][0]["transport"], "udp");
    let family = body["metrics"].as_array().unwrap().iter().find(|f| f["name"] == "echo_datagrams").unwrap().clone();
    assert_eq!(family["kind"], "counter");
    assert_eq!(family["samples"][0]["labels"]["outcome"], "echoed");
    assert_eq!(family["samples"][0]["value"], 1);
    let (_, all) = broker.api().get("/api/v1/adapters").await;
    let names: Vec<&str> = all["data"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(names.contains(&"echo") && names.contains(&"mqttsn"), "{names:?}");

    // $SYS: retained, refreshed every tick.
    sub.subscribe("$SYS/brokers/n1/adapters/echo/#", mqtt5::qos(0)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut echoed, mut listeners) = (None, None);
    while tokio::time::Instant::now() < deadline && (echoed.as_deref() != Some("1") || listeners.is_none()) {
        let Some(p) = sub.recv_publish(WAIT).await else { break };
        let body = String::from_utf8_lossy(&p.payload).into_owned();
        match String::from_utf8_lossy(&p.topic).as_ref() {
            "$SYS/brokers/n1/adapters/echo/echo_datagrams/echoed" => echoed = Some(body),
            "$SYS/brokers/n1/adapters/echo/listeners" => listeners = Some(body),
            _ => {}
        }
    }
    assert_eq!(echoed.as_deref(), Some("1"));
    assert_eq!(listeners, Some(format!("udp {addr}")));
    broker.stop().await;
}

#[tokio::test]
async fn a_section_no_adapter_claims_is_an_error() {
    let mut settings = roost::config::parse("[adapter.nope]\nx = 1\n").unwrap();
    settings.http_bind.clear();
    settings.storage.disk = false;
    let err = match roost::gateway::Gateway::builder(settings).adapter(echo_factory()).start().await {
        Ok(_) => panic!("started with an unclaimed [adapter.nope]"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("adapter.nope") && err.contains("echo"), "{err}");
}

#[tokio::test]
async fn a_bad_section_names_the_adapter_and_key() {
    let config = "[adapter.echo]\nbind = \"127.0.0.1:0\"\ntopic = \"t\"\ntypo = 1\n";
    let mut settings = roost::config::parse(config).unwrap();
    settings.http_bind.clear();
    settings.storage.disk = false;
    let err = match roost::gateway::Gateway::builder(settings).adapter(echo_factory()).start().await {
        Ok(_) => panic!("started with an unknown key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("adapter.echo") && err.contains("typo"), "{err}");
}

/// Every family every running adapter declares (the built-ins and the echo adapter) is in
/// `/metrics`, under its name (`_total` for counters), with one sample per declared value.
#[tokio::test]
async fn every_declared_family_of_every_adapter_is_scraped() {
    let broker = TestBroker::start_custom(CONFIG, |b| b.adapter(echo_factory())).await;
    // A malformed MQTT-SN datagram, so an MQTT-SN counter is non-zero too.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(&[0x05, 0x17], broker.mqttsn_addr()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker.mqttsn_counters().malformed.load(Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "malformed datagram not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let scrape = roost_e2e::metrics::scrape(broker.http_addr()).await;
    let registry = broker.gateway().adapters();
    let adapters: Vec<&str> = registry.entries().iter().map(|e| e.name.as_str()).collect();
    for expected in ["mqtt", "codec", "mqttsn", "coap", "lorawan", "lwm2m", "echo"] {
        assert!(adapters.contains(&expected), "{expected} not running: {adapters:?}");
    }
    let mut checked = 0;
    for (adapter, family) in registry.families() {
        let metric = match family.kind {
            roost_adapter::Kind::Counter => format!("roost_{}_total", family.name),
            roost_adapter::Kind::Gauge => format!("roost_{}", family.name),
        };
        let scraped = scrape.samples.iter().filter(|s| s.metric == metric).count();
        assert_eq!(scraped, family.samples().len(), "{adapter}: {metric} in /metrics");
        for label in &family.labels {
            assert!(
                scrape.samples.iter().filter(|s| s.metric == metric).all(|s| s.labels.get(label).is_some()),
                "{adapter}: {metric} lacks label {label}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} families declared");
    let malformed = roost_e2e::metrics::value(&scrape, "roost_mqttsn_events_total", Some(("event", "malformed")));
    assert_eq!(malformed, 1.0, "MQTT-SN's own counters reach /metrics");
    broker.stop().await;
}
