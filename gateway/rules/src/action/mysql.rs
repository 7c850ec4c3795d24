//! The MySQL / MariaDB action (mysql_async, no TLS: for loopback or a trusted network). The
//! insert template's `${field}`s become `?` parameters of a prepared statement, each JSON
//! value bound as the nearest MySQL value (integer, double, text; JSON objects as text); a
//! batch is one transaction. The pool reconnects by itself: a connection that failed is
//! dropped, the next write takes a new one, so a restarted server is picked up.

use mysql_async::prelude::Queryable as _;
use mysql_async::{Params, Pool, PoolConstraints, PoolOpts, TxOpts};
use serde_json::Value;

use super::{Output, Sink, SinkError};
use crate::config::ActionKind;
use crate::sql::Seg;
use crate::template::Template;

pub struct MysqlSink {
    pool: Pool,
    init_sql: Option<String>,
    initialised: bool,
    insert: String,
    vars: Vec<Vec<Seg>>,
}

impl MysqlSink {
    pub fn new(kind: &ActionKind) -> Result<MysqlSink, SinkError> {
        let ActionKind::Mysql { url, init_sql, sql, pool_size } = kind else {
            return Err(SinkError::new("not a mysql action"));
        };
        let (insert, vars) = Template::parse(sql).map_err(SinkError::new)?.sql(|_| "?".to_string());
        let constraints =
            PoolConstraints::new(0, *pool_size).ok_or_else(|| SinkError::new("pool_size: must be at least 1"))?;
        let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(url).map_err(SinkError::new)?)
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        // Pool::new connects lazily: a server that is down now fails the first write, not this.
        Ok(MysqlSink { pool: Pool::new(opts), init_sql: init_sql.clone(), initialised: false, insert, vars })
    }

    async fn write_batch(&mut self, batch: &[Output]) -> Result<(), mysql_async::Error> {
        let mut conn = self.pool.get_conn().await?;
        if !self.initialised {
            if let Some(init) = &self.init_sql {
                conn.query_drop(init).await?;
            }
            self.initialised = true;
        }
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        let params = batch.iter().map(|out| {
            Params::Positional(Template::values(&self.vars, out).into_iter().map(value).collect::<Vec<_>>())
        });
        tx.exec_batch(self.insert.as_str(), params).await?;
        tx.commit().await
    }
}

/// A JSON value as a MySQL value.
fn value(v: Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    match v {
        Value::Null => M::NULL,
        Value::Bool(b) => M::Int(i64::from(b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                M::Int(i)
            } else if let Some(u) = n.as_u64() {
                M::UInt(u)
            } else {
                M::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => M::Bytes(s.into_bytes()),
        v => M::Bytes(v.to_string().into_bytes()),
    }
}

#[async_trait::async_trait]
impl Sink for MysqlSink {
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError> {
        self.write_batch(batch).await.map_err(SinkError::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_bind_as_mysql_values() {
        use mysql_async::Value as M;
        assert_eq!(value(Value::from(3)), M::Int(3));
        assert_eq!(value(Value::from(u64::MAX)), M::UInt(u64::MAX));
        assert_eq!(value(Value::from(1.5)), M::Double(1.5));
        assert_eq!(value(Value::from(true)), M::Int(1));
        assert_eq!(value(Value::Null), M::NULL);
        assert_eq!(value(serde_json::json!({"a": 1})), M::Bytes(b"{\"a\":1}".to_vec()));
    }
}
