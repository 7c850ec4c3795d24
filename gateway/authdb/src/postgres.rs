//! `"postgresql"`: EMQX's PostgreSQL authenticator and authorization source over
//! `tokio-postgres` (plain TCP). Up to `pool_size` connections, each pipelining queries,
//! opened on first use and replaced when closed. Queries are prepared with the template's
//! placeholders as `$n` parameters.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use roost_core::auth::{AclRule, BoxFuture};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::BackendError;
use crate::acl::AclBackend;
use crate::settings::SqlSettings;
use crate::source::{Backend, Outcome, judge, truthy};
use crate::template::{ParamStyle, Var, Vars};

pub struct Postgres {
    settings: SqlSettings,
    config: tokio_postgres::Config,
    query: (String, Vec<Var>),
    acl_query: Option<(String, Vec<Var>)>,
    slots: Vec<tokio::sync::Mutex<Option<Arc<tokio_postgres::Client>>>>,
    next: AtomicUsize,
}

impl Postgres {
    /// `acl_query`: `[acl.postgresql] query`, if PostgreSQL is an ACL source too.
    pub fn new(settings: SqlSettings, acl_query: Option<crate::template::Template>) -> Result<Postgres, String> {
        let (host, port) = crate::split_server(&settings.server, 5432)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(&settings.username)
            .dbname(&settings.database)
            .connect_timeout(settings.common.timeout)
            .application_name("roost");
        if !settings.password.is_empty() {
            config.password(&settings.password);
        }
        let slots = (0..settings.common.pool_size.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect();
        Ok(Postgres {
            query: settings.query.sql(ParamStyle::Numbered),
            acl_query: acl_query.map(|q| q.sql(ParamStyle::Numbered)),
            settings,
            config,
            slots,
            next: AtomicUsize::new(0),
        })
    }

    async fn client(&self) -> Result<Arc<tokio_postgres::Client>, BackendError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let (client, conn) = self.config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "auth postgresql connection closed");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn rows(&self, (sql, vars): &(String, Vec<Var>), values: &Vars) -> Result<Vec<Row>, BackendError> {
        let bound = values.bind(vars);
        let params: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let client = self.client().await?;
        Ok(client.query(sql.as_str(), &params).await?)
    }
}

/// A text column (text, varchar, bytea read as UTF-8); `None` if absent or NULL.
fn text(row: &Row, name: &str) -> Option<String> {
    row.try_get::<_, Option<String>>(name)
        .ok()
        .flatten()
        .or_else(|| row.try_get::<_, Option<Vec<u8>>>(name).ok().flatten().map(|b| String::from_utf8_lossy(&b).into()))
}

fn flag(row: &Row, name: &str) -> bool {
    if let Ok(Some(b)) = row.try_get::<_, Option<bool>>(name) {
        return b;
    }
    let number = row
        .try_get::<_, Option<i16>>(name)
        .ok()
        .flatten()
        .map(i64::from)
        .or_else(|| row.try_get::<_, Option<i32>>(name).ok().flatten().map(i64::from))
        .or_else(|| row.try_get::<_, Option<i64>>(name).ok().flatten());
    if let Some(n) = number {
        return n != 0;
    }
    text(row, name).is_some_and(|t| truthy(&t))
}

impl Backend for Postgres {
    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn check<'a>(&'a self, vars: &'a Vars, password: Option<&'a [u8]>) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        Box::pin(async move {
            let rows = self.rows(&self.query, vars).await?;
            let Some(row) = rows.first() else { return Ok(Outcome::NotFound) };
            let hash = text(row, "password_hash");
            let salt = text(row, "salt");
            Ok(judge(
                self.settings.hash,
                password,
                hash.as_deref(),
                salt.as_deref().map(str::as_bytes),
                flag(row, "is_superuser"),
            ))
        })
    }
}

impl AclBackend for Postgres {
    fn kind(&self) -> &'static str {
        "postgresql_acl"
    }

    fn rules<'a>(&'a self, vars: &'a Vars) -> BoxFuture<'a, Result<Vec<AclRule>, BackendError>> {
        Box::pin(async move {
            let Some(q) = &self.acl_query else { return Ok(Vec::new()) };
            let rows = self.rows(q, vars).await?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let (p, a, t) = (text(r, "permission")?, text(r, "action")?, text(r, "topic")?);
                    crate::acl::rule(&p, &a, &t)
                })
                .collect())
        })
    }
}
