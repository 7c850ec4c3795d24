//! `[auth.jwt]`: as read (EMQX's JWT authenticator names: `from`, `use_jwks`, `algorithm`,
//! `secret`, `secret_base64_encoded`, `public_key`, `verify_claims`) and as validated into
//! `roost_authdb::jwt`'s settings. Keys are read here, so `check-config` names a bad one.

use std::collections::BTreeMap;
use std::time::Duration;

use roost_authdb::jwt::keys::{Key, KeySet};
use roost_authdb::jwt::{JwtSettings, KeySource, TokenFrom};
use roost_authdb::template::Template;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::ConfigDuration;

/// The longest `leeway` accepted: clock skew, not a grace period.
const MAX_LEEWAY: Duration = Duration::from_secs(600);

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct JwtSection {
    /// `"password"`, `"username"` or `"user_property"` (MQTT 5: `user_property` names it).
    pub from: String,
    pub user_property: String,
    /// `"hmac-based"` (HS256: `secret` or `secret_file`) or `"public-key"` (RS256/ES256:
    /// `public_key`); ignored with `use_jwks`.
    pub algorithm: String,
    pub secret: String,
    pub secret_base64_encoded: bool,
    pub secret_file: String,
    /// PEM text, or the path of a PEM file.
    pub public_key: String,
    pub use_jwks: bool,
    /// A JWK Set file (EMQX fetches `endpoint`; Roost reads a file, re-read when it changes).
    pub jwks_file: String,
    pub verify_claims: BTreeMap<String, String>,
    pub username_claim: String,
    pub leeway: ConfigDuration,
}

impl Default for JwtSection {
    fn default() -> Self {
        JwtSection {
            from: "password".into(),
            user_property: String::new(),
            algorithm: "hmac-based".into(),
            secret: String::new(),
            secret_base64_encoded: false,
            secret_file: String::new(),
            public_key: String::new(),
            use_jwks: false,
            jwks_file: String::new(),
            verify_claims: BTreeMap::new(),
            username_claim: String::new(),
            leeway: ConfigDuration(Duration::from_secs(5)),
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

/// `[auth.jwt]`, required when the chain names `"jwt"`.
pub(super) fn validate(chain: &[String], section: Option<JwtSection>) -> Result<Option<JwtSettings>, ConfigError> {
    let named = chain.iter().any(|c| c == "jwt");
    let s = match section {
        None if named => return Err(invalid("auth.jwt", "missing: the chain names \"jwt\"")),
        Some(s) if named => s,
        _ => return Ok(None),
    };
    let from = match s.from.as_str() {
        "password" => TokenFrom::Password,
        "username" => TokenFrom::Username,
        "user_property" if s.user_property.is_empty() => {
            return Err(invalid("auth.jwt.user_property", "missing: from = \"user_property\" needs its name"));
        }
        "user_property" => TokenFrom::UserProperty(s.user_property.clone()),
        other => {
            return Err(invalid(
                "auth.jwt.from",
                format!("{other:?} is not \"password\", \"username\" or \"user_property\""),
            ));
        }
    };
    if s.leeway.0 > MAX_LEEWAY {
        return Err(invalid("auth.jwt.leeway", format!("at most {}s (clock skew)", MAX_LEEWAY.as_secs())));
    }
    let mut verify_claims = Vec::new();
    for (claim, value) in &s.verify_claims {
        let t = Template::parse(value).map_err(|e| invalid(&format!("auth.jwt.verify_claims.{claim}"), e))?;
        verify_claims.push((claim.clone(), t));
    }
    Ok(Some(JwtSettings {
        keys: keys(&s)?,
        from,
        leeway: s.leeway.0,
        verify_claims,
        username_claim: (!s.username_claim.is_empty()).then(|| s.username_claim.clone()),
    }))
}

fn keys(s: &JwtSection) -> Result<KeySource, ConfigError> {
    if s.use_jwks {
        if s.jwks_file.is_empty() {
            return Err(invalid("auth.jwt.jwks_file", "missing: use_jwks needs the JWK Set file"));
        }
        let text = std::fs::read_to_string(&s.jwks_file)
            .map_err(|e| invalid("auth.jwt.jwks_file", format!("{}: {e}", s.jwks_file)))?;
        KeySet::from_jwks(&text).map_err(|e| invalid("auth.jwt.jwks_file", format!("{}: {e}", s.jwks_file)))?;
        return Ok(KeySource::Jwks(s.jwks_file.clone().into()));
    }
    match s.algorithm.as_str() {
        "hmac-based" => {
            let secret = match (s.secret.is_empty(), s.secret_file.is_empty()) {
                (false, true) => s.secret.as_bytes().to_vec(),
                (true, false) => std::fs::read(&s.secret_file)
                    .map_err(|e| invalid("auth.jwt.secret_file", format!("{}: {e}", s.secret_file)))?,
                _ => return Err(invalid("auth.jwt.secret", "give one of secret and secret_file")),
            };
            let secret = if s.secret_base64_encoded {
                let text = String::from_utf8_lossy(&secret);
                crate::base64::decode(text.trim())
                    .ok_or_else(|| invalid("auth.jwt.secret", "secret_base64_encoded: the secret is not base64"))?
            } else {
                secret
            };
            // RFC 7518 §3.2: an HS256 key is at least as long as the hash (32 bytes).
            if secret.len() < 32 {
                return Err(invalid("auth.jwt.secret", "shorter than 32 bytes (RFC 7518 §3.2 for HS256)"));
            }
            Ok(KeySource::Secret(secret))
        }
        "public-key" => {
            if s.public_key.is_empty() {
                return Err(invalid("auth.jwt.public_key", "missing: the PEM public key or its file"));
            }
            let pem = if s.public_key.contains("-----BEGIN") {
                s.public_key.clone()
            } else {
                std::fs::read_to_string(&s.public_key)
                    .map_err(|e| invalid("auth.jwt.public_key", format!("{}: {e}", s.public_key)))?
            };
            Key::from_pem(&pem).map_err(|e| invalid("auth.jwt.public_key", e))?;
            Ok(KeySource::PublicKey(pem))
        }
        other => Err(invalid("auth.jwt.algorithm", format!("{other:?} is not \"hmac-based\" or \"public-key\""))),
    }
}
