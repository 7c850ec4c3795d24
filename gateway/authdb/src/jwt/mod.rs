//! `"jwt"` in `[auth] chain`: a client presents a JSON Web Token (RFC 7519) signed with
//! HS256, RS256 or ES256, as EMQX's JWT authenticator takes it (`[auth.jwt]`: `from`,
//! `secret`, `secret_base64_encoded`, `public_key`, `use_jwks`, `verify_claims`). The key
//! is a secret, a PEM public key, or a JWK Set file (RFC 7517) that is read again when it
//! changes (checked at each login: one `stat`) and on `roost ctl reload`.
//!
//! - [`token`]: the JWS compact form, the `alg` check, the signature, `exp` / `nbf`
//! - [`keys`]: secrets, PEM public keys and JWK Sets
//!
//! A credential that is not a JWT at all (no three base64url parts with a JSON header) is
//! not this source's (ignore: a password for the next source). A JWT that fails is refused
//! (MQTT 5 0x86, 3.1.1 0x04), and the reason is logged with the client id, never the token.
//! An admitted client's username may come from a claim (`username_claim`), its scalar
//! claims fill `%{claim}` in ACL topics, and `is_superuser: true` makes it a superuser
//! (EMQX's claim).

pub mod keys;
#[cfg(test)]
mod tests;
pub mod token;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use roost_core::auth::{AuthDecision, AuthSource, BoxFuture, Credentials, Verdict};
use serde_json::{Map, Value};

use self::keys::{Key, KeySet};
use self::token::Refusal;
use crate::metrics::{Metrics, Result as Counted};
use crate::template::{Template, Vars, verbatim};

/// Claims kept per client for `%{claim}` at most, and the longest name and value kept.
const MAX_CLAIMS: usize = 32;
const MAX_CLAIM_NAME: usize = 64;
const MAX_CLAIM_VALUE: usize = 256;

/// Where the token is read from (EMQX `from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFrom {
    Password,
    /// The username is then never the client's identity: `username_claim` gives it.
    Username,
    /// An MQTT 5 CONNECT user property of this name.
    UserProperty(String),
}

/// What the token is verified with.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// HS256.
    Secret(Vec<u8>),
    /// RS256 or ES256: PEM text.
    PublicKey(String),
    /// A JWK Set file.
    Jwks(PathBuf),
}

impl std::fmt::Debug for KeySource {
    // The secret never reaches a log or an error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Secret(_) => f.write_str("Secret(..)"),
            KeySource::PublicKey(_) => f.write_str("PublicKey(..)"),
            KeySource::Jwks(p) => f.debug_tuple("Jwks").field(p).finish(),
        }
    }
}

/// `[auth.jwt]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub keys: KeySource,
    pub from: TokenFrom,
    /// Allowed clock skew on `exp` and `nbf`.
    pub leeway: Duration,
    /// Claims that must equal these values (`${username}`, `${clientid}` filled in).
    pub verify_claims: Vec<(String, Template)>,
    /// The claim whose (string) value becomes the client's username; `None`: the
    /// username stays the one the client sent (none with `from = "username"`).
    pub username_claim: Option<String>,
}

enum Keys {
    Fixed(Arc<KeySet>),
    File(JwksFile),
}

/// A JWK Set file and the keys last read from it.
struct JwksFile {
    path: PathBuf,
    state: Mutex<(Arc<KeySet>, Option<Stamp>)>,
}

/// What tells that a file changed: its modification time and length.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read_jwks(path: &Path) -> Result<KeySet, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    KeySet::from_jwks(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl JwksFile {
    /// The keys, read again first if the file changed. A file that no longer reads keeps
    /// the keys in force (logged; tried again at the next login).
    fn current(&self) -> Arc<KeySet> {
        let now = stamp(&self.path);
        let mut state = self.state.lock();
        if now.is_some() && now != state.1 {
            match read_jwks(&self.path) {
                Ok(keys) => {
                    tracing::info!(file = %self.path.display(), keys = keys.len(), "jwt: key set reloaded");
                    *state = (Arc::new(keys), now);
                }
                Err(e) => tracing::warn!(error = %e, "jwt: key set not reloaded; the previous keys stay in force"),
            }
        }
        state.0.clone()
    }
}

/// The JWT source of the chain.
pub struct JwtAuth {
    settings: JwtSettings,
    keys: Keys,
    metrics: Arc<Metrics>,
}

