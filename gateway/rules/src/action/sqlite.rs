//! The SQLite action: rows in a local file (rusqlite, SQLite compiled in), the edge buffer.
//! Each batch is one transaction; after it, retention keeps the newest `max_rows` rows of
//! `table` and drops rows older than `max_age_secs` by `time_column` (Unix milliseconds).
//! SQLite is blocking, so writes run on tokio's blocking pool.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::types::Value as Sql;
use serde_json::Value;

use super::{Output, Sink, SinkError};
use crate::config::ActionKind;
use crate::sql::Seg;
use crate::template::Template;

pub struct SqliteSink {
    path: PathBuf,
    init_sql: Option<String>,
    insert: String,
    vars: Vec<Vec<Seg>>,
    retention: Option<String>,
    conn: Option<Arc<Mutex<rusqlite::Connection>>>,
}

impl SqliteSink {
    pub fn new(kind: &ActionKind) -> Result<SqliteSink, SinkError> {
        let ActionKind::Sqlite { path, init_sql, sql, table, max_rows, max_age_secs, time_column } = kind else {
            return Err(SinkError::new("not a sqlite action"));
        };
        let (insert, vars) = Template::parse(sql).map_err(SinkError::new)?.sql(|n| format!("?{n}"));
        // Names were checked to be plain identifiers when the config was validated.
        let mut deletes = Vec::new();
        if let (Some(t), true) = (table, *max_rows > 0) {
            deletes.push(format!("DELETE FROM {t} WHERE rowid <= (SELECT max(rowid) FROM {t}) - {max_rows}"));
        }
        if let (Some(t), Some(c), true) = (table, time_column, *max_age_secs > 0) {
            deletes.push(format!(
                "DELETE FROM {t} WHERE {c} < (CAST(strftime('%s','now') AS INTEGER) - {max_age_secs}) * 1000"
            ));
        }
        Ok(SqliteSink {
            path: path.clone(),
            init_sql: init_sql.clone(),
            insert,
            vars,
            retention: if deletes.is_empty() { None } else { Some(deletes.join(";\n")) },
            conn: None,
        })
    }

    fn open(&self) -> Result<rusqlite::Connection, SinkError> {
        let c =
            rusqlite::Connection::open(&self.path).map_err(|e| SinkError(format!("{}: {e}", self.path.display())))?;
        // WAL: readers (`sqlite3`, a local dashboard) do not block the writer.
        c.pragma_update(None, "journal_mode", "WAL").map_err(SinkError::new)?;
        c.busy_timeout(std::time::Duration::from_secs(5)).map_err(SinkError::new)?;
        if let Some(init) = &self.init_sql {
            c.execute_batch(init).map_err(|e| SinkError(format!("init_sql: {e}")))?;
        }
        Ok(c)
    }
}

fn to_sql(v: Value) -> Sql {
    match v {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(b as i64),
        Value::Number(n) => n.as_i64().map_or_else(|| Sql::Real(n.as_f64().unwrap_or(0.0)), Sql::Integer),
        Value::String(s) => Sql::Text(s),
        v => Sql::Text(v.to_string()),
    }
}

#[async_trait::async_trait]
impl Sink for SqliteSink {
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError> {
        let conn = match &self.conn {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(Mutex::new(self.open()?));
                self.conn = Some(c.clone());
                c
            }
        };
        let rows: Vec<Vec<Sql>> =
            batch.iter().map(|o| Template::values(&self.vars, o).into_iter().map(to_sql).collect()).collect();
        let (insert, retention) = (self.insert.clone(), self.retention.clone());
        let r = tokio::task::spawn_blocking(move || -> Result<(), rusqlite::Error> {
            let mut c = conn.lock();
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(&insert)?;
                for row in &rows {
                    st.execute(rusqlite::params_from_iter(row.iter()))?;
                }
            }
            if let Some(r) = &retention {
                tx.execute_batch(r)?;
            }
            tx.commit()
        })
        .await
        .map_err(SinkError::new)?;
        if r.is_err() {
            // Reopen on the next attempt: the file may have been replaced or locked away.
            self.conn = None;
        }
        r.map_err(SinkError::new)
    }
}
