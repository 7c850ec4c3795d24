//! The broker under test: the Roost gateway, started in-process on port 0 by each test with
//! its own configuration, exactly as `roost --config` would start it. Everything that knows
//! which broker runs lives here. (The suite was first proven against Debian's mosquitto as a
//! stand-in; the tests where the spec and mosquitto disagree assert the spec.)

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use roost::gateway::{Builder, Gateway};
use roost_core::metrics::DropReason;

/// How long a graceful stop may take.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One gateway, private to one test.
pub struct TestBroker {
    addr: SocketAddr,
    gateway: Gateway,
}

impl TestBroker {
    /// A gateway with the default configuration.
    pub async fn start() -> TestBroker {
        TestBroker::start_with("").await
    }

    /// A gateway configured by Roost config text (TOML), e.g.
    /// `"[limits]\nmax_queued_messages = 10\n"`. The MQTT listener is always 127.0.0.1:0,
    /// and so is the MQTT-SN socket.
    pub async fn start_with(config_toml: &str) -> TestBroker {
        TestBroker::start_custom(config_toml, |builder| builder).await
    }

    /// A gateway configured by `config_toml` and then by `customize` (custom codecs,
    /// authenticator, authorizer). The MQTT listener is always 127.0.0.1:0, and so is
    /// every `[[codec]]` listener (whatever its `bind` says); see [`TestBroker::codec_addr`].
    pub async fn start_custom(config_toml: &str, customize: impl FnOnce(Builder) -> Builder) -> TestBroker {
        let mut settings = match roost::config::parse(config_toml) {
            Ok(s) => s,
            Err(e) => panic!("test config rejected: {e}\n{config_toml}"),
        };
        settings.mqtt.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        // TLS, WebSocket and WSS listeners stay off unless the test's config opens them;
        // then each is one 127.0.0.1:0 listener (see `TestBroker::mqtt_addr_of`).
        for list in [&mut settings.mqtt.tls_bind, &mut settings.mqtt.ws_bind, &mut settings.mqtt.wss_bind] {
            if !list.is_empty() {
                *list = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
            }
        }
        // Tests share a working directory: unless a test configures storage itself, keep its
        // state in memory rather than in ./data.
        if !config_toml.contains("[storage]") {
            settings.storage.disk = false;
        }
        for codec in &mut settings.codecs {
            codec.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        }
        settings.mqttsn.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        settings.coap.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        settings.lwm2m.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        if !settings.lwm2m.dtls_bind.is_empty() {
            settings.lwm2m.dtls_bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        }
        if !settings.coap.dtls.bind.is_empty() {
            settings.coap.dtls.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        }
        settings.lorawan.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        settings.http_bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        let gateway = match customize(Gateway::builder(settings)).start().await {
            Ok(g) => g,
            Err(e) => panic!("gateway did not start: {e:#}"),
        };
        let addr = gateway.mqtt_addrs()[0];
        TestBroker { addr, gateway }
    }

    /// The MQTT (TCP) listener address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the `[[codec]]` listener named `name`.
    pub fn codec_addr(&self, name: &str) -> SocketAddr {
        match self.gateway.codec_addr(name) {
            Some(addr) => addr,
            None => panic!("no [[codec]] listener named {name:?}"),
        }
    }

    /// The address of the MQTT listener of `kind` (TLS, WebSocket, WSS) the config opened.
    pub fn mqtt_addr_of(&self, kind: roost_mqtt::transport::Kind) -> SocketAddr {
        match self.gateway.mqtt_addrs_of(kind).first() {
            Some(a) => *a,
            None => panic!("no MQTT {} listener; the config must open one", kind.as_str()),
        }
    }

    /// The HTTP (`/metrics`) address.
    pub fn http_addr(&self) -> SocketAddr {
        self.gateway.http_addrs()[0]
    }

    /// A key the management API accepts.
    pub fn api_key(&self) -> &str {
        self.gateway.api_key().unwrap_or_else(|| panic!("no HTTP listener, so no API key"))
    }

    /// A management API client with that key.
    pub fn api(&self) -> crate::api::Api {
        crate::api::Api::new(self.http_addr(), self.api_key())
    }

    /// The `[[webhook]]`s and their counters.
    pub fn webhooks(&self) -> Vec<roost::webhook::Webhook> {
        self.gateway.webhooks()
    }

    /// The MQTT-SN (UDP) socket address.
    pub fn mqttsn_addr(&self) -> SocketAddr {
        self.gateway.mqttsn_addrs()[0]
    }

    /// The MQTT-SN adapter's counters.
    pub fn mqttsn_counters(&self) -> &roost_mqttsn::session::Counters {
        self.gateway.mqttsn_counters()
    }

    /// The CoAP (UDP) socket address.
    pub fn coap_addr(&self) -> SocketAddr {
        self.gateway.coap_addrs()[0]
    }

    /// The CoAP adapter's counters.
    pub fn coap_counters(&self) -> &roost_coap::session::Counters {
        self.gateway.coap_counters()
    }

    /// The LwM2M registration-interface (UDP) address.
    pub fn lwm2m_addr(&self) -> SocketAddr {
        self.gateway.lwm2m_addrs()[0]
    }

    /// The LwM2M adapter's counters.
    pub fn lwm2m_counters(&self) -> &roost_lwm2m::server::Counters {
        self.gateway.lwm2m_counters()
    }

    /// The LwM2M-over-DTLS socket address (configure `[lwm2m] dtls_bind` to have one).
    pub fn lwm2ms_addr(&self) -> SocketAddr {
        self.gateway.lwm2ms_addrs()[0]
    }

    /// The CoAP-over-DTLS socket address (configure `[coap] dtls_bind` to have one).
    pub fn coaps_addr(&self) -> SocketAddr {
        self.gateway.coaps_addrs()[0]
    }

    /// DTLS handshake and peer counters.
    pub fn dtls_counters(&self) -> &roost_coap::dtls::DtlsCounters {
        self.gateway.dtls_counters()
    }

    /// The LoRaWAN packet-forwarder (UDP) socket address.
    pub fn lorawan_addr(&self) -> SocketAddr {
        self.gateway.lorawan_addrs()[0]
    }

    /// The LoRaWAN adapter's counters.
    pub fn lorawan_counters(&self) -> &roost_lorawan::driver::Counters {
        self.gateway.lorawan_counters()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Messages dropped because a session queue was full.
    pub fn queue_drops(&self) -> u64 {
        self.gateway.broker().metrics().snapshot().dropped(DropReason::QueueFull)
    }

    /// The state of the `[[bridge]]` named `name`.
    pub fn bridge_status(&self, name: &str) -> roost_bridge::BridgeStatus {
        match self.gateway.bridge_status(name) {
            Some(s) => s,
            None => panic!("no bridge named {name:?}"),
        }
    }

    /// Waits (bounded) until the bridge `name` is connected upstream.
    pub async fn wait_bridge_up(&self, name: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.bridge_status(name).connected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "bridge {name} not connected within {within:?}: {:?}",
                self.bridge_status(name)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The gateway: its adapter registry, addresses and state.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The broker itself, for assertions on its state and metrics.
    pub fn broker(&self) -> &roost_core::Broker {
        self.gateway.broker()
    }

    /// Graceful shutdown, bounded.
    pub async fn stop(self) {
        self.gateway.shutdown(STOP_GRACE).await;
    }
}
