//! `"ldap"`: EMQX's LDAP authenticator over `ldap3` (rustls). Two ways, as EMQX:
//! - search then bind (default): bind as `bind_dn` (or anonymously), search `base_dn` with
//!   `filter` (values RFC 4515-escaped); no entry: not this source's user; else bind as the
//!   entry's DN with the client's password;
//! - bind as the user: `bind_dn_template` (values RFC 4514-escaped), no search; a failed
//!   bind is a refusal (an unknown user and a wrong password look the same to LDAP).
//!
//! An empty password is refused before any bind: LDAP treats it as an anonymous bind,
//! which succeeds. TLS: `ldaps://` URLs or `starttls`, verified against `ca_file` (else
//! the system's roots). One connection per lookup, at most `pool_size` at once.

use std::borrow::Cow;
use std::sync::Arc;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use roost_core::auth::BoxFuture;

use crate::BackendError;
use crate::settings::LdapSettings;
use crate::source::{Backend, Outcome, truthy};
use crate::template::Vars;

/// LDAP result code 49: invalidCredentials.
const INVALID_CREDENTIALS: u32 = 49;

pub struct Ldap {
    settings: LdapSettings,
    tls: Arc<rustls::ClientConfig>,
    permits: tokio::sync::Semaphore,
}

impl Ldap {
    pub fn new(settings: LdapSettings) -> Result<Ldap, String> {
        let tls = Arc::new(client_config(settings.ca_file.as_deref())?);
        let permits = tokio::sync::Semaphore::new(settings.common.pool_size.max(1));
        Ok(Ldap { settings, tls, permits })
    }

    async fn connect(&self) -> Result<ldap3::Ldap, BackendError> {
        let mut cs = LdapConnSettings::new().set_conn_timeout(self.settings.common.timeout);
        cs = cs.set_starttls(self.settings.starttls).set_config(self.tls.clone());
        let (conn, ldap) = LdapConnAsync::with_settings(cs, &self.settings.url).await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    async fn lookup(&self, vars: &Vars, password: &str) -> Result<Outcome, BackendError> {
        let _permit = self.permits.acquire().await.map_err(|e| BackendError::Other(e.to_string()))?;
        let mut ldap = self.connect().await?;
        let s = &self.settings;
        let (dn, superuser) = match &s.bind_dn_template {
            Some(t) => (t.render(vars, |v| ldap3::dn_escape(v)), None),
            None => {
                if let Some(bind_dn) = &s.bind_dn {
                    ldap.simple_bind(bind_dn, &s.bind_password).await?.success()?;
                }
                let filter = s.filter.render(vars, |v| ldap3::ldap_escape(v));
                let attrs: Vec<&str> = s.is_superuser_attribute.as_deref().into_iter().collect();
                let attrs = if attrs.is_empty() { vec!["1.1"] } else { attrs };
                let (entries, _) = ldap.search(&s.base_dn, Scope::Subtree, &filter, attrs).await?.success()?;
                let [entry] = &entries[..] else {
                    // None, or an ambiguous filter: not one user of this directory.
                    let _ = ldap.unbind().await;
                    return Ok(Outcome::NotFound);
                };
                let entry = SearchEntry::construct(entry.clone());
                let superuser = s
                    .is_superuser_attribute
                    .as_ref()
                    .map(|a| entry.attrs.get(a).is_some_and(|vs| vs.iter().any(|v| truthy(v))));
                (entry.dn, superuser)
            }
        };
        let result = ldap.simple_bind(&dn, password).await?;
        let _ = ldap.unbind().await;
        Ok(match result.rc {
            0 => Outcome::Allow { superuser: superuser.unwrap_or(false) },
            INVALID_CREDENTIALS => Outcome::Deny,
            _ => return Err(ldap3::LdapError::from(result).into()),
        })
    }
}

impl Backend for Ldap {
    fn kind(&self) -> &'static str {
        "ldap"
    }

    fn check<'a>(&'a self, vars: &'a Vars, password: Option<&'a [u8]>) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        Box::pin(async move {
            if vars.username.is_none() && self.settings.bind_dn_template.is_none() {
                return Ok(Outcome::NotFound);
            }
            let password = match password.map(String::from_utf8_lossy) {
                Some(Cow::Borrowed(p)) if !p.is_empty() => p,
                Some(Cow::Owned(p)) if !p.is_empty() => return self.lookup(vars, &p).await,
                // Empty or missing: an unauthenticated bind would succeed.
                _ => return Ok(Outcome::Deny),
            };
            self.lookup(vars, password).await
        })
    }
}

/// A rustls client config trusting the PEM certificates in `ca_file`, or without one the
/// Mozilla roots (`webpki-roots`, as the rest of Roost).
fn client_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let Some(path) = ca_file else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return finish(roots);
    };
    finish(roost_core::pem::root_store(path)?)
}

fn finish(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
