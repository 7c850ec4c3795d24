//! The protocol adapters that ship with Roost, each built from its validated config section
//! and started by the gateway's one loop over [`roost_adapter::Adapter`]s. This list is the
//! only place that names them; a third-party adapter registers with
//! `gateway::Builder::adapter` instead (see `docs/adding-a-protocol.md`).
//!
//! They live here rather than in their protocol crates because their config validation
//! (`config/`) and the LoRaWAN/LwM2M API handlers (`api/`) live in this crate.

mod coap;
mod codec;
mod lorawan;
mod lwm2m;
mod mqtt;
mod mqttsn;

pub use coap::CoapState;

use std::sync::Arc;

use roost_adapter::Adapter;
use roost_codec::Registry;

use crate::config::Settings;

/// What of the built-in adapters a reload changes: the TLS acceptor, the DTLS backend.
#[derive(Default)]
pub struct Live {
    pub tls: Option<roost_mqtt::transport::TlsSwitch>,
    pub dtls: Option<Arc<crate::reload::switch::Switch<dyn roost_coap::dtls::Backend>>>,
}

/// Every built-in adapter for `settings`, in start order, and their reloadable parts.
/// Fails on a config error found before binding (an unknown codec, unreadable TLS or DTLS
/// credentials).
pub fn builtin(settings: &Settings, codecs: &Registry) -> anyhow::Result<(Vec<Box<dyn Adapter>>, Live)> {
    let dtls = Arc::new(coap::SharedDtls::new(settings)?);
    let mqtt = mqtt::MqttAdapter::new(settings)?;
    let live = Live { tls: mqtt.tls(), dtls: dtls.switch.clone() };
    let adapters: Vec<Box<dyn Adapter>> = vec![
        Box::new(mqtt),
        Box::new(codec::CodecAdapter::new(settings, codecs)?),
        Box::new(mqttsn::MqttSnAdapter::new(settings.mqttsn.clone())),
        Box::new(coap::CoapAdapter::new(settings.coap.clone(), dtls.clone())),
        Box::new(lorawan::LorawanAdapter::new(settings.lorawan.clone())),
        Box::new(lwm2m::Lwm2mAdapter::new(settings, dtls)?),
    ];
    Ok((adapters, live))
}

/// Formats a bind error with what was being started (the message tests and users see).
fn bind_error(what: &str, e: std::io::Error) -> roost_adapter::Error {
    format!("starting the {what}: {e}").into()
}
