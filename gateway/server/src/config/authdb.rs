//! `[auth.postgresql]`, `[auth.mysql]`, `[auth.redis]`, `[auth.ldap]` and `[acl] sources`
//! with `[acl.postgresql|mysql|redis]`: as read and as validated into `roost_authdb`'s
//! settings. Names and defaults follow EMQX's authenticators and authorization sources.

use std::time::Duration;

use roost_authdb::settings::{
    Common, HashAlgorithm, LdapSettings, Mac, OnError, RedisSettings, SaltPosition, SqlSettings,
};
use roost_authdb::template::Template;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::ConfigDuration;
use super::schema::Int;

/// The database and directory sources, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbAuthSettings {
    pub postgresql: Option<SqlSettings>,
    pub mysql: Option<SqlSettings>,
    pub redis: Option<RedisSettings>,
    pub ldap: Option<LdapSettings>,
    /// `[auth.jwt]` (when the chain names `"jwt"`).
    pub jwt: Option<roost_authdb::jwt::JwtSettings>,
    /// `[acl] sources`, in order.
    pub acl: Vec<AclSourceSettings>,
}

/// One `[acl] sources` entry with its query (the connection is `[auth.NAME]`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclSourceSettings {
    Postgresql(Template),
    Mysql(Template),
    Redis(Vec<Template>),
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

/// `password_hash_algorithm = { name = "sha256", salt_position = "suffix" }` (EMQX's shape).
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct HashSection {
    pub name: String,
    pub salt_position: String,
    pub mac_fun: String,
    pub iterations: Int,
    /// 0: the MAC's output length.
    pub dk_length: Int,
}

impl Default for HashSection {
    fn default() -> Self {
        HashSection {
            name: "sha256".into(),
            salt_position: "suffix".into(),
            mac_fun: "sha256".into(),
            iterations: Int(4096),
            dk_length: Int(0),
        }
    }
}

/// `[auth.postgresql]` / `[auth.mysql]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct SqlSection {
    pub server: String,
    pub database: String,
    pub username: String,
    pub password: String,
    pub query: String,
    pub password_hash_algorithm: HashSection,
    pub pool_size: Int,
    pub timeout: ConfigDuration,
    pub cache_ttl: ConfigDuration,
    pub on_error: String,
}

impl Default for SqlSection {
    fn default() -> Self {
        SqlSection {
            server: String::new(),
            database: "mqtt".into(),
            username: "root".into(),
            password: String::new(),
            query: "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1"
                .into(),
            password_hash_algorithm: HashSection::default(),
            pool_size: Int(4),
            timeout: ConfigDuration(Duration::from_secs(5)),
            cache_ttl: ConfigDuration(Duration::from_secs(60)),
            on_error: "deny".into(),
        }
    }
}

/// `[auth.redis]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RedisSection {
    pub server: String,
    pub database: Int,
    pub username: String,
    pub password: String,
    pub cmd: String,
    pub password_hash_algorithm: HashSection,
    pub pool_size: Int,
    pub timeout: ConfigDuration,
    pub cache_ttl: ConfigDuration,
    pub on_error: String,
}

impl Default for RedisSection {
    fn default() -> Self {
        RedisSection {
            server: String::new(),
            database: Int(0),
            username: String::new(),
            password: String::new(),
            cmd: "HMGET mqtt_user:${username} password_hash salt is_superuser".into(),
            password_hash_algorithm: HashSection::default(),
            pool_size: Int(4),
            timeout: ConfigDuration(Duration::from_secs(5)),
            cache_ttl: ConfigDuration(Duration::from_secs(60)),
            on_error: "deny".into(),
        }
    }
}

/// `[auth.ldap]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct LdapSection {
    pub server: String,
    pub starttls: bool,
    pub ca_file: String,
    pub bind_dn_template: String,
    pub bind_dn: String,
    pub bind_password: String,
    pub base_dn: String,
    pub filter: String,
    pub is_superuser_attribute: String,
    pub pool_size: Int,
    pub timeout: ConfigDuration,
    pub cache_ttl: ConfigDuration,
    pub on_error: String,
}

impl Default for LdapSection {
    fn default() -> Self {
        LdapSection {
            server: String::new(),
            starttls: false,
            ca_file: String::new(),
            bind_dn_template: String::new(),
            bind_dn: String::new(),
            bind_password: String::new(),
            base_dn: String::new(),
            filter: "(&(objectClass=mqttUser)(uid=${username}))".into(),
            is_superuser_attribute: String::new(),
            pool_size: Int(4),
            timeout: ConfigDuration(Duration::from_secs(5)),
            cache_ttl: ConfigDuration(Duration::from_secs(60)),
            on_error: "deny".into(),
        }
    }
}

