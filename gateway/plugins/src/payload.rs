//! Payload layer: the `[[payload_codec]]`s of a gateway, TS013 JavaScript codecs by name.
//!
//! LoRaWAN devices name one (`payload_codec = "NAME"`): `decodeUplink` makes `object` of
//! `event/up`, `encodeDownlink` turns a `command/down` `object` into bytes. For every other
//! protocol (CoAP, MQTT-SN, custom codecs, even MQTT) a codec applies to topics:
//! [`PayloadHook`] rewrites a publish on an `uplink_topics` filter into a JSON event
//! `{"data": base64, "fPort", "object", "errors"?, "warnings"?}`, and a JSON publish on a
//! `downlink_topics` filter into the bytes `encodeDownlink` makes of it (refused when the
//! codec reports errors).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use roost_core::ClientInfo;
use roost_core::hooks::{EventMask, Hook, PublishVerdict};
use roost_core::types::Message;
use serde::{Deserialize, Serialize};

use crate::js::{Decoded, Encoded, JsLimits, JsLoader, JsScript};
use crate::plugin::{Kind, Plugin, Plugins};

/// One `[[payload_codec]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadCodecConfig {
    /// What LoRaWAN devices name in `payload_codec`; `[A-Za-z0-9_-]`, 1 to 64 characters.
    pub name: String,
    /// The `.js` file (TS013: `decodeUplink`, optionally `encodeDownlink`).
    pub script: PathBuf,
    /// Publishes on these filters are decoded (their payload becomes the JSON event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uplink_topics: Vec<String>,
    /// JSON publishes on these filters are encoded into the device's bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downlink_topics: Vec<String>,
    /// The `fPort` given to `decodeUplink` for topic uplinks (LoRaWAN gives the frame's).
    #[serde(default = "defaults::fport")]
    pub fport: u8,
    /// Wall time one call may run, milliseconds.
    #[serde(default = "defaults::time_limit_ms")]
    pub time_limit_ms: u64,
    /// Bytes the codec's runtime on one worker may hold.
    #[serde(default = "defaults::max_memory")]
    pub max_memory: usize,
}

mod defaults {
    pub fn fport() -> u8 {
        1
    }
    pub fn time_limit_ms() -> u64 {
        crate::js::JsLimits::default().time_per_call.as_millis() as u64
    }
    pub fn max_memory() -> usize {
        crate::js::JsLimits::default().max_memory
    }
}

/// Names LoRaWAN uses for its built-in codecs; a script codec may not take them.
pub const RESERVED: [&str; 3] = ["none", "json", "cayenne_lpp"];

impl PayloadCodecConfig {
    /// What is wrong with the table, as `(field, problem)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let name_ok = (1..=64).contains(&self.name.len())
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok || RESERVED.contains(&self.name.as_str()) {
            return Err((
                "name",
                format!("{:?} is not 1-64 of [A-Za-z0-9_-], or is a built-in codec's name", self.name),
            ));
        }
        if self.script.extension().and_then(|e| e.to_str()) != Some("js") {
            return Err(("script", format!("{} is not a .js file", self.script.display())));
        }
        for f in self.uplink_topics.iter().chain(&self.downlink_topics) {
            if f.is_empty() || f.contains('\0') {
                return Err(("uplink_topics", format!("{f:?} is not a topic filter")));
            }
        }
        if !(1..=223).contains(&self.fport) {
            return Err(("fport", format!("{} is not 1..=223", self.fport)));
        }
        if !(1..=10_000).contains(&self.time_limit_ms) {
            return Err(("time_limit_ms", format!("{} is not 1..=10000", self.time_limit_ms)));
        }
        if self.max_memory < (1 << 20) {
            return Err(("max_memory", format!("{} is below 1048576 (1 MiB)", self.max_memory)));
        }
        Ok(())
    }
}

/// A loaded codec with its topic rules.
struct Entry {
    plugin: Arc<Plugin<JsLoader>>,
    config: PayloadCodecConfig,
}

/// Every `[[payload_codec]]` of a gateway, loaded.
#[derive(Default)]
pub struct PayloadCodecs {
    by_name: HashMap<String, Arc<Entry>>,
    /// In config order: the first codec whose filter matches a topic handles it.
    ordered: Vec<Arc<Entry>>,
}

