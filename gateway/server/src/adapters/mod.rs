//! The protocol adapters that ship with Roost, each built from its validated config section
//! and started by the gateway's one loop over [`roost_adapter::Adapter`]s. This list is the
//! only place that names them; a third-party adapter registers with
//! `gateway::Builder::adapter` instead (see `docs/adding-a-protocol.md`).
//!
//! They live here rather than in their protocol crates because their config validation
//! (`config/`) and the LoRaWAN/LwM2M API handlers (`api/`) live in this crate.

#[cfg(feature = "coap")]
mod coap;
#[cfg(feature = "codec")]
mod codec;
#[cfg(feature = "lorawan")]
mod lorawan;
#[cfg(feature = "lwm2m")]
mod lwm2m;
mod mqtt;
#[cfg(feature = "mqtt-sn")]
mod mqttsn;

#[cfg(feature = "coap")]
pub use coap::CoapState;

use std::sync::Arc;

use roost_adapter::Adapter;
use roost_codec::Registry;

use crate::config::Settings;

/// What of the built-in adapters a reload changes: the TLS acceptor, the MQTT rate limits,
/// the DTLS backend.
#[derive(Default)]
pub struct Live {
    pub tls: Option<roost_mqtt::transport::TlsSwitch>,
    /// The MQTT listeners' rate limits.
    pub mqtt_limits: Arc<roost_mqtt::settings::LiveLimits>,
    #[cfg(feature = "coap")]
    pub dtls: Option<Arc<crate::reload::switch::Switch<dyn roost_coap::dtls::Backend>>>,
}

/// Every built-in adapter for `settings`, in start order, and their reloadable parts.
/// Fails on a config error found before binding (an unknown codec, unreadable TLS or DTLS
/// credentials). A protocol left out of the build (its cargo feature off) is not started,
/// and said so in the log if its section has listeners.
pub fn builtin(settings: &Settings, codecs: &Registry) -> anyhow::Result<(Vec<Box<dyn Adapter>>, Live)> {
    let mqtt = mqtt::MqttAdapter::new(settings)?;
    #[allow(clippy::needless_update)] // `dtls` is a field only with the `coap` feature
    let mut live = Live { tls: mqtt.tls(), mqtt_limits: mqtt.limits(), ..Default::default() };
    #[allow(unused_mut)] // MQTT alone in an MQTT-only build
    let mut adapters: Vec<Box<dyn Adapter>> = vec![Box::new(mqtt)];
    #[cfg(feature = "codec")]
    adapters.push(Box::new(codec::CodecAdapter::new(settings, codecs)?));
    #[cfg(not(feature = "codec"))]
    left_out("codec", "[[codec]]", !settings.codecs.is_empty());
    #[cfg(feature = "mqtt-sn")]
    adapters.push(Box::new(mqttsn::MqttSnAdapter::new(settings.mqttsn.clone())));
    #[cfg(not(feature = "mqtt-sn"))]
    left_out("mqtt-sn", "[mqttsn]", !settings.mqttsn.bind.is_empty());
    #[cfg(feature = "coap")]
    {
        let dtls = Arc::new(coap::SharedDtls::new(settings)?);
        live.dtls = dtls.switch.clone();
        adapters.push(Box::new(coap::CoapAdapter::new(settings.coap.clone(), dtls.clone())));
        #[cfg(feature = "lwm2m")]
        adapters.push(Box::new(lwm2m::Lwm2mAdapter::new(settings, dtls)?));
    }
    #[cfg(not(feature = "coap"))]
    left_out("coap", "[coap]", !settings.coap.bind.is_empty() || !settings.coap.dtls.bind.is_empty());
    #[cfg(not(feature = "lwm2m"))]
    left_out("lwm2m", "[lwm2m]", !settings.lwm2m.bind.is_empty() || !settings.lwm2m.dtls_bind.is_empty());
    #[cfg(feature = "lorawan")]
    adapters.push(Box::new(lorawan::LorawanAdapter::new(settings.lorawan.clone())));
    #[cfg(not(feature = "lorawan"))]
    left_out("lorawan", "[lorawan]", !settings.lorawan.bind.is_empty());
    // Unused in builds without codecs or CoAP.
    let _ = (&mut live, codecs);
    Ok((adapters, live))
}

/// A protocol this build does not have: its listeners are not opened (logged, not an error,
/// so the default configuration runs on every profile).
#[allow(dead_code)]
fn left_out(feature: &str, section: &str, configured: bool) {
    if configured {
        tracing::warn!(
            section,
            feature,
            "protocol not in this build (cargo feature off): its listeners are not opened"
        );
    }
}

/// Formats a bind error with what was being started (the message tests and users see).
fn bind_error(what: &str, e: std::io::Error) -> roost_adapter::Error {
    format!("starting the {what}: {e}").into()
}