/// `[acl.postgresql]` / `[acl.mysql]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct AclSqlSection {
    pub query: String,
}

impl Default for AclSqlSection {
    fn default() -> Self {
        AclSqlSection { query: "SELECT permission, action, topic FROM mqtt_acl WHERE username = ${username}".into() }
    }
}

/// `[acl.redis]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct AclRedisSection {
    pub cmd: String,
}

impl Default for AclRedisSection {
    fn default() -> Self {
        AclRedisSection { cmd: "HGETALL mqtt_acl:${username}".into() }
    }
}

/// The sections as read (`None`: absent).
#[derive(Default)]
pub(super) struct DbSections {
    pub postgresql: Option<SqlSection>,
    pub mysql: Option<SqlSection>,
    pub redis: Option<RedisSection>,
    pub ldap: Option<LdapSection>,
    pub jwt: Option<super::jwt::JwtSection>,
    pub acl_sources: Vec<String>,
    pub acl_postgresql: Option<AclSqlSection>,
    pub acl_mysql: Option<AclSqlSection>,
    pub acl_redis: Option<AclRedisSection>,
}

/// Validates the sections; `chain` names the sources the chain uses (each needs its section).
pub(super) fn validate(chain: &[String], s: DbSections) -> Result<DbAuthSettings, ConfigError> {
    for name in ["postgresql", "mysql", "redis", "ldap"] {
        let present = match name {
            "postgresql" => s.postgresql.is_some(),
            "mysql" => s.mysql.is_some(),
            "redis" => s.redis.is_some(),
            _ => s.ldap.is_some(),
        };
        if chain.iter().any(|c| c == name) && !present {
            return Err(invalid(&format!("auth.{name}"), format!("missing: the chain names \"{name}\"")));
        }
    }
    let mut out = DbAuthSettings {
        postgresql: s.postgresql.map(|v| sql("auth.postgresql", v)).transpose()?,
        mysql: s.mysql.map(|v| sql("auth.mysql", v)).transpose()?,
        redis: s.redis.map(redis).transpose()?,
        ldap: s.ldap.map(ldap).transpose()?,
        jwt: super::jwt::validate(chain, s.jwt)?,
        acl: Vec::new(),
    };
    let (acl_pg, acl_my, acl_redis) = (s.acl_postgresql, s.acl_mysql, s.acl_redis);
    for (i, name) in s.acl_sources.iter().enumerate() {
        let key = format!("acl.sources[{i}]");
        let needs = |ok: bool| {
            if ok { Ok(()) } else { Err(invalid(&key, format!("{name:?} needs [auth.{name}] (its connection)"))) }
        };
        let source = match name.as_str() {
            "postgresql" => {
                needs(out.postgresql.is_some())?;
                let q = acl_pg.as_ref().map_or_else(|| AclSqlSection::default().query, |a| a.query.clone());
                AclSourceSettings::Postgresql(Template::parse_sql(&q).map_err(|e| invalid("acl.postgresql.query", e))?)
            }
            "mysql" => {
                needs(out.mysql.is_some())?;
                let q = acl_my.as_ref().map_or_else(|| AclSqlSection::default().query, |a| a.query.clone());
                AclSourceSettings::Mysql(Template::parse_sql(&q).map_err(|e| invalid("acl.mysql.query", e))?)
            }
            "redis" => {
                needs(out.redis.is_some())?;
                let c = acl_redis.as_ref().map_or_else(|| AclRedisSection::default().cmd, |a| a.cmd.clone());
                AclSourceSettings::Redis(command("acl.redis.cmd", &c, &["HGETALL"])?)
            }
            other => {
                return Err(invalid(
                    &key,
                    format!("{other:?} is not a source: \"postgresql\", \"mysql\" or \"redis\""),
                ));
            }
        };
        if out.acl.iter().any(|a| std::mem::discriminant(a) == std::mem::discriminant(&source)) {
            return Err(invalid(&key, format!("{name:?} is listed twice")));
        }
        out.acl.push(source);
    }
    Ok(out)
}

/// The fields every source section has.
struct CommonSection {
    pool_size: Int,
    timeout: ConfigDuration,
    cache_ttl: ConfigDuration,
    on_error: String,
}

