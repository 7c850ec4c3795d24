//! `[auth]` (beyond `allow_anonymous`), `[auth.http]`, `[acl]` and `[mqtt.tls]`: as read and
//! as validated.

use std::path::PathBuf;
use std::time::Duration;

use roost_core::auth::acl::IpRange;
use roost_core::auth::{Acl, AclRule, Permission, RuleAction, TopicPattern, Who};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::ConfigDuration;
use super::schema::Int;

/// One source of `[auth] chain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSourceKind {
    PasswordFile,
    ClientIds,
    Http,
    Certificate,
    /// `roost_authdb` sources (`[auth.postgresql]`, ...).
    Postgresql,
    Mysql,
    Redis,
    Ldap,
    /// `roost_authdb::jwt` (`[auth.jwt]`).
    Jwt,
}

/// `[auth.http]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAuthSettings {
    /// `http://host:port/path` (plain HTTP: the service is expected on the box or its LAN).
    pub url: String,
    pub timeout: Duration,
    /// How long an allow or deny is remembered (0: not at all).
    pub cache_ttl: Duration,
}

/// `[auth]`, validated (`allow_anonymous` lives in the broker settings).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthSettings {
    pub chain: Vec<AuthSourceKind>,
    pub password_file: Option<PathBuf>,
    pub client_ids: Vec<String>,
    pub http: Option<HttpAuthSettings>,
    /// `[auth.postgresql|mysql|redis|ldap]` and `[acl] sources`.
    pub databases: super::authdb::DbAuthSettings,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct AuthHttpSection {
    pub url: String,
    pub timeout: ConfigDuration,
    pub cache_ttl: ConfigDuration,
}

