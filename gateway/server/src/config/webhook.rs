//! `[[webhook]]`: HTTP POST sinks of broker events, as read and as validated.

use std::time::Duration;

use roost_core::hooks::{EventKind, EventMask};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::ConfigDuration;
use super::schema::Int;
use crate::webhook::WebhookSettings;

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct WebhookSection {
    pub url: String,
    /// PEM CA certificates to trust for an `https://` url, besides the web roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Event names (`client.connected`, ...); empty: every event.
    pub events: Vec<String>,
    pub batch_size: Int,
    pub batch_delay: ConfigDuration,
    pub queue: Int,
    pub retries: Int,
    pub retry_backoff: ConfigDuration,
    pub timeout: ConfigDuration,
}

impl Default for WebhookSection {
    fn default() -> Self {
        let d = WebhookSettings::defaults(String::new());
        WebhookSection {
            url: String::new(),
            ca_file: None,
            events: Vec::new(),
            batch_size: Int(d.batch_size as i64),
            batch_delay: ConfigDuration(d.batch_delay),
            queue: Int(d.queue as i64),
            retries: Int(i64::from(d.retries)),
            retry_backoff: ConfigDuration(d.retry_backoff),
            timeout: ConfigDuration(d.timeout),
        }
    }
}

fn invalid(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

pub(super) fn webhooks(sections: Vec<WebhookSection>) -> Result<Vec<WebhookSettings>, ConfigError> {
    let mut out = Vec::new();
    for (i, w) in sections.into_iter().enumerate() {
        let key = |k: &str| format!("webhook[{i}].{k}");
        roost_rules::action::http::Target::parse(&w.url).map_err(|e| invalid(key("url"), e))?;
        // Reads the CA file now, so a bad one is a config error naming its key.
        roost_rules::action::http::HttpClient::new(&w.url, w.ca_file.as_deref())
            .map_err(|e| invalid(key("ca_file"), e.to_string()))?;
        let mut events = if w.events.is_empty() { EventMask::ALL } else { EventMask::NONE };
        for name in &w.events {
            let kind = EventKind::parse(name).ok_or_else(|| {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                invalid(key("events"), format!("{name:?} is not an event; known: {}", known.join(", ")))
            })?;
            events = events.union(EventMask::of(&[kind]));
        }
        let count = |k: &str, v: Int, max: i64| -> Result<usize, ConfigError> {
            if (1..=max).contains(&v.0) {
                Ok(v.0 as usize)
            } else {
                Err(invalid(key(k), format!("{} is out of range (1..={max})", v.0)))
            }
        };
        let retries = match w.retries.0 {
            n @ 0..=100 => n as u32,
            n => return Err(invalid(key("retries"), format!("{n} is out of range (0..=100)"))),
        };
        if w.timeout.0.is_zero() {
            return Err(invalid(key("timeout"), "must be more than 0"));
        }
        out.push(WebhookSettings {
            url: w.url,
            ca_file: w.ca_file,
            events,
            batch_size: count("batch_size", w.batch_size, 10_000)?,
            batch_delay: w.batch_delay.0.min(Duration::from_secs(60)),
            queue: count("queue", w.queue, 10_000_000)?,
            retries,
            retry_backoff: w.retry_backoff.0,
            timeout: w.timeout.0,
        });
    }
    Ok(out)
}
