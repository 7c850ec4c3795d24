//! Shorthands for the built-in adapters' addresses and counters, kept for the tests and
//! tools that use them; each is one lookup in the adapter registry
//! ([`Gateway::addrs`], [`Gateway::adapter_state`]). New adapters need none of these.

use std::net::SocketAddr;

use super::Gateway;
#[cfg(feature = "coap")]
use crate::adapters::CoapState;

/// The state every built-in adapter registers; missing only if the gateway was built
/// without the built-in list, which `Builder::start` never does.
#[cfg(any(feature = "mqtt-sn", feature = "coap", feature = "lorawan"))]
fn builtin<'a, T: std::any::Any + Send + Sync>(g: &'a Gateway, adapter: &str) -> &'a T {
    match g.adapter_state::<T>(adapter) {
        Some(s) => s,
        None => unreachable!("built-in adapter {adapter} always registers its state"),
    }
}

impl Gateway {
    /// The bound address of the `[[codec]]` listener named `name`.
    pub fn codec_addr(&self, name: &str) -> Option<SocketAddr> {
        self.adapters.listeners("codec").iter().find(|l| l.name == name).map(|l| l.addr)
    }

    /// Every `[[codec]]` listener's name and bound address, in config order.
    pub fn codec_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.adapters.listeners("codec").iter().map(|l| (l.name.clone(), l.addr)).collect()
    }

    /// The bound plain-TCP MQTT addresses.
    pub fn mqtt_addrs(&self) -> Vec<SocketAddr> {
        self.addrs("mqtt", "tcp")
    }

    /// The bound addresses of the MQTT listeners of one transport (`Kind::Tls`, `Kind::Ws`, ...).
    pub fn mqtt_addrs_of(&self, kind: roost_mqtt::transport::Kind) -> Vec<SocketAddr> {
        self.addrs("mqtt", kind.as_str())
    }

    pub fn mqttsn_addrs(&self) -> Vec<SocketAddr> {
        self.addrs("mqttsn", "udp")
    }

    #[cfg(feature = "mqtt-sn")]
    pub fn mqttsn_counters(&self) -> &roost_mqttsn::session::Counters {
        &builtin::<roost_mqttsn::session::Context>(self, "mqttsn").counters
    }

    pub fn coap_addrs(&self) -> Vec<SocketAddr> {
        self.addrs("coap", "udp")
    }

    #[cfg(feature = "coap")]
    pub fn coap_counters(&self) -> &roost_coap::session::Counters {
        &builtin::<CoapState>(self, "coap").coap.counters
    }

    pub fn coaps_addrs(&self) -> Vec<SocketAddr> {
        self.addrs("coap", "dtls")
    }

    #[cfg(feature = "coap")]
    /// DTLS handshake and peer counters (CoAP's and LwM2M's DTLS listeners together).
    pub fn dtls_counters(&self) -> &roost_coap::dtls::DtlsCounters {
        &builtin::<CoapState>(self, "coap").dtls.counters
    }

    pub fn lwm2m_addrs(&self) -> Vec<SocketAddr> {
        self.addrs("lwm2m", "udp")
    }

    pub fn lwm2ms_addrs(&self) -> Vec<SocketAddr> {
        self.addrs("lwm2m", "dtls")
    }

    #[cfg(feature = "lwm2m")]
    pub fn lwm2m_counters(&self) -> &roost_lwm2m::server::Counters {
        &builtin::<roost_lwm2m::server::driver::Context>(self, "lwm2m").counters
    }

    pub fn lorawan_addrs(&self) -> Vec<SocketAddr> {
        self.addrs("lorawan", "udp")
    }

    #[cfg(feature = "lorawan")]
    pub fn lorawan_counters(&self) -> &roost_lorawan::driver::Counters {
        &builtin::<roost_lorawan::driver::Context>(self, "lorawan").counters
    }
}
