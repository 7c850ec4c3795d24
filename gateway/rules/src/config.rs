//! `[[rule]]` (config file) and the JSON of `/api/v1/rules`: one rule, its SQL and its
//! actions. Every field but `id`, `sql` and an action's `type` and target has a default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sql::{ParseError, Statement};
use crate::template::Template;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique; `[A-Za-z0-9_-]`, 1 to 64 characters.
    pub id: String,
    pub sql: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
    /// `[[rule.action]]` in TOML.
    #[serde(default, alias = "action")]
    pub actions: Vec<ActionConfig>,
}

fn yes() -> bool {
    true
}

/// One action of a rule: where its output goes, and how hard to try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionConfig {
    #[serde(flatten)]
    pub kind: ActionKind,
    /// Outputs waiting for this action at most; beyond it they are dropped (counted).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Outputs written per batch at most (HTTP: per request body array when > 1).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Further attempts after a failed write, then the batch is dropped (counted).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First retry wait in milliseconds, doubled per retry up to 5 s.
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
}

fn default_queue() -> usize {
    10_000
}
fn default_batch() -> usize {
    100
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> u64 {
    200
}

/// The kinds of action. Kafka and MongoDB would be more variants here and more
/// [`crate::action::Sink`]s (no server for them can run in the tests yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionKind {
    /// Publishes the output to the broker.
    Republish {
        topic: String,
        /// Default `${.}`: the whole output as JSON.
        #[serde(default = "whole")]
        payload: String,
        #[serde(default)]
        qos: u8,
        #[serde(default)]
        retain: bool,
        #[serde(default)]
        user_properties: BTreeMap<String, String>,
    },
    /// Writes the output to the log (info level).
    Log {},
    /// An HTTP(S) request per batch.
    Http {
        url: String,
        #[serde(default = "post")]
        method: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Default `${.}`; with `batch_size` > 1 the bodies are sent as a JSON array.
        #[serde(default = "whole")]
        body: String,
        /// PEM CA certificates to trust besides the public roots (for a private CA).
        #[serde(default)]
        ca_file: Option<PathBuf>,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
    /// Rows in a local SQLite file: the edge buffer.
    Sqlite {
        path: PathBuf,
        /// Run once at open, e.g. `CREATE TABLE IF NOT EXISTS ...`.
        #[serde(default)]
        init_sql: Option<String>,
        /// `INSERT ...` with `${field}` placeholders (bound as parameters).
        sql: String,
        /// The table retention applies to.
        #[serde(default)]
        table: Option<String>,
        /// Keep the newest rows only (0: no limit).
        #[serde(default)]
        max_rows: u64,
        /// Drop rows whose `time_column` (Unix milliseconds) is older (0: no limit).
        #[serde(default)]
        max_age_secs: u64,
        #[serde(default)]
        time_column: Option<String>,
    },
    /// Rows in PostgreSQL (tokio-postgres; no TLS: loopback or a trusted network).
    Postgres {
        /// libpq style: `host=/run/postgresql port=5432 user=roost dbname=iot`.
        conninfo: String,
        #[serde(default)]
        init_sql: Option<String>,
        sql: String,
    },
    /// Rows in MySQL or MariaDB (mysql_async pool; no TLS: loopback or a trusted network).
    Mysql {
        /// `mysql://user:password@host:3306/database`.
        url: String,
        #[serde(default)]
        init_sql: Option<String>,
        /// `INSERT ...` with `${field}` placeholders (bound as `?` parameters).
        sql: String,
        /// Connections kept at most.
        #[serde(default = "default_pool")]
        pool_size: usize,
    },
    /// One Redis command per output, a batch in one `MULTI`/`EXEC` (no TLS).
    Redis {
        /// `redis://[:password@]host:6379[/db]`.
        url: String,
        /// Whitespace-separated arguments, each a template: `HSET dev:${clientid} t ${t}`.
        command: String,
    },
    /// AMQP 0-9-1 publish (RabbitMQ) to an exchange, with publisher confirms.
    Rabbitmq {
        #[serde(default = "localhost")]
        host: String,
        #[serde(default = "amqp_port")]
        port: u16,
        #[serde(default = "guest")]
        username: String,
        #[serde(default = "guest")]
        password: String,
        #[serde(default = "root_vhost")]
        virtual_host: String,
        /// `""` is the default exchange (the routing key names a queue).
        exchange: String,
        /// Declared (durable) at connect when set: `direct`, `topic`, `fanout` or `headers`.
        #[serde(default)]
        exchange_type: Option<String>,
        routing_key: String,
        #[serde(default = "whole")]
        payload: String,
        /// Delivery mode 2 (persistent) rather than 1.
        #[serde(default = "yes")]
        persistent: bool,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
    /// Points in InfluxDB, line protocol over HTTP(S): v1 `/write?db=` when `database` is
    /// set, v2 `/api/v2/write?org=&bucket=` when `bucket` is.
    Influxdb {
        /// The server: `http://127.0.0.1:8086`.
        url: String,
        #[serde(default)]
        database: Option<String>,
        #[serde(default)]
        org: Option<String>,
        #[serde(default)]
        bucket: Option<String>,
        /// v2: sent as `Authorization: Token ...`.
        #[serde(default)]
        token: Option<String>,
        /// v1: sent as HTTP basic authentication.
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        measurement: String,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        fields: BTreeMap<String, String>,
        /// An integer in `precision` units; default the write time (distinct per point).
        #[serde(default)]
        timestamp: Option<String>,
        /// `ns`, `us`, `ms` or `s`.
        #[serde(default = "default_precision")]
        precision: String,
        #[serde(default)]
        ca_file: Option<PathBuf>,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
}

fn default_pool() -> usize {
    4
}
fn localhost() -> String {
    "127.0.0.1".into()
}
fn amqp_port() -> u16 {
    5672
}
fn guest() -> String {
    "guest".into()
}
fn root_vhost() -> String {
    "/".into()
}
fn default_precision() -> String {
    "ms".into()
}

fn whole() -> String {
    "${.}".into()
}
fn post() -> String {
    "POST".into()
}
fn default_timeout() -> u64 {
    5_000
}

/// What is wrong with a rule, naming the field (`sql: line 1, column 8: ...`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("sql: {0}")]
    Sql(#[from] ParseError),
    #[error("{0}")]
    Field(String),
}

impl RuleConfig {
    /// Checks the rule: its id, SQL and every action's templates and limits.
    pub fn validate(&self) -> Result<Statement, ConfigError> {
        let ok_id = !self.id.is_empty()
            && self.id.len() <= 64
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_id {
            return Err(ConfigError::Field(format!("id: {:?} must be 1 to 64 of [A-Za-z0-9_-]", self.id)));
        }
        let st = crate::sql::parse(&self.sql)?;
        for (i, a) in self.actions.iter().enumerate() {
            a.validate().map_err(|e| ConfigError::Field(format!("action[{i}].{e}")))?;
        }
        Ok(st)
    }
}

impl ActionConfig {
    fn validate(&self) -> Result<(), String> {
        if self.queue == 0 || self.queue > 10_000_000 {
            return Err("queue: must be 1 to 10000000".into());
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err("batch_size: must be 1 to 10000".into());
        }
        let t = |field: &str, s: &str| Template::parse(s).map(|_| ()).map_err(|e| format!("{field}: {e}"));
        match &self.kind {
            ActionKind::Republish { topic, payload, qos, user_properties, .. } => {
                t("topic", topic)?;
                t("payload", payload)?;
                if *qos > 2 {
                    return Err("qos: must be 0, 1 or 2".into());
                }
                for (k, v) in user_properties {
                    t("user_properties", k)?;
                    t("user_properties", v)?;
                }
            }
            ActionKind::Log {} => {}
            ActionKind::Http { url, method, body, headers, .. } => {
                crate::action::http::Target::parse(url).map_err(|e| format!("url: {e}"))?;
                if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                    return Err(format!("method: {method:?} is not GET, POST, PUT, PATCH or DELETE"));
                }
                t("body", body)?;
                for v in headers.values() {
                    t("headers", v)?;
                }
            }
            ActionKind::Sqlite { sql, max_age_secs, time_column, table, max_rows, .. } => {
                t("sql", sql)?;
                if *max_age_secs > 0 && time_column.is_none() {
                    return Err("time_column: needed with max_age_secs".into());
                }
                if (*max_age_secs > 0 || *max_rows > 0) && table.is_none() {
                    return Err("table: needed with max_rows or max_age_secs".into());
                }
                for name in [table, time_column].into_iter().flatten() {
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(format!("{name:?} is not a plain SQL name"));
                    }
                }
            }
            ActionKind::Postgres { sql, conninfo, .. } => {
                t("sql", sql)?;
                conninfo.parse::<tokio_postgres::Config>().map_err(|e| format!("conninfo: {e}"))?;
            }
            ActionKind::Mysql { url, sql, pool_size, .. } => {
                t("sql", sql)?;
                mysql_async::Opts::from_url(url).map_err(|e| format!("url: {e}"))?;
                if *pool_size == 0 || *pool_size > 100 {
                    return Err("pool_size: must be 1 to 100".into());
                }
            }
            ActionKind::Redis { url, command } => {
                redis::Client::open(url.as_str()).map_err(|e| format!("url: {e}"))?;
                crate::action::redis::parse_command(command).map_err(|e| format!("command: {e}"))?;
            }
            ActionKind::Rabbitmq { routing_key, payload, exchange_type, .. } => {
                t("routing_key", routing_key)?;
                t("payload", payload)?;
                if let Some(ty) = exchange_type
                    && !["direct", "topic", "fanout", "headers"].contains(&ty.as_str())
                {
                    return Err(format!("exchange_type: {ty:?} is not direct, topic, fanout or headers"));
                }
            }
            ActionKind::Influxdb { .. } => crate::action::influxdb::validate(&self.kind)?,
        }
        Ok(())
    }
}
