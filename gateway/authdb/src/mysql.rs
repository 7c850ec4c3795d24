//! `"mysql"`: EMQX's MySQL authenticator and authorization source (MySQL or MariaDB) over
//! `mysql_async` (plain TCP). Its pool holds up to `pool_size` connections; queries are
//! server-side prepared statements with the template's placeholders as `?` parameters.

use mysql_async::prelude::Queryable;
use mysql_async::{Params, Row, Value};
use roost_core::auth::BoxFuture;

use crate::BackendError;
use crate::settings::SqlSettings;
use crate::source::truthy;
use crate::sql::{Query, SqlClient};
use crate::template::{ParamStyle, Var, Vars};

pub struct Mysql {
    settings: SqlSettings,
    pool: mysql_async::Pool,
    query: (String, Vec<Var>),
    acl_query: Option<(String, Vec<Var>)>,
}

impl Mysql {
    /// `acl_query`: `[acl.mysql] query`, if MySQL is an ACL source too.
    pub fn new(settings: SqlSettings, acl_query: Option<crate::template::Template>) -> Result<Mysql, String> {
        let (host, port) = crate::split_server(&settings.server, 3306)?;
        let size = settings.common.pool_size.max(1);
        let constraints = mysql_async::PoolConstraints::new(0, size).ok_or("pool_size: out of range")?;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(settings.username.clone()))
            .pass((!settings.password.is_empty()).then(|| settings.password.clone()))
            .db_name((!settings.database.is_empty()).then(|| settings.database.clone()))
            .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints));
        Ok(Mysql {
            pool: mysql_async::Pool::new(opts),
            query: settings.query.sql(ParamStyle::Question),
            acl_query: acl_query.map(|q| q.sql(ParamStyle::Question)),
            settings,
        })
    }

    async fn query(&self, (sql, vars): &(String, Vec<Var>), values: &Vars) -> Result<Vec<Row>, BackendError> {
        let params: Vec<Value> =
            values.bind(vars).into_iter().map(|v| v.map_or(Value::NULL, |s| Value::Bytes(s.into_bytes()))).collect();
        let mut conn = self.pool.get_conn().await?;
        let params = if params.is_empty() { Params::Empty } else { Params::Positional(params) };
        Ok(conn.exec(sql.as_str(), params).await?)
    }
}

fn value<'r>(row: &'r Row, name: &str) -> Option<&'r Value> {
    let i = row.columns_ref().iter().position(|c| c.name_str().eq_ignore_ascii_case(name))?;
    row.as_ref(i)
}

fn text(row: &Row, name: &str) -> Option<String> {
    match value(row, name)? {
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        _ => None,
    }
}

fn flag(row: &Row, name: &str) -> bool {
    match value(row, name) {
        Some(Value::Int(n)) => *n != 0,
        Some(Value::UInt(n)) => *n != 0,
        Some(Value::Bytes(b)) => truthy(&String::from_utf8_lossy(b)),
        _ => false,
    }
}

impl SqlClient for Mysql {
    type Row = Row;
    const KIND: &'static str = "mysql";
    const ACL_KIND: &'static str = "mysql_acl";

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
