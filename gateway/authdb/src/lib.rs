//! Authentication and ACL sources backed by the user's own databases and directory, as
//! EMQX names and shapes them, so its users' tables, keys and queries work unchanged:
//! `[auth] chain` sources `"postgresql"`, `"mysql"`, `"redis"`, `"ldap"`, and `[acl] sources`
//! `"postgresql"`, `"mysql"`, `"redis"` (docs/security.md).
//!
//! - [`settings`]: the validated configuration of each source
//! - [`template`]: `${username}`-style placeholders, bound as parameters, never interpolated
//! - [`hash`]: EMQX's password hash algorithms (plain, md5, sha, sha256, sha512, bcrypt, pbkdf2)
//! - [`postgres`], [`mysql`], [`redis`], [`ldap`]: one backend each (a small pool, timeouts)
//! - [`source`]: a backend as an [`AuthSource`](roost_core::auth::AuthSource): the answer
//!   cache, the timeout, `on_error`, counters and rate-limited error logs
//! - [`jwt`]: `"jwt"` in the chain: JSON Web Tokens (HS256, RS256, ES256; JWK Set files)
//! - [`acl`]: ACL rows loaded at connect into the client's [`Grants`](roost_core::auth::Grants)
//! - [`metrics`]: the counters of `roost_auth_backend_total` (by source and result)
//!
//! A backend that is down or slow never holds the accept loop: every lookup runs in the
//! connecting client's own task and is bounded by the source's `timeout`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod acl;
pub mod hash;
pub mod jwt;
pub mod ldap;
pub mod metrics;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod settings;
pub mod source;
pub mod sql;
pub mod template;

pub use acl::{AclBackend, AclSources, WithAcl};
pub use metrics::Metrics;
pub use source::{Backend, DbAuth, Outcome};

/// What went wrong talking to a backend (its message is logged, never sent to a client).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("{0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("{0}")]
    Ldap(#[from] ldap3::LdapError),
    #[error("{0}")]
    Other(String),
}

/// `host:port` (or `host`, with the backend's default port; `[v6]:port`).
pub fn split_server(server: &str, default_port: u16) -> Result<(String, u16), String> {
    let s = server.trim();
    if s.is_empty() {
        return Err("missing: the backend's host:port".into());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("{s:?}: \"[\" without \"]\""))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("{s:?}: {p:?} is not a port"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("{s:?} is not host:port")),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') => {
            Ok((host.to_string(), p.parse().map_err(|_| format!("{s:?}: {p:?} is not a port"))?))
        }
        _ => Ok((s.to_string(), default_port)),
    }
}