macro_rules! common_of {
    ($s:expr) => {
        CommonSection { pool_size: $s.pool_size, timeout: $s.timeout, cache_ttl: $s.cache_ttl, on_error: $s.on_error }
    };
}

fn common(key: &str, c: CommonSection) -> Result<Common, ConfigError> {
    let on_error = match c.on_error.as_str() {
        "deny" => OnError::Deny,
        "ignore" => OnError::Ignore,
        other => return Err(invalid(&format!("{key}.on_error"), format!("{other:?} is not \"deny\" or \"ignore\""))),
    };
    if c.timeout.0.is_zero() {
        return Err(invalid(&format!("{key}.timeout"), "must be longer than 0"));
    }
    let pool_size = usize::try_from(c.pool_size.0)
        .ok()
        .filter(|n| (1..=1024).contains(n))
        .ok_or_else(|| invalid(&format!("{key}.pool_size"), format!("{} is out of range (1..=1024)", c.pool_size.0)))?;
    Ok(Common { timeout: c.timeout.0, cache_ttl: c.cache_ttl.0, on_error, pool_size })
}

fn hash(key: &str, h: HashSection) -> Result<HashAlgorithm, ConfigError> {
    let key = format!("{key}.password_hash_algorithm");
    let pos = match h.salt_position.as_str() {
        "prefix" => SaltPosition::Prefix,
        "suffix" => SaltPosition::Suffix,
        "disable" => SaltPosition::Disable,
        other => {
            return Err(invalid(
                &format!("{key}.salt_position"),
                format!("{other:?} is not \"prefix\", \"suffix\" or \"disable\""),
            ));
        }
    };
    Ok(match h.name.as_str() {
        "plain" => HashAlgorithm::Plain(pos),
        "md5" => HashAlgorithm::Md5(pos),
        "sha" => HashAlgorithm::Sha(pos),
        "sha256" => HashAlgorithm::Sha256(pos),
        "sha512" => HashAlgorithm::Sha512(pos),
        "bcrypt" => HashAlgorithm::Bcrypt,
        "pbkdf2" => {
            let mac = match h.mac_fun.as_str() {
                "sha" => Mac::Sha,
                "sha256" => Mac::Sha256,
                "sha384" => Mac::Sha384,
                "sha512" => Mac::Sha512,
                other => {
                    return Err(invalid(
                        &format!("{key}.mac_fun"),
                        format!("{other:?} is not \"sha\", \"sha256\", \"sha384\" or \"sha512\""),
                    ));
                }
            };
            let iterations = u32::try_from(h.iterations.0).ok().filter(|n| (1..=10_000_000).contains(n));
            let iterations =
                iterations.ok_or_else(|| invalid(&format!("{key}.iterations"), "out of range (1..=10000000)"))?;
            let dk = u32::try_from(h.dk_length.0).ok().filter(|n| *n <= 1024);
            let dk = dk.ok_or_else(|| invalid(&format!("{key}.dk_length"), "out of range (0..=1024)"))?;
            HashAlgorithm::Pbkdf2 { mac, iterations, dk_length: (dk > 0).then_some(dk) }
        }
        other => {
            return Err(invalid(
                &format!("{key}.name"),
                format!("{other:?} is not plain, md5, sha, sha256, sha512, bcrypt or pbkdf2"),
            ));
        }
    })
}

fn sql(key: &str, s: SqlSection) -> Result<SqlSettings, ConfigError> {
    roost_authdb::split_server(&s.server, 0).map_err(|e| invalid(&format!("{key}.server"), e))?;
    Ok(SqlSettings {
        query: Template::parse_sql(&s.query).map_err(|e| invalid(&format!("{key}.query"), e))?,
        hash: hash(key, s.password_hash_algorithm)?,
        common: common(key, common_of!(s))?,
        server: s.server,
        database: s.database,
        username: s.username,
        password: s.password,
    })
}

/// A Redis command template: words, the first one of `allowed`.
fn command(key: &str, text: &str, allowed: &[&str]) -> Result<Vec<Template>, ConfigError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let first = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    if !allowed.contains(&first.as_str()) || words.len() < 2 {
        return Err(invalid(key, format!("{text:?}: the command must be {} with a key", allowed.join(" or "))));
    }
    words.iter().map(|w| Template::parse(w).map_err(|e| invalid(key, e))).collect()
}