impl Default for AuthHttpSection {
    fn default() -> Self {
        AuthHttpSection {
            url: String::new(),
            timeout: ConfigDuration(Duration::from_secs(5)),
            cache_ttl: ConfigDuration(Duration::from_secs(60)),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct AclSection {
    pub no_match: String,
    pub deny_action: String,
    pub file: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule: Vec<AclRuleSection>,
    /// Database sources checked after the rules (`docs/security.md`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<super::authdb::AclSqlSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mysql: Option<super::authdb::AclSqlSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<super::authdb::AclRedisSection>,
}

impl Default for AclSection {
    fn default() -> Self {
        AclSection {
            no_match: "allow".into(),
            deny_action: "ignore".into(),
            file: String::new(),
            rule: Vec::new(),
            sources: Vec::new(),
            postgresql: None,
            mysql: None,
            redis: None,
        }
    }
}

/// The ACL file: `[[rule]]` tables, as `[[acl.rule]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table of [[rule]]s")]
struct AclFile {
    rule: Vec<AclRuleSection>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct AclRuleSection {
    pub permission: String,
    pub user: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub protocol: Option<String>,
    pub action: Option<String>,
    pub topics: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct MqttTlsSection {
    pub cert_file: String,
    pub key_file: String,
    pub ca_file: String,
    pub verify_peer: bool,
    pub cn_as_username: bool,
    pub min_version: String,
}

impl Default for MqttTlsSection {
    fn default() -> Self {
        MqttTlsSection {
            cert_file: String::new(),
            key_file: String::new(),
            ca_file: String::new(),
            verify_peer: false,
            cn_as_username: false,
            min_version: "1.2".into(),
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

pub(super) fn auth(
    chain: &[String],
    password_file: &str,
    client_ids: Vec<String>,
    http: AuthHttpSection,
    databases: super::authdb::DbSections,
) -> Result<AuthSettings, ConfigError> {
    let mut kinds = Vec::new();
    for (i, name) in chain.iter().enumerate() {
        let kind = match name.as_str() {
            "password_file" => AuthSourceKind::PasswordFile,
            "client_ids" => AuthSourceKind::ClientIds,
            "http" => AuthSourceKind::Http,
            "certificate" => AuthSourceKind::Certificate,
            "postgresql" => AuthSourceKind::Postgresql,
            "mysql" => AuthSourceKind::Mysql,
            "redis" => AuthSourceKind::Redis,
            "ldap" => AuthSourceKind::Ldap,
            "jwt" => AuthSourceKind::Jwt,
            other => {
                return Err(invalid(
                    &format!("auth.chain[{i}]"),
                    format!(
                        "{other:?} is not a source: \"password_file\", \"client_ids\", \"http\", \"certificate\", \"postgresql\", \"mysql\", \"redis\", \"ldap\" or \"jwt\""
                    ),
                ));
            }
        };
        if kinds.contains(&kind) {
            return Err(invalid(&format!("auth.chain[{i}]"), format!("{name:?} is listed twice")));
        }
        kinds.push(kind);
    }
    if kinds.contains(&AuthSourceKind::PasswordFile) && password_file.is_empty() {
        return Err(invalid(
            "auth.password_file",
            "missing: the chain names \"password_file\" (create one with `roost passwd FILE USER`)",
        ));
    }
    let http = if kinds.contains(&AuthSourceKind::Http) {
        if !http.url.starts_with("http://") {
            return Err(invalid(
                "auth.http.url",
                format!("{:?} must be an http:// URL (the chain names \"http\")", http.url),
            ));
        }
        if http.timeout.0.is_zero() {
            return Err(invalid("auth.http.timeout", "must be longer than 0"));
        }
        Some(HttpAuthSettings { url: http.url, timeout: http.timeout.0, cache_ttl: http.cache_ttl.0 })
    } else {
        None
    };
    Ok(AuthSettings {
        chain: kinds,
        password_file: (!password_file.is_empty()).then(|| PathBuf::from(password_file)),
        client_ids,
        http,
        databases: super::authdb::validate(chain, databases)?,
    })
}

/// `[acl]` and its file; `None` when nothing is configured (everything allowed).
pub(super) fn acl(section: AclSection) -> Result<(Option<Acl>, bool), ConfigError> {
    let no_match = match section.no_match.as_str() {
        "allow" => Permission::Allow,
        "deny" => Permission::Deny,
        other => return Err(invalid("acl.no_match", format!("{other:?} is not \"allow\" or \"deny\""))),
    };
    let deny_disconnect = match section.deny_action.as_str() {
        "ignore" => false,
        "disconnect" => true,
        other => return Err(invalid("acl.deny_action", format!("{other:?} is not \"ignore\" or \"disconnect\""))),
    };
    let mut rules = Vec::new();
    for (i, r) in section.rule.into_iter().enumerate() {
        rules.push(rule(&format!("acl.rule[{i}]"), r)?);
    }
    if !section.file.is_empty() {
        let text = std::fs::read_to_string(&section.file)
            .map_err(|e| invalid("acl.file", format!("{}: {e}", section.file)))?;
        let file: AclFile = toml::from_str(&text).map_err(|e| invalid("acl.file", format!("{}: {e}", section.file)))?;
        for (i, r) in file.rule.into_iter().enumerate() {
            rules.push(rule(&format!("acl.file {} rule[{i}]", section.file), r)?);
        }
    }
    // Database sources need an ACL to be checked by, even with no rules of their own.
    if rules.is_empty() && no_match == Permission::Allow && section.sources.is_empty() {
        return Ok((None, deny_disconnect));
    }
    Ok((Some(Acl { rules, no_match }), deny_disconnect))
}

fn rule(key: &str, r: AclRuleSection) -> Result<AclRule, ConfigError> {
    let permission = match r.permission.as_str() {
        "allow" => Permission::Allow,
        "deny" => Permission::Deny,
        other => return Err(invalid(&format!("{key}.permission"), format!("{other:?} is not \"allow\" or \"deny\""))),
    };
    let action = match r.action.as_deref().unwrap_or("all") {
        "publish" => RuleAction::Publish,
        "subscribe" => RuleAction::Subscribe,
        "all" => RuleAction::All,
        other => {
            return Err(invalid(
                &format!("{key}.action"),
                format!("{other:?} is not \"publish\", \"subscribe\" or \"all\""),
            ));
        }
    };
    let ip = match &r.ip {
        Some(s) => Some(
            IpRange::parse(s)
                .ok_or_else(|| invalid(&format!("{key}.ip"), format!("{s:?} is not an address or CIDR range")))?,
        ),
        None => None,
    };
    if r.topics.is_empty() {
        return Err(invalid(&format!("{key}.topics"), "missing: the topic filters the rule is about (\"#\" for all)"));
    }
    let mut topics = Vec::new();
    for (i, t) in r.topics.iter().enumerate() {
        let p = TopicPattern::parse(t);
        let f = match &p {
            TopicPattern::Eq(f) | TopicPattern::Filter(f) => f,
        };
        if roost_core::topic::validate_filter(f, &roost_core::settings::BrokerSettings::default()).is_err() {
            return Err(invalid(&format!("{key}.topics[{i}]"), format!("{t:?} is not a topic filter")));
        }
        topics.push(p);
    }
    Ok(AclRule {
        permission,
        who: Who { user: r.user, client_id: r.client_id, ip, protocol: r.protocol },
        action,
        topics,
    })
}

pub(super) fn mqtt_tls(
    t: MqttTlsSection,
    needed: bool,
) -> Result<Option<roost_mqtt::settings::TlsSettings>, ConfigError> {
    if t.cert_file.is_empty() && t.key_file.is_empty() {
        if needed {
            return Err(invalid(
                "mqtt.tls.cert_file",
                "missing: mqtt.tls_bind or mqtt.wss_bind needs a server certificate and key",
            ));
        }
        return Ok(None);
    }
    if t.cert_file.is_empty() || t.key_file.is_empty() {
        return Err(invalid("mqtt.tls", "cert_file and key_file go together"));
    }
    if t.verify_peer && t.ca_file.is_empty() {
        return Err(invalid("mqtt.tls.verify_peer", "needs ca_file: the CA that client certificates must chain to"));
    }
    let tls13_only = match t.min_version.as_str() {
        "1.2" => false,
        "1.3" => true,
        other => return Err(invalid("mqtt.tls.min_version", format!("{other:?} is not \"1.2\" or \"1.3\""))),
    };
    Ok(Some(roost_mqtt::settings::TlsSettings {
        cert_file: t.cert_file.into(),
        key_file: t.key_file.into(),
        ca_file: (!t.ca_file.is_empty()).then(|| t.ca_file.into()),
        verify_peer: t.verify_peer,
        cn_as_username: t.cn_as_username,
        tls13_only,
    }))
}

/// `"1024KB/s"`, `"1MB/s"`, `"500B/s"`, `"10/s"` (a count): per second. `""` or `"0"`: none.
pub(super) fn rate(key: &str, text: &str) -> Result<Option<u64>, ConfigError> {
    let t = text.trim();
    if t.is_empty() || t == "0" {
        return Ok(None);
    }
    let bad = || invalid(key, format!("{text:?} is not a rate like \"1024KB/s\", \"1MB/s\" or \"100/s\""));
    let per = t.strip_suffix("/s").ok_or_else(bad)?;
    let (digits, mult) = if let Some(n) = per.strip_suffix("KB") {
        (n, 1024)
    } else if let Some(n) = per.strip_suffix("MB") {
        (n, 1024 * 1024)
    } else if let Some(n) = per.strip_suffix("B") {
        (n, 1)
    } else {
        (per, 1)
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    let v = n.checked_mul(mult).ok_or_else(bad)?;
    Ok((v > 0).then_some(v))
}

pub(super) fn non_negative(key: &str, v: Int) -> Result<u32, ConfigError> {
    u32::try_from(v.0).map_err(|_| invalid(key, format!("{} is out of range (0..={})", v.0, u32::MAX)))
}
