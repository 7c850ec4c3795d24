//! The broker under test: the Roost gateway, started in-process on port 0 by each test with
//! its own configuration, exactly as `roost --config` would start it. Everything that knows
//! which broker runs lives here. (The suite was first proven against Debian's mosquitto as a
//! stand-in; the tests where the spec and mosquitto disagree assert the spec.)

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use roost::gateway::Gateway;
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
        let mut settings = match roost::config::parse(config_toml) {
            Ok(s) => s,
            Err(e) => panic!("test config rejected: {e}\n{config_toml}"),
        };
        settings.mqtt.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        settings.mqttsn.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        let gateway = match roost::gateway::start(settings).await {
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

    /// The MQTT-SN (UDP) socket address.
    pub fn mqttsn_addr(&self) -> SocketAddr {
        self.gateway.mqttsn_addrs()[0]
    }

    /// The MQTT-SN adapter's counters.
    pub fn mqttsn_counters(&self) -> &roost_mqttsn::session::Counters {
        self.gateway.mqttsn_counters()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Messages dropped because a session queue was full.
    pub fn queue_drops(&self) -> u64 {
        self.gateway.broker().metrics().snapshot().dropped(DropReason::QueueFull)
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
