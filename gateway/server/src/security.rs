//! The authentication chain built from `[auth]`, the ACL from `[acl]`, and the database and
//! directory sources (`roost-authdb`) they name, with their counters.

use std::sync::Arc;

use roost_authdb::acl::AclSource;
use roost_authdb::{AclSources, DbAuth, Metrics, WithAcl};
use roost_core::auth::{
    Acl, AuthChain, AuthSource, Authenticator, Authorizer, ClientIdList, PasswordFile, VerifiedCertificate,
};

use crate::config::{AclSourceSettings, AuthSourceKind, Settings};

/// The configured authenticator and, when database sources are used, their counters.
pub struct Security {
    pub authenticator: Option<Box<dyn Authenticator>>,
    pub backend_metrics: Option<Arc<Metrics>>,
}

/// The backends named by the config, built once and shared by auth and ACL.
#[derive(Default)]
struct Backends {
    postgresql: Option<Arc<roost_authdb::postgres::Postgres>>,
    mysql: Option<Arc<roost_authdb::mysql::Mysql>>,
    redis: Option<Arc<roost_authdb::redis::Redis>>,
}

/// The `[auth] chain` as an authenticator (`None` when the chain is empty and no `[acl]
/// sources` are set: the core's plain `allow_anonymous` policy then applies).
pub fn authenticator(settings: &Settings) -> anyhow::Result<Security> {
    let auth = &settings.auth;
    let db = &auth.databases;
    if auth.chain.is_empty() && db.acl.is_empty() {
        return Ok(Security { authenticator: None, backend_metrics: None });
    }
    let acl_query = |want: fn(&AclSourceSettings) -> bool| db.acl.iter().find(|a| want(a)).cloned();
    let mut backends = Backends::default();
    if let Some(s) = &db.postgresql {
        let q = acl_query(|a| matches!(a, AclSourceSettings::Postgresql(_)));
        let q = q.and_then(|a| if let AclSourceSettings::Postgresql(t) = a { Some(t) } else { None });
        let pg =
            roost_authdb::postgres::Postgres::new(s.clone(), q).map_err(|e| anyhow::anyhow!("auth.postgresql: {e}"))?;
        backends.postgresql = Some(Arc::new(pg));
    }
    if let Some(s) = &db.mysql {
        let q = acl_query(|a| matches!(a, AclSourceSettings::Mysql(_)));
        let q = q.and_then(|a| if let AclSourceSettings::Mysql(t) = a { Some(t) } else { None });
        let my = roost_authdb::mysql::Mysql::new(s.clone(), q).map_err(|e| anyhow::anyhow!("auth.mysql: {e}"))?;
        backends.mysql = Some(Arc::new(my));
    }
    if let Some(s) = &db.redis {
        let c = acl_query(|a| matches!(a, AclSourceSettings::Redis(_)));
        let c = c.and_then(|a| if let AclSourceSettings::Redis(t) = a { Some(t) } else { None });
        let r = roost_authdb::redis::Redis::new(s.clone(), c).map_err(|e| anyhow::anyhow!("auth.redis: {e}"))?;
        backends.redis = Some(Arc::new(r));
    }
    let metrics = Arc::new(Metrics::default());
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
            AuthSourceKind::Jwt => {
                let Some(jwt) = &db.jwt else { anyhow::bail!("auth.jwt: missing") };
                let source = roost_authdb::jwt::JwtAuth::new(jwt.clone(), metrics.clone())
                    .map_err(|e| anyhow::anyhow!("auth.jwt: {e}"))?;
                Box::new(source)
            }
            AuthSourceKind::Postgresql | AuthSourceKind::Mysql | AuthSourceKind::Redis | AuthSourceKind::Ldap => {
                db_source(*kind, settings, &backends, &metrics)?
            }
        });
    }
    let chain = Box::new(AuthChain { sources, allow_anonymous: settings.broker.allow_anonymous });
    let uses_db =
        db.postgresql.is_some() || db.mysql.is_some() || db.redis.is_some() || db.ldap.is_some() || db.jwt.is_some();
    if db.acl.is_empty() {
        return Ok(Security { authenticator: Some(chain), backend_metrics: uses_db.then_some(metrics) });
    }
    let mut acl = Vec::new();
    for a in &db.acl {
        let (backend, common) = match a {
            AclSourceSettings::Postgresql(_) => {
                (backend(&backends.postgresql, "postgresql")?, db.postgresql.as_ref().map(|s| &s.common))
            }
            AclSourceSettings::Mysql(_) => (backend(&backends.mysql, "mysql")?, db.mysql.as_ref().map(|s| &s.common)),
            AclSourceSettings::Redis(_) => (backend(&backends.redis, "redis")?, db.redis.as_ref().map(|s| &s.common)),
        };
        let common = common.ok_or_else(|| anyhow::anyhow!("acl.sources: {} has no connection", backend.kind()))?;
        acl.push(AclSource::new(backend, common.timeout, common.on_error));
    }
    let with_acl = WithAcl { inner: chain, acl: AclSources { sources: acl, metrics: metrics.clone() } };
    Ok(Security { authenticator: Some(Box::new(with_acl)), backend_metrics: Some(metrics) })
}

