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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn key_of(text: &str) -> String {
        match super::super::parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn validated() {
        let head = "[auth]\nchain = [\"jwt\"]\n";
        assert_eq!(key_of(head), "auth.jwt");
        assert_eq!(key_of(&format!("{head}[auth.jwt]\nsecret = \"short\"\n")), "auth.jwt.secret");
        assert_eq!(key_of(&format!("{head}[auth.jwt]\nsecret = \"{SECRET}\"\nfrom = \"header\"\n")), "auth.jwt.from");
        let no_name = format!("{head}[auth.jwt]\nsecret = \"{SECRET}\"\nfrom = \"user_property\"\n");
        assert_eq!(key_of(&no_name), "auth.jwt.user_property");
        let no_file = format!("{head}[auth.jwt]\nalgorithm = \"public-key\"\npublic_key = \"/nonexistent.pem\"\n");
        assert_eq!(key_of(&no_file), "auth.jwt.public_key");
        let not_pem = format!(
            "{head}[auth.jwt]\nalgorithm = \"public-key\"\npublic_key = \"-----BEGIN CERTIFICATE-----\\nAA==\\n-----END CERTIFICATE-----\"\n"
        );
        assert_eq!(key_of(&not_pem), "auth.jwt.public_key");
        assert_eq!(key_of(&format!("{head}[auth.jwt]\nuse_jwks = true\n")), "auth.jwt.jwks_file");
        assert_eq!(key_of(&format!("{head}[auth.jwt]\nsecret = \"{SECRET}\"\nleeway = \"1h\"\n")), "auth.jwt.leeway");
        let claims = format!("{head}[auth.jwt]\nsecret = \"{SECRET}\"\nverify_claims = {{ sub = \"${{nope}}\" }}\n");
        assert_eq!(key_of(&claims), "auth.jwt.verify_claims.sub");

        let ok = format!(
            "{head}[auth.jwt]\nsecret = \"{}\"\nsecret_base64_encoded = true\nfrom = \"user_property\"\nuser_property = \"token\"\nusername_claim = \"sub\"\n",
            crate::base64::encode(SECRET.as_bytes())
        );
        let s = super::super::parse(&ok).unwrap_or_else(|e| panic!("{e}"));
        let jwt = s.auth.databases.jwt.expect("[auth.jwt] validated");
        assert_eq!(jwt.keys, KeySource::Secret(SECRET.as_bytes().to_vec()));
        assert_eq!(jwt.from, TokenFrom::UserProperty("token".into()));
        assert_eq!(jwt.username_claim.as_deref(), Some("sub"));
        assert_eq!(jwt.leeway, Duration::from_secs(5));
        // The secret never shows in the settings' debug form.
        assert!(!format!("{jwt:?}").contains(SECRET));
        // A section the chain does not name is not used.
        assert!(super::super::parse("[auth.jwt]\n").unwrap().auth.databases.jwt.is_none());
    }
}
