//! `[lwm2m]`: the LwM2M server gateway, as read and as validated.

use roost_coap::dtls::PskEntry;
use roost_coap::settings::Transmission;
use roost_lwm2m::server::settings::{
    AutoObserve, BootstrapDevice, BootstrapSettings, Lwm2mSettings, Translators, UpdatePublish,
};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::ConfigDuration;
use super::schema::Int;
use super::validate::{at_least, bind_addrs, in_range, invalid, positive};

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct Lwm2mSection {
    pub bind: super::schema::AddrList,
    pub dtls_bind: super::schema::AddrList,
    pub recv_buffer: Int,
    pub lifetime_min: ConfigDuration,
    pub lifetime_max: ConfigDuration,
    pub qmode_time_window: ConfigDuration,
    pub max_queued: Int,
    /// `"off"`, `"all"` (every object instance registered), or paths separated by commas.
    pub auto_observe: String,
    /// `"contains_object_list"` or `"always"`.
    pub update_msg_publish_condition: String,
    pub mountpoint: String,
    /// A directory of extra OMA object XMLs (empty: the built-in objects only).
    pub xml_dir: String,
    pub max_devices: Int,
    pub ack_timeout: ConfigDuration,
    pub max_retransmit: Int,
    /// Request payloads larger than this go in Block1 blocks of this size.
    pub block_size: Int,
    /// Formats reads and observes ask for, by preference, among those a device announced.
    pub content_formats: Vec<String>,
    pub translators: TranslatorsSection,
    pub bootstrap: BootstrapSection,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct BootstrapSection {
    pub enable: bool,
    pub server_uri: String,
    pub lifetime: ConfigDuration,
    pub psk_identity: String,
    pub psk_key: String,
    pub only_listed: bool,
    pub device: Vec<BootstrapDeviceSection>,
}

/// One `[[lwm2m.bootstrap.device]]`: an endpoint's own PSK.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table with `endpoint`, `psk_identity` and `psk_key`")]
pub(super) struct BootstrapDeviceSection {
    pub endpoint: String,
    pub psk_identity: String,
    pub psk_key: String,
}

impl Default for BootstrapSection {
    fn default() -> Self {
        BootstrapSection {
            enable: false,
            server_uri: "coap://127.0.0.1:5783".into(),
            lifetime: ConfigDuration(std::time::Duration::from_secs(86_400)),
            psk_identity: String::new(),
            psk_key: String::new(),
            only_listed: false,
            device: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct TranslatorsSection {
    pub command: String,
    pub response: String,
    pub notify: String,
    pub register: String,
    pub update: String,
}

impl Default for TranslatorsSection {
    fn default() -> Self {
        let t = Translators::default();
        TranslatorsSection {
            command: t.command,
            response: t.response,
            notify: t.notify,
            register: t.register,
            update: t.update,
        }
    }
}

impl Default for Lwm2mSection {
    fn default() -> Self {
        let s = Lwm2mSettings::default();
        Lwm2mSection {
            bind: super::schema::AddrList(s.bind.iter().map(|a| a.to_string()).collect()),
            dtls_bind: super::schema::AddrList(s.dtls_bind.iter().map(|a| a.to_string()).collect()),
            recv_buffer: Int::from(s.recv_buffer),
            lifetime_min: ConfigDuration(s.lifetime_min),
            lifetime_max: ConfigDuration(s.lifetime_max),
            qmode_time_window: ConfigDuration(s.qmode_time_window),
            max_queued: Int::from(s.max_queued),
            auto_observe: "off".into(),
            update_msg_publish_condition: "contains_object_list".into(),
            mountpoint: s.mountpoint,
            xml_dir: String::new(),
            max_devices: Int::from(s.max_devices),
            ack_timeout: ConfigDuration(s.transmission.ack_timeout),
            max_retransmit: Int::from(s.transmission.max_retransmit),
            block_size: Int::from(s.block_size),
            content_formats: ["senml-cbor", "senml-json", "tlv", "lwm2m-json"].map(String::from).to_vec(),
            translators: TranslatorsSection::default(),
            bootstrap: BootstrapSection::default(),
        }
    }
}

fn topic(key: &str, t: String, filter: bool) -> Result<String, ConfigError> {
    if t.is_empty() || (!filter && t.contains(['+', '#'])) {
        return Err(invalid(key, "must be a non-empty topic without wildcards"));
    }
    Ok(t)
}

pub(super) fn lwm2m_settings(c: Lwm2mSection) -> Result<Lwm2mSettings, ConfigError> {
    let auto_observe = auto_observe(&c.auto_observe)?;
    let update_msg_publish_condition = match c.update_msg_publish_condition.as_str() {
        "always" => UpdatePublish::Always,
        "contains_object_list" => UpdatePublish::ContainsObjectList,
        other => {
            return Err(invalid(
                "lwm2m.update_msg_publish_condition",
                format!("{other:?} is not \"always\" or \"contains_object_list\""),
            ));
        }
    };
    if c.mountpoint.contains(['+', '#']) {
        return Err(invalid("lwm2m.mountpoint", "must not contain '+' or '#'"));
    }
    let lifetime_min = positive("lwm2m.lifetime_min", c.lifetime_min.0)?;
    let lifetime_max = positive("lwm2m.lifetime_max", c.lifetime_max.0)?;
    if lifetime_min > lifetime_max {
        return Err(invalid("lwm2m.lifetime_min", "must not exceed lifetime_max"));
    }
    let bootstrap = if c.bootstrap.enable { Some(bootstrap_settings(c.bootstrap)?) } else { None };
    let block_size: usize = in_range("lwm2m.block_size", c.block_size, 16, 1024)?;
    if !block_size.is_power_of_two() {
        return Err(invalid("lwm2m.block_size", "must be a power of two: 16, 32, 64, 128, 256, 512 or 1024"));
    }
    let content_formats = c
        .content_formats
        .iter()
        .map(|n| {
            roost_lwm2m::types::format::by_name(n).ok_or_else(|| {
                invalid(
                    "lwm2m.content_formats",
                    format!("{n:?} is not senml-cbor, senml-json, tlv, lwm2m-json, cbor, text, opaque or a number"),
                )
            })
        })
        .collect::<Result<Vec<u16>, _>>()?;
    let t = c.translators;
    let defaults = Lwm2mSettings::default();
    Ok(Lwm2mSettings {
        bind: bind_addrs("lwm2m.bind", &c.bind.0)?,
        dtls_bind: bind_addrs("lwm2m.dtls_bind", &c.dtls_bind.0)?,
        recv_buffer: in_range("lwm2m.recv_buffer", c.recv_buffer, 0, i64::from(i32::MAX))?,
        lifetime_min,
        lifetime_max,
        qmode_time_window: positive("lwm2m.qmode_time_window", c.qmode_time_window.0)?,
        max_queued: at_least("lwm2m.max_queued", c.max_queued, 1)?,
        auto_observe,
        update_msg_publish_condition,
        mountpoint: c.mountpoint,
        translators: Translators {
            command: topic("lwm2m.translators.command", t.command, true)?,
            response: topic("lwm2m.translators.response", t.response, false)?,
            notify: topic("lwm2m.translators.notify", t.notify, false)?,
            register: topic("lwm2m.translators.register", t.register, false)?,
            update: topic("lwm2m.translators.update", t.update, false)?,
        },
        xml_dir: (!c.xml_dir.is_empty()).then_some(c.xml_dir),
        transmission: Transmission {
            ack_timeout: positive("lwm2m.ack_timeout", c.ack_timeout.0)?,
            max_retransmit: in_range("lwm2m.max_retransmit", c.max_retransmit, 0, 20)?,
            ..defaults.transmission
        },
        max_devices: at_least("lwm2m.max_devices", c.max_devices, 1)?,
        bootstrap,
        block_size,
        content_formats,
    })
}

fn auto_observe(list: &str) -> Result<AutoObserve, ConfigError> {
    Ok(match list.trim() {
        "off" | "" => AutoObserve::Off,
        "all" => AutoObserve::All,
        list => {
            let mut paths = Vec::new();
            for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if p.parse::<roost_lwm2m::types::Path>().is_err() {
                    return Err(invalid("lwm2m.auto_observe", format!("{p:?} is not a path like /3303/0/5700")));
                }
                paths.push(p.to_string());
            }
            AutoObserve::List(paths)
        }
    })
}

fn bootstrap_settings(b: BootstrapSection) -> Result<BootstrapSettings, ConfigError> {
    if !(b.server_uri.starts_with("coap://") || b.server_uri.starts_with("coaps://")) {
        return Err(invalid("lwm2m.bootstrap.server_uri", "must be a coap:// or coaps:// URI"));
    }
    if b.psk_identity.is_empty() != b.psk_key.is_empty() {
        return Err(invalid("lwm2m.bootstrap.psk_key", "psk_identity and psk_key go together"));
    }
    let mut devices: Vec<BootstrapDevice> = Vec::with_capacity(b.device.len());
    for (i, d) in b.device.into_iter().enumerate() {
        let key = |k: &str| format!("lwm2m.bootstrap.device[{i}].{k}");
        if d.endpoint.is_empty() || devices.iter().any(|o| o.endpoint == d.endpoint) {
            return Err(invalid(&key("endpoint"), "empty or listed twice"));
        }
        if d.psk_identity.is_empty()
            || devices.iter().any(|o| o.psk_identity == d.psk_identity)
            || d.psk_identity == b.psk_identity
        {
            return Err(invalid(&key("psk_identity"), "empty or used twice"));
        }
        if d.psk_key.is_empty() {
            return Err(invalid(&key("psk_key"), "must not be empty"));
        }
        devices.push(BootstrapDevice {
            endpoint: d.endpoint,
            psk_identity: d.psk_identity,
            psk_key: d.psk_key.into_bytes(),
        });
    }
    Ok(BootstrapSettings {
        server_uri: b.server_uri,
        lifetime: positive("lwm2m.bootstrap.lifetime", b.lifetime.0)?,
        psk_identity: (!b.psk_identity.is_empty()).then_some(b.psk_identity),
        psk_key: (!b.psk_key.is_empty()).then(|| b.psk_key.into_bytes()),
        devices,
        only_listed: b.only_listed,
    })
}

/// The PSKs the bootstrap server hands out are ones the DTLS listeners accept: each
/// `[[lwm2m.bootstrap.device]]` (username: its endpoint) and the shared one (username: its
/// identity), unless `[[coap.psk]]` lists the identity with the same key already.
pub(super) fn add_bootstrap_psks(b: &BootstrapSettings, psk: &mut Vec<PskEntry>) -> Result<(), ConfigError> {
    let shared = b.psk_identity.clone().zip(b.psk_key.clone()).map(|(identity, key)| {
        ("lwm2m.bootstrap.psk_identity".to_string(), PskEntry { username: identity.clone(), identity, key })
    });
    let devices = b.devices.iter().enumerate().map(|(i, d)| {
        let entry = PskEntry { identity: d.psk_identity.clone(), key: d.psk_key.clone(), username: d.endpoint.clone() };
        (format!("lwm2m.bootstrap.device[{i}].psk_identity"), entry)
    });
    for (key, e) in shared.into_iter().chain(devices) {
        match psk.iter().find(|p| p.identity == e.identity) {
            Some(p) if p.key == e.key => {}
            Some(_) => return Err(invalid(&key, "[[coap.psk]] lists this identity with another key")),
            None => psk.push(e),
        }
    }
    Ok(())
}