impl JwtAuth {
    /// Reads the key (or key set): an error names what is wrong with it.
    pub fn new(settings: JwtSettings, metrics: Arc<Metrics>) -> Result<JwtAuth, String> {
        let keys = match &settings.keys {
            KeySource::Secret(s) => Keys::Fixed(Arc::new(KeySet::single(Key::hmac(s.clone())))),
            KeySource::PublicKey(pem) => Keys::Fixed(Arc::new(KeySet::single(Key::from_pem(pem)?))),
            KeySource::Jwks(path) => {
                let at = stamp(path);
                let keys = read_jwks(path)?;
                Keys::File(JwksFile { path: path.clone(), state: Mutex::new((Arc::new(keys), at)) })
            }
        };
        Ok(JwtAuth { settings, keys, metrics })
    }

    fn token<'a>(&self, creds: &'a Credentials<'a>) -> Option<&'a [u8]> {
        match &self.settings.from {
            TokenFrom::Password => creds.password.map(|p| &p[..]),
            TokenFrom::Username => creds.client.username.as_deref().map(str::as_bytes),
            TokenFrom::UserProperty(name) => {
                creds.user_properties.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_bytes())
            }
        }
    }

    fn judge(&self, creds: &Credentials<'_>) -> Verdict {
        let Some(token) = self.token(creds).filter(|t| token::looks_like_jwt(t)) else { return Verdict::Ignore };
        // ASCII by `looks_like_jwt`.
        let Ok(token) = std::str::from_utf8(token) else { return Verdict::Ignore };
        if self.settings.from == TokenFrom::Username {
            // The token is no one's name: neither listings nor the refusal log show it.
            creds.grants.set_username(None);
        }
        let keys = match &self.keys {
            Keys::Fixed(k) => k.clone(),
            Keys::File(f) => f.current(),
        };
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(i64::MAX);
        let checked = token::verify(token, &keys, now, leeway).and_then(|v| self.admit(creds, v.claims));
        match checked {
            Ok(()) => {
                self.metrics.count("jwt", Counted::Allow);
                Verdict::Allow
            }
            Err(Refusal::Malformed) | Err(Refusal::Header("not base64url JSON")) => {
                // Shaped like a JWT by chance (a password with two dots): another source's.
                self.metrics.count("jwt", Counted::Ignore);
                Verdict::Ignore
            }
            Err(why) => {
                self.metrics.count("jwt", Counted::Deny);
                tracing::info!(client_id = %creds.client.client_id, peer = ?creds.client.peer, reason = %why, "jwt: token refused");
                Verdict::Deny(AuthDecision::BadCredentials)
            }
        }
    }

    /// The verified claims: `verify_claims`, then what they grant.
    fn admit(&self, creds: &Credentials<'_>, claims: Map<String, Value>) -> Result<(), Refusal> {
        let vars = Vars::of(creds);
        for (name, expected) in &self.settings.verify_claims {
            let want = expected.render(&vars, verbatim);
            if claims.get(name).and_then(scalar).as_deref() != Some(want.as_str()) {
                return Err(Refusal::Claim(name.clone()));
            }
        }
        if let Some(name) = &self.settings.username_claim {
            let user = claims.get(name).and_then(Value::as_str).filter(|u| !u.is_empty() && u.len() <= 256);
            let user = user.ok_or_else(|| Refusal::Claim(name.clone()))?;
            creds.grants.set_username(Some(user.to_string()));
        }
        if claims.get("is_superuser").is_some_and(|v| v == &Value::Bool(true) || v.as_str() == Some("true")) {
            creds.grants.set_superuser(true);
        }
        let kept = claims
            .iter()
            .filter(|(k, _)| k.len() <= MAX_CLAIM_NAME)
            .filter_map(|(k, v)| Some((k.clone(), scalar(v).filter(|v| v.len() <= MAX_CLAIM_VALUE)?)))
            .take(MAX_CLAIMS)
            .collect();
        creds.grants.set_claims(kept);
        Ok(())
    }
}

/// A string, number or boolean claim as text (`None` for arrays, objects, null).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl AuthSource for JwtAuth {
    fn name(&self) -> &str {
        "jwt"
    }
    fn check<'a>(&'a self, creds: &'a Credentials<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(std::future::ready(self.judge(creds)))
    }
}
