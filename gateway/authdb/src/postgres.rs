//! `"postgresql"`: EMQX's PostgreSQL authenticator and authorization source over
//! `tokio-postgres` (plain TCP). Up to `pool_size` connections, each pipelining queries,
//! opened on first use and replaced when closed. Queries are prepared with the template's
//! placeholders as `$n` parameters.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use roost_core::auth::BoxFuture;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::BackendError;
use crate::settings::SqlSettings;
use crate::source::truthy;
use crate::sql::{Query, SqlClient};
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

    async fn query(&self, (sql, vars): &(String, Vec<Var>), values: &Vars) -> Result<Vec<Row>, BackendError> {
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

impl SqlClient for Postgres {
    type Row = Row;
    const KIND: &'static str = "postgresql";
    const ACL_KIND: &'static str = "postgresql_acl";

    fn settings(&self) -> &SqlSettings {
        &self.settings
    }

    fn queries(&self) -> (&Query, Option<&Query>) {
        (&self.query, self.acl_query.as_ref())
    }

    fn rows<'a>(&'a self, query: &'a Query, values: &'a Vars) -> BoxFuture<'a, Result<Vec<Row>, BackendError>> {
        Box::pin(self.query(query, values))
    }

    fn text(row: &Row, name: &str) -> Option<String> {
        text(row, name)
    }

    fn flag(row: &Row, name: &str) -> bool {
        flag(row, name)
    }
}
