//! A database or directory backend as a source of `[auth] chain`: answers are cached for
//! `cache_ttl` (keyed by a salted hash of the credentials: the password is never kept),
//! every lookup is bounded by `timeout`, and a failure answers as `on_error` says, is
//! counted and is logged at most once per interval.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use roost_core::auth::{AuthDecision, AuthSource, BoxFuture, Credentials, Verdict};

use crate::BackendError;
use crate::metrics::{ErrorLog, Metrics, Result as Counted};
use crate::settings::{Common, OnError};
use crate::template::Vars;

/// Cached answers at most per source.
const MAX_CACHED: usize = 10_000;

/// What a backend says of a client's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow {
        superuser: bool,
    },
    /// The user is known and the password is wrong (or missing).
    Deny,
    /// The user is not known here.
    NotFound,
}

/// A backend that checks credentials.
pub trait Backend: Send + Sync {
    /// The `source` label and log name: `postgresql`, `mysql`, `redis`, `ldap`.
    fn kind(&self) -> &'static str;
    fn check<'a>(&'a self, vars: &'a Vars, password: Option<&'a [u8]>) -> BoxFuture<'a, Result<Outcome, BackendError>>;
}

/// A [`Backend`] in the chain.
pub struct DbAuth {
    backend: Arc<dyn Backend>,
    common: Common,
    metrics: Arc<Metrics>,
    errors: ErrorLog,
    salt: std::collections::hash_map::RandomState,
    cache: Mutex<HashMap<u64, (Outcome, Instant)>>,
}

impl DbAuth {
    pub fn new(backend: Arc<dyn Backend>, common: Common, metrics: Arc<Metrics>) -> DbAuth {
        DbAuth {
            backend,
            common,
            metrics,
            errors: ErrorLog::default(),
            salt: Default::default(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, vars: &Vars, password: Option<&[u8]>) -> u64 {
        let mut h = self.salt.build_hasher();
        vars.hash(&mut h);
        password.hash(&mut h);
        h.finish()
    }

    fn cached(&self, key: u64) -> Option<Outcome> {
        let ttl = self.common.cache_ttl;
        let cache = self.cache.lock();
        cache.get(&key).filter(|(_, at)| !ttl.is_zero() && at.elapsed() < ttl).map(|(o, _)| *o)
    }

    fn remember(&self, key: u64, outcome: Outcome) {
        let ttl = self.common.cache_ttl;
        if ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        if cache.len() < MAX_CACHED {
            cache.insert(key, (outcome, Instant::now()));
        }
    }

    async fn lookup(&self, vars: &Vars, password: Option<&[u8]>) -> Option<Outcome> {
        let kind = self.backend.kind();
        match tokio::time::timeout(self.common.timeout, self.backend.check(vars, password)).await {
            Ok(Ok(outcome)) => Some(outcome),
            Ok(Err(e)) => {
                self.metrics.count(kind, Counted::Error);
                self.errors.error(kind, &e);
                None
            }
            Err(_) => {
                self.metrics.count(kind, Counted::Timeout);
                let e = format!("no answer within {:?}", self.common.timeout);
                self.errors.error(kind, &e);
                None
            }
        }
    }
}

impl AuthSource for DbAuth {
    fn name(&self) -> &str {
        self.backend.kind()
    }

    fn check<'a>(&'a self, creds: &'a Credentials<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let kind = self.backend.kind();
            let vars = Vars::of(creds);
            let password = creds.password.map(|p| &p[..]);
            let key = self.key(&vars, password);
            let outcome = match self.cached(key) {
                Some(o) => {
                    self.metrics.count(kind, Counted::Cached);
                    o
                }
                None => match self.lookup(&vars, password).await {
                    Some(o) => {
                        self.remember(key, o);
                        self.metrics.count(
                            kind,
                            match o {
                                Outcome::Allow { .. } => Counted::Allow,
                                Outcome::Deny => Counted::Deny,
                                Outcome::NotFound => Counted::Ignore,
                            },
                        );
                        o
                    }
                    None => {
                        return match self.common.on_error {
                            OnError::Deny => Verdict::Deny(AuthDecision::NotAuthorized),
                            OnError::Ignore => Verdict::Ignore,
                        };
                    }
                },
            };
            match outcome {
                Outcome::Allow { superuser } => {
                    creds.grants.set_superuser(superuser);
                    Verdict::Allow
                }
                Outcome::Deny => Verdict::Deny(AuthDecision::BadCredentials),
                Outcome::NotFound => Verdict::Ignore,
            }
        })
    }
}

/// The answer a row gives: a user row without a usable hash refuses.
pub fn judge(
    alg: crate::settings::HashAlgorithm,
    password: Option<&[u8]>,
    hash: Option<&str>,
    salt: Option<&[u8]>,
    superuser: bool,
) -> Outcome {
    match (password, hash) {
        (Some(p), Some(h)) if crate::hash::verify(alg, p, h, salt.unwrap_or_default()) => Outcome::Allow { superuser },
        _ => Outcome::Deny,
    }
}

/// `is_superuser` as databases spell it: a boolean, a number, or text.
pub fn truthy(text: &str) -> bool {
    matches!(text.trim().to_ascii_lowercase().as_str(), "1" | "true" | "t" | "yes" | "on")
}
