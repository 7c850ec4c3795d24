//! `"redis"`: EMQX's Redis authenticator and authorization source over the `redis` crate
//! (tokio, plain TCP). Auth: `HMGET mqtt_user:${username} password_hash salt is_superuser`
//! (or `HGET key password_hash`): the fields named in the command are read by name. ACL:
//! `HGETALL mqtt_acl:${username}`, a hash of topic => action (`publish`, `subscribe`,
//! `all`), every entry an allow as in EMQX. Each command argument is sent as its own bulk
//! string, so a client's value can never become another argument.
//! Up to `pool_size` multiplexed connections, opened on first use, dropped on error.

use std::sync::atomic::{AtomicUsize, Ordering};

use redis::Value;
use redis::aio::MultiplexedConnection;
use roost_core::auth::{AclRule, BoxFuture};

use crate::BackendError;
use crate::acl::AclBackend;
use crate::settings::RedisSettings;
use crate::source::{Backend, Outcome, judge, truthy};
use crate::template::{Template, Vars};

pub struct Redis {
    settings: RedisSettings,
    client: redis::Client,
    acl_cmd: Option<Vec<Template>>,
    slots: Vec<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
    next: AtomicUsize,
}

impl Redis {
    /// `acl_cmd`: `[acl.redis] cmd`, if Redis is an ACL source too.
    pub fn new(settings: RedisSettings, acl_cmd: Option<Vec<Template>>) -> Result<Redis, String> {
        let (host, port) = crate::split_server(&settings.server, 6379)?;
        let info = redis::ConnectionInfo {
            addr: redis::ConnectionAddr::Tcp(host, port),
            redis: redis::RedisConnectionInfo {
                db: settings.database,
                username: settings.username.clone(),
                password: settings.password.clone(),
                ..Default::default()
            },
        };
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let slots = (0..settings.common.pool_size.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect();
        Ok(Redis { settings, client, acl_cmd, slots, next: AtomicUsize::new(0) })
    }

    async fn run(&self, cmd: &[Template], vars: &Vars) -> Result<Value, BackendError> {
        let mut args = cmd.iter().map(|t| t.render(vars, crate::template::verbatim));
        let name = args.next().ok_or_else(|| BackendError::Other("empty command".into()))?;
        let mut c = redis::cmd(&name);
        for a in args {
            c.arg(a);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        let mut conn = match slot.as_ref() {
            Some(conn) => conn.clone(),
            None => {
                let conn = self.client.get_multiplexed_async_connection().await?;
                *slot = Some(conn.clone());
                conn
            }
        };
        drop(slot);
        match c.query_async::<Value>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                // A broken connection is replaced at the next lookup.
                *self.slots[i].lock().await = None;
                Err(e.into())
            }
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Backend for Redis {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn check<'a>(&'a self, vars: &'a Vars, password: Option<&'a [u8]>) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        Box::pin(async move {
            let value = self.run(&self.settings.cmd, vars).await?;
            // The field names are the command's arguments after the key.
            let fields: Vec<String> =
                self.settings.cmd.iter().skip(2).map(|t| t.render(vars, crate::template::verbatim)).collect();
            let values: Vec<Option<String>> = match &value {
                Value::Array(items) => items.iter().map(text).collect(),
                other => vec![text(other)],
            };
            let get = |name: &str| fields.iter().position(|f| f == name).and_then(|i| values.get(i).cloned().flatten());
            if values.iter().all(Option::is_none) {
                return Ok(Outcome::NotFound);
            }
            let (hash, salt) = (get("password_hash").or_else(|| get("password")), get("salt"));
            let superuser = get("is_superuser").is_some_and(|s| truthy(&s));
            Ok(judge(self.settings.hash, password, hash.as_deref(), salt.as_deref().map(str::as_bytes), superuser))
        })
    }
}

impl AclBackend for Redis {
    fn kind(&self) -> &'static str {
        "redis_acl"
    }

    fn rules<'a>(&'a self, vars: &'a Vars) -> BoxFuture<'a, Result<Vec<AclRule>, BackendError>> {
        Box::pin(async move {
            let Some(cmd) = &self.acl_cmd else { return Ok(Vec::new()) };
            let pairs: Vec<(String, String)> = match self.run(cmd, vars).await? {
                Value::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect(),
                Value::Array(items) => {
                    items.chunks(2).filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?)?))).collect()
                }
                _ => Vec::new(),
            };
            Ok(pairs.iter().filter_map(|(topic, action)| crate::acl::rule("allow", action, topic)).collect())
        })
    }
}
