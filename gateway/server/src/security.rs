//! The authentication chain built from `[auth]`.

use roost_core::auth::{AuthChain, AuthSource, Authenticator, ClientIdList, PasswordFile, VerifiedCertificate};

use crate::config::{AuthSourceKind, Settings};

/// The `[auth] chain` as an authenticator; `None` when the chain is empty (the core's
/// plain `allow_anonymous` policy then applies).
pub fn authenticator(settings: &Settings) -> anyhow::Result<Option<Box<dyn Authenticator>>> {
    let auth = &settings.auth;
    if auth.chain.is_empty() {
        return Ok(None);
    }
    let mut sources: Vec<Box<dyn AuthSource>> = Vec::new();
    for kind in &auth.chain {
        sources.push(match kind {
            AuthSourceKind::PasswordFile => {
                let Some(path) = &auth.password_file else { anyhow::bail!("auth.password_file: missing") };
                let file = PasswordFile::open(path).map_err(|e| anyhow::anyhow!("auth.password_file: {e}"))?;
                tracing::info!(file = %path.display(), users = file.len(), "users file loaded");
                Box::new(file)
            }
            AuthSourceKind::ClientIds => Box::new(ClientIdList::new(auth.client_ids.iter().cloned())),
            AuthSourceKind::Http => {
                let Some(http) = &auth.http else { anyhow::bail!("auth.http.url: missing") };
                Box::new(crate::auth_http::HttpAuth::new(http.clone())?)
            }
            AuthSourceKind::Certificate => Box::new(VerifiedCertificate),
        });
    }
    Ok(Some(Box::new(AuthChain { sources, allow_anonymous: settings.broker.allow_anonymous })))
}
