//! The effective configuration: the file as read with every default filled in, as the API
//! (`GET /api/v1/config`) and the dashboard show it, with its secrets redacted.
//!
//! Redacted, by key name (anywhere in the tree, `[adapter.*]` sections included): keys named
//! or ending in `password`, `token`, `secret`, `psk` or `key`/`keys` (`api_keys`, a PSK
//! identity's `key`, LoRaWAN `app_key`, `nwk_s_key`, ...), but not file names (`*_file`),
//! and every value of a `headers` table (an `Authorization` header); in every string, the
//! password of a URL (`postgres://user:PASSWORD@host`).

use std::sync::Arc;

use serde::Serialize;

/// What a redacted value reads as.
pub const REDACTED: &str = "******";

/// The effective configuration, redacted (a TOML table).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EffectiveConfig(pub Arc<toml::Table>);

// TOML holds floats, so only `PartialEq` is derived (as for `AdapterSection`).
impl Eq for EffectiveConfig {}

impl EffectiveConfig {
    /// `file` with its defaults, redacted. A section that cannot be written as TOML leaves
    /// the table empty rather than failing the start: this is a view, not the config.
    pub fn of(file: &impl Serialize) -> EffectiveConfig {
        let mut table = toml::Table::try_from(file).unwrap_or_default();
        redact_table(&mut table);
        EffectiveConfig(Arc::new(table))
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(&*self.0).unwrap_or_default()
    }
}

fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_file") || k.ends_with("_path") {
        return false;
    }
    ["password", "token", "secret", "psk"].iter().any(|s| k.contains(s))
        || k == "key"
        || k == "keys"
        || k.ends_with("_key")
        || k.ends_with("_keys")
}

fn redact_table(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        if secret_key(k) {
            redact_all(v);
        } else if k.eq_ignore_ascii_case("headers") {
            if let toml::Value::Table(h) = v {
                h.iter_mut().for_each(|(_, v)| redact_all(v));
            }
        } else {
            redact_value(v);
        }
    }
}

fn redact_value(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => redact_table(t),
        toml::Value::Array(a) => a.iter_mut().for_each(redact_value),
        toml::Value::String(s) => {
            if let Some(clean) = without_url_password(s) {
                *s = clean;
            }
        }
        _ => {}
    }
}

/// Every string (or string in a list) of a secret key reads as [`REDACTED`]; an absent
/// secret stays visibly absent (an empty list is not a secret).
fn redact_all(v: &mut toml::Value) {
    match v {
        toml::Value::Array(a) => a.iter_mut().for_each(redact_all),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| redact_all(v)),
        other => *other = toml::Value::String(REDACTED.into()),
    }
}

/// `scheme://user:password@host...` without its password; `None` when there is none.
fn without_url_password(s: &str) -> Option<String> {
    let scheme_end = s.find("://")? + 3;
    let rest = &s[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(format!("{}{}:{REDACTED}{}", &s[..scheme_end], &rest[..colon], &rest[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_is_kept() {
        let text = r#"
            [http]
            api_keys = ["0123456789abcdef0123"]
            [cluster]
            password = "p"
            creds_file = "/etc/nats.creds"
            [[lorawan.device]]
            app_key = "03030303030303030303030303030303"
            dev_eui = "0101010101010101"
            [[rule]]
            url = "postgres://roost:hunter2@db:5432/iot"
            headers = { Authorization = "Bearer abc" }
            [adapter.custom]
            secret_token = "x"
            port = 5
        "#;
        let table: toml::Table = text.parse().unwrap();
        let e = EffectiveConfig::of(&table).to_toml();
        for secret in ["0123456789abcdef0123", "\"p\"", "0303", "hunter2", "Bearer abc", "\"x\""] {
            assert!(!e.contains(secret), "{secret} shown:\n{e}");
        }
        for kept in ["/etc/nats.creds", "0101010101010101", "postgres://roost:******@db:5432/iot", "port = 5"] {
            assert!(e.contains(kept), "{kept} missing:\n{e}");
        }
    }

    #[test]
    fn url_passwords() {
        assert_eq!(without_url_password("redis://:pw@h:6379/0").as_deref(), Some("redis://:******@h:6379/0"));
        assert_eq!(without_url_password("http://h/a@b"), None);
        assert_eq!(without_url_password("mqtt://user@h"), None);
        assert_eq!(without_url_password("plain text"), None);
    }

    #[test]
    fn the_defaults_have_every_section() {
        let e = EffectiveConfig::of(&super::super::schema::ConfigFile::default());
        for section in ["node", "mqtt", "mqttsn", "coap", "lorawan", "lwm2m", "storage", "http"] {
            assert!(e.0.contains_key(section), "{section} missing");
        }
    }
}