fn backend<T: roost_authdb::AclBackend + 'static>(
    b: &Option<Arc<T>>,
    name: &str,
) -> anyhow::Result<Arc<dyn roost_authdb::AclBackend>> {
    match b {
        Some(b) => Ok(b.clone()),
        None => anyhow::bail!("acl.sources: {name:?} needs [auth.{name}]"),
    }
}

fn db_source(
    kind: AuthSourceKind,
    settings: &Settings,
    backends: &Backends,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Box<dyn AuthSource>> {
    let db = &settings.auth.databases;
    let missing = |name: &str| anyhow::anyhow!("auth.{name}: missing");
    let (backend, common): (Arc<dyn roost_authdb::Backend>, _) = match kind {
        AuthSourceKind::Postgresql => (
            backends.postgresql.clone().ok_or_else(|| missing("postgresql"))?,
            db.postgresql.as_ref().map(|s| s.common.clone()),
        ),
        AuthSourceKind::Mysql => {
            (backends.mysql.clone().ok_or_else(|| missing("mysql"))?, db.mysql.as_ref().map(|s| s.common.clone()))
        }
        AuthSourceKind::Redis => {
            (backends.redis.clone().ok_or_else(|| missing("redis"))?, db.redis.as_ref().map(|s| s.common.clone()))
        }
        _ => {
            let s = db.ldap.clone().ok_or_else(|| missing("ldap"))?;
            let common = s.common.clone();
            let l = roost_authdb::ldap::Ldap::new(s).map_err(|e| anyhow::anyhow!("auth.ldap: {e}"))?;
            (Arc::new(l), Some(common))
        }
    };
    let common = common.ok_or_else(|| missing(backend.kind()))?;
    Ok(Box::new(DbAuth::new(backend, common, metrics.clone())))
}

/// The `[acl]` authorizer, if any.
pub fn authorizer(settings: &Settings) -> Option<Box<dyn Authorizer>> {
    settings.acl.clone().map(|a: Acl| Box::new(a) as Box<dyn Authorizer>)
}

/// `roost_auth_backend_total{source,result}` as a family of the registry that `/metrics`,
/// `$SYS` and the API read (entered as `auth`).
pub fn running(metrics: Arc<Metrics>) -> roost_adapter::Running {
    let family = roost_adapter::Family::new(
        "auth_backend",
        "Answers of the database and directory auth/ACL sources, by source and result",
        roost_adapter::Kind::Counter,
        vec!["source", "result"],
        move || {
            metrics
                .samples()
                .into_iter()
                .map(|(source, result, value)| roost_adapter::Sample { labels: vec![source, result], value })
                .collect()
        },
    );
    roost_adapter::Running { metrics: vec![family], ..Default::default() }
}