impl PayloadCodecs {
    /// Loads every codec (an error is a configuration error); each is listed in, and its
    /// file watched by, `plugins`.
    pub fn open(configs: &[PayloadCodecConfig], plugins: &Plugins) -> Result<Arc<Self>, String> {
        let mut codecs = PayloadCodecs::default();
        for c in configs {
            c.check().map_err(|(field, problem)| format!("payload_codec {:?}: {field}: {problem}", c.name))?;
            let limits = JsLimits { time_per_call: Duration::from_millis(c.time_limit_ms), max_memory: c.max_memory };
            let plugin = Arc::new(Plugin::open(&c.script, Kind::Js, JsLoader::new(limits))?);
            plugins.add(plugin.clone());
            let entry = Arc::new(Entry { plugin, config: c.clone() });
            if codecs.by_name.insert(c.name.clone(), entry.clone()).is_some() {
                return Err(format!("payload_codec {:?} is defined twice", c.name));
            }
            codecs.ordered.push(entry);
        }
        Ok(Arc::new(codecs))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    fn script(&self, name: &str) -> Option<Arc<crate::plugin::Version<JsScript>>> {
        self.by_name.get(name).map(|e| e.plugin.current())
    }

    /// `decodeUplink` of codec `name`; `None`: no such codec.
    pub fn decode_uplink(&self, name: &str, fport: u8, bytes: &[u8]) -> Option<Decoded> {
        self.script(name).map(|v| v.loaded.decode_uplink(fport, bytes))
    }

    /// `encodeDownlink` of codec `name`; `None`: no such codec.
    pub fn encode_downlink(&self, name: &str, data: &serde_json::Value) -> Option<Result<Encoded, Vec<String>>> {
        self.script(name).map(|v| v.loaded.encode_downlink(data))
    }

    /// The hook that applies codecs to their topics; `None` when no codec names a topic.
    pub fn hook(self: &Arc<Self>) -> Option<Arc<dyn Hook>> {
        let any =
            self.ordered.iter().any(|e| !e.config.uplink_topics.is_empty() || !e.config.downlink_topics.is_empty());
        any.then(|| Arc::new(PayloadHook(self.clone())) as Arc<dyn Hook>)
    }
}

/// The TS013 uplink event a topic uplink becomes (LoRaWAN `event/up` names).
pub fn uplink_event(fport: u8, bytes: &[u8], decoded: &Decoded) -> serde_json::Value {
    let mut event = serde_json::json!({
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
        "fPort": fport,
    });
    if let Some(data) = &decoded.data {
        event["object"] = data.clone();
    }
    if !decoded.errors.is_empty() {
        event["errors"] = serde_json::json!(decoded.errors);
    }
    if !decoded.warnings.is_empty() {
        event["warnings"] = serde_json::json!(decoded.warnings);
    }
    event
}

/// Applies payload codecs to publishes on their topics (see the module docs).
pub struct PayloadHook(Arc<PayloadCodecs>);

impl Hook for PayloadHook {
    fn interests(&self) -> EventMask {
        EventMask::NONE
    }

    fn rewrites_publish(&self) -> bool {
        true
    }

    fn on_publish(&self, client: Option<&ClientInfo>, message: &mut Message) -> PublishVerdict {
        let topic = message.topic.clone();
        let matches = |filters: &[String]| filters.iter().any(|f| roost_core::topic::matches(f, &topic));
        for e in &self.0.ordered {
            if matches(&e.config.uplink_topics) {
                let decoded = e.plugin.current().loaded.decode_uplink(e.config.fport, &message.payload);
                if !decoded.errors.is_empty() {
                    tracing::info!(codec = %e.config.name, %topic, errors = ?decoded.errors, "payload codec: uplink not decoded");
                }
                let event = uplink_event(e.config.fport, &message.payload, &decoded);
                message.payload = event.to_string().into_bytes().into();
                message.properties.payload_format_indicator = Some(1);
                message.properties.content_type = Some("application/json".into());
                return PublishVerdict::Continue;
            }
            if matches(&e.config.downlink_topics) {
                let encoded = serde_json::from_slice::<serde_json::Value>(&message.payload)
                    .map_err(|err| vec![format!("the command is not JSON: {err}")])
                    .and_then(|data| e.plugin.current().loaded.encode_downlink(&data));
                return match encoded {
                    Ok(encoded) => {
                        message.payload = encoded.bytes.into();
                        message.properties.payload_format_indicator = None;
                        message.properties.content_type = None;
                        PublishVerdict::Continue
                    }
                    Err(errors) => {
                        let client = client.map(|c| c.client_id.to_string());
                        tracing::warn!(codec = %e.config.name, %topic, ?client, ?errors, "payload codec: downlink refused");
                        PublishVerdict::Reject
                    }
                };
            }
        }
        PublishVerdict::Continue
    }
}