fn redis(s: RedisSection) -> Result<RedisSettings, ConfigError> {
    roost_authdb::split_server(&s.server, 0).map_err(|e| invalid("auth.redis.server", e))?;
    let cmd = command("auth.redis.cmd", &s.cmd, &["HMGET", "HGET"])?;
    if cmd.len() < 3 {
        return Err(invalid("auth.redis.cmd", "name the fields to read, e.g. password_hash salt is_superuser"));
    }
    Ok(RedisSettings {
        server: s.server,
        database: s.database.0,
        username: (!s.username.is_empty()).then_some(s.username),
        password: (!s.password.is_empty()).then_some(s.password),
        cmd,
        hash: hash("auth.redis", s.password_hash_algorithm)?,
        common: common("auth.redis", common_of!(s))?,
    })
}

fn ldap(s: LdapSection) -> Result<LdapSettings, ConfigError> {
    if !(s.server.starts_with("ldap://") || s.server.starts_with("ldaps://")) {
        return Err(invalid("auth.ldap.server", format!("{:?} must be an ldap:// or ldaps:// URL", s.server)));
    }
    if s.bind_dn_template.is_empty() && s.base_dn.is_empty() {
        return Err(invalid("auth.ldap.base_dn", "missing: where to search for users (or set bind_dn_template)"));
    }
    let template = |key: &str, t: &str| Template::parse(t).map_err(|e| invalid(key, e));
    let c = common("auth.ldap", common_of!(s))?;
    Ok(LdapSettings {
        bind_dn_template: match s.bind_dn_template.as_str() {
            "" => None,
            t => Some(template("auth.ldap.bind_dn_template", t)?),
        },
        filter: template("auth.ldap.filter", &s.filter)?,
        url: s.server,
        starttls: s.starttls,
        ca_file: (!s.ca_file.is_empty()).then(|| s.ca_file.into()),
        bind_dn: (!s.bind_dn.is_empty()).then_some(s.bind_dn),
        bind_password: s.bind_password,
        base_dn: s.base_dn,
        is_superuser_attribute: (!s.is_superuser_attribute.is_empty()).then_some(s.is_superuser_attribute),
        common: c,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{AclSourceSettings, AuthSourceKind, parse};

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn database_sources_and_their_errors() {
        let s = parse(
            "[auth]\nchain = [\"postgresql\", \"redis\", \"ldap\"]\n[auth.postgresql]\nserver = \"db:5433\"\n\
             [auth.redis]\nserver = \"127.0.0.1\"\n[auth.ldap]\nserver = \"ldaps://dir\"\nbase_dn = \"dc=x\"\n\
             [acl]\nsources = [\"redis\", \"postgresql\"]\n",
        )
        .unwrap();
        assert_eq!(s.auth.chain, vec![AuthSourceKind::Postgresql, AuthSourceKind::Redis, AuthSourceKind::Ldap]);
        let db = &s.auth.databases;
        assert_eq!(db.postgresql.as_ref().unwrap().common.pool_size, 4);
        assert!(matches!(db.acl[..], [AclSourceSettings::Redis(_), AclSourceSettings::Postgresql(_)]));
        // With ACL sources the authorizer exists even without rules.
        assert!(s.acl.is_some());

        assert!(error("[auth]\nchain = [\"mysql\"]\n").contains("auth.mysql"));
        let quoted =
            "[auth]\nchain = [\"mysql\"]\n[auth.mysql]\nserver = \"h\"\nquery = \"SELECT 1 WHERE u = '${username}'\"\n";
        assert!(error(quoted).contains("auth.mysql.query"));
        let unknown = "[auth]\nchain = [\"mysql\"]\n[auth.mysql]\nserver = \"h\"\nquery = \"SELECT ${password}\"\n";
        assert!(error(unknown).contains("not a placeholder"));
        let bad_hash =
            "[auth]\nchain = [\"redis\"]\n[auth.redis]\nserver = \"h\"\npassword_hash_algorithm = { name = \"md4\" }\n";
        assert!(error(bad_hash).contains("password_hash_algorithm.name"));
        let cmd = "[auth]\nchain = [\"redis\"]\n[auth.redis]\nserver = \"h\"\ncmd = \"GET mqtt_user:${username}\"\n";
        assert!(error(cmd).contains("auth.redis.cmd"));
        let on_error = "[auth]\nchain = [\"redis\"]\n[auth.redis]\nserver = \"h\"\non_error = \"allow\"\n";
        assert!(error(on_error).contains("auth.redis.on_error"));
        assert!(error("[acl]\nsources = [\"postgresql\"]\n").contains("acl.sources[0]"));
        assert!(error("[auth]\nchain = [\"ldap\"]\n[auth.ldap]\nserver = \"http://x\"\n").contains("auth.ldap.server"));
    }
}
