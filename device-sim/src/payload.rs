//! Telemetry payload templates: text with `{placeholders}` filled per message.
//!
//! `{id}` device id, `{seq}` message number of this device, `{ts}` Unix time in
//! milliseconds, `{temp}` a temperature in °C (15.0-30.0), `{humidity}` 20-80 %,
//! `{battery}` 0-100 %, `{rand}` a float in 0..1. Anything else is copied as it is.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng as _;

pub const DEFAULT_TEMPLATE: &str =
    r#"{"id":"{id}","seq":{seq},"ts":{ts},"temperature":{temp},"humidity":{humidity},"battery":{battery}}"#;

/// Fills `template` for one message.
pub fn render(template: &str, id: u32, seq: u64) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    let mut rng = rand::rng();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &after[..close];
        let value = match key {
            "id" => Some(id.to_string()),
            "seq" => Some(seq.to_string()),
            "ts" => Some(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0).to_string()),
            "temp" => Some(format!("{:.1}", rng.random_range(15.0..30.0_f64))),
            "humidity" => Some(format!("{:.1}", rng.random_range(20.0..80.0_f64))),
            "battery" => Some(rng.random_range(0..=100u32).to_string()),
            "rand" => Some(format!("{:.4}", rng.random::<f64>())),
            _ => None,
        };
        match value {
            Some(v) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                // Not a placeholder (e.g. a JSON object brace): copy the brace, go on after it.
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_and_keeps_json_braces() {
        let s = render(DEFAULT_TEMPLATE, 42, 7);
        assert!(s.starts_with(r#"{"id":"42","seq":7,"ts":"#), "{s}");
        assert!(s.contains(r#""battery":"#) && s.ends_with('}'), "{s}");
        assert!(!s.contains("{temp}"), "{s}");
    }

    #[test]
    fn unknown_placeholders_are_copied() {
        assert_eq!(render("a{x}b{id}", 3, 0), "a{x}b3");
    }
}
