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
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use roost_core::ClientInfo;
use roost_core::hooks::{EventMask, Hook, PublishVerdict};
use roost_core::types::Message;

pub use crate::config::{PayloadCodecConfig, RESERVED};
use crate::js::{Decoded, Encoded, JsLimits, JsLoader, JsScript};
use crate::plugin::{Kind, Plugin, Plugins};

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
