//! The validated settings of the database and directory sources (`[auth.postgresql]`,
//! `[auth.mysql]`, `[auth.redis]`, `[auth.ldap]`, `[acl.*]`); the server's config module
//! reads and checks the TOML and builds these.

use std::path::PathBuf;
use std::time::Duration;

use crate::template::Template;

/// What a source does when its backend fails or does not answer within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Refuse the client (auth: CONNACK "not authorized"; ACL: deny everything the file
    /// rules do not allow).
    Deny,
    /// Not this source's client: ask the next source.
    Ignore,
}

/// Where the salt goes relative to the password before hashing (EMQX `salt_position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltPosition {
    Prefix,
    Suffix,
    Disable,
}

/// The PRF of PBKDF2 (EMQX `mac_fun`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mac {
    Sha,
    Sha256,
    Sha384,
    Sha512,
}

/// EMQX `password_hash_algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Plain(SaltPosition),
    Md5(SaltPosition),
    Sha(SaltPosition),
    Sha256(SaltPosition),
    Sha512(SaltPosition),
    /// The stored hash carries its own salt and cost (`$2b$12$...`).
    Bcrypt,
    /// `dk_length` `None`: the MAC's output length.
    Pbkdf2 {
        mac: Mac,
        iterations: u32,
        dk_length: Option<u32>,
    },
}

/// What every source has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// A whole lookup (connecting included) at most.
    pub timeout: Duration,
    /// How long an allow or deny is remembered (0: not at all). Backend errors never are.
    pub cache_ttl: Duration,
    pub on_error: OnError,
    /// Connections to the backend at most.
    pub pool_size: usize,
}

/// `[auth.postgresql]` and `[auth.mysql]` (with `[acl.postgresql|mysql] query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSettings {
    /// `host:port`.
    pub server: String,
    pub database: String,
    pub username: String,
    pub password: String,
    /// Returns `password_hash`, `salt`, `is_superuser` (the last two optional).
    pub query: Template,
    pub hash: HashAlgorithm,
    pub common: Common,
}

/// `[auth.redis]` (with `[acl.redis] cmd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `host:port`.
    pub server: String,
    pub database: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `HMGET key field...` or `HGET key field`, e.g.
    /// `HMGET mqtt_user:${username} password_hash salt is_superuser`.
    pub cmd: Vec<Template>,
    pub hash: HashAlgorithm,
    pub common: Common,
}

/// `[auth.ldap]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSettings {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// `starttls`: upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// PEM CA certificates that the directory's certificate must chain to (TLS); without:
    /// the system's.
    pub ca_file: Option<PathBuf>,
    /// Bind as the user directly, e.g. `uid=${username},ou=users,dc=example,dc=org`
    /// (values DN-escaped). `None`: search then bind.
    pub bind_dn_template: Option<Template>,
    /// The account that searches (`None`: anonymous search).
    pub bind_dn: Option<String>,
    pub bind_password: String,
    pub base_dn: String,
    /// e.g. `(&(objectClass=inetOrgPerson)(uid=${username}))` (values filter-escaped).
    pub filter: Template,
    /// An attribute whose value `TRUE`/`true`/`1` makes the user a superuser.
    pub is_superuser_attribute: Option<String>,
    pub common: Common,
}
