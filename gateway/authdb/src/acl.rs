//! `[acl] sources`: a client's own ACL rows from PostgreSQL, MySQL or Redis, as EMQX's
//! authorization sources read them. They are loaded once, when the client is admitted, into
//! its [`Grants`](roost_core::auth::Grants), and checked after the `[acl]` file rules (first
//! match wins), so a publish never waits for a database. A superuser skips them (and the
//! whole ACL). A source that fails applies `on_error`: `deny` adds a rule denying everything
//! for that client, `ignore` adds nothing.
//!
//! Rows: `permission` (`allow`/`deny`), `action` (`publish`/`subscribe`/`all`), `topic` (a
//! filter; `${username}` and `${clientid}` inside it are the client's own, `eq ` literal).

use std::sync::Arc;

use roost_core::auth::{
    AclRule, AuthDecision, Authenticator, BoxFuture, Credentials, Permission, RuleAction, TopicPattern, Who,
};

use crate::BackendError;
use crate::metrics::{ErrorLog, Metrics, Result as Counted};
use crate::settings::OnError;
use crate::template::Vars;

/// A backend that lists a client's ACL rules.
pub trait AclBackend: Send + Sync {
    /// The `source` label: `postgresql_acl`, `mysql_acl`, `redis_acl`.
    fn kind(&self) -> &'static str;
    fn rules<'a>(&'a self, vars: &'a Vars) -> BoxFuture<'a, Result<Vec<AclRule>, BackendError>>;
}

/// One configured ACL source.
pub struct AclSource {
    pub backend: Arc<dyn AclBackend>,
    pub timeout: std::time::Duration,
    pub on_error: OnError,
    errors: ErrorLog,
}

impl AclSource {
    pub fn new(backend: Arc<dyn AclBackend>, timeout: std::time::Duration, on_error: OnError) -> AclSource {
        AclSource { backend, timeout, on_error, errors: ErrorLog::default() }
    }
}

/// The sources in `[acl] sources` order.
pub struct AclSources {
    pub sources: Vec<AclSource>,
    pub metrics: Arc<Metrics>,
}

/// An authenticator that, once its inner one admits a client, loads the client's ACL rows.
pub struct WithAcl {
    pub inner: Box<dyn Authenticator>,
    pub acl: AclSources,
}

impl Authenticator for WithAcl {
    fn authenticate<'a>(&'a self, creds: Credentials<'a>) -> BoxFuture<'a, AuthDecision> {
        Box::pin(async move {
            let decision = self.inner.authenticate(creds.clone()).await;
            if decision != AuthDecision::Allow || creds.grants.superuser() {
                return decision;
            }
            let vars = Vars::of(&creds);
            for s in &self.acl.sources {
                let kind = s.backend.kind();
                let failure = match tokio::time::timeout(s.timeout, s.backend.rules(&vars)).await {
                    Ok(Ok(rules)) => {
                        self.acl.metrics.count(kind, Counted::Loaded);
                        creds.grants.add_rules(rules);
                        continue;
                    }
                    Ok(Err(e)) => {
                        self.acl.metrics.count(kind, Counted::Error);
                        e.to_string()
                    }
                    Err(_) => {
                        self.acl.metrics.count(kind, Counted::Timeout);
                        format!("no answer within {:?}", s.timeout)
                    }
                };
                s.errors.error(kind, &failure);
                if s.on_error == OnError::Deny {
                    creds.grants.add_rules([deny_all()]);
                }
            }
            decision
        })
    }
}

fn deny_all() -> AclRule {
    AclRule {
        permission: Permission::Deny,
        who: Who::default(),
        action: RuleAction::All,
        topics: vec![TopicPattern::Filter("#".into())],
    }
}

/// One row as an [`AclRule`]; `None` (skipped, logged) if a column is not understood.
pub fn rule(permission: &str, action: &str, topic: &str) -> Option<AclRule> {
    let permission = match permission.trim().to_ascii_lowercase().as_str() {
        "allow" => Permission::Allow,
        "deny" => Permission::Deny,
        other => {
            tracing::warn!(permission = other, topic, "ACL row skipped: permission is not allow or deny");
            return None;
        }
    };
    let action = match action.trim().to_ascii_lowercase().as_str() {
        "publish" => RuleAction::Publish,
        "subscribe" => RuleAction::Subscribe,
        "all" | "pubsub" => RuleAction::All,
        other => {
            tracing::warn!(action = other, topic, "ACL row skipped: action is not publish, subscribe or all");
            return None;
        }
    };
    // EMQX's placeholders in topics are the core's %u / %c (which refuse unsafe values).
    let topic = topic.replace("${username}", "%u").replace("${clientid}", "%c");
    let pattern = TopicPattern::parse(&topic);
    let filter = match &pattern {
        TopicPattern::Eq(f) | TopicPattern::Filter(f) => f,
    };
    if roost_core::topic::validate_filter(filter, &roost_core::settings::BrokerSettings::default()).is_err() {
        tracing::warn!(topic, "ACL row skipped: topic is not a topic filter");
        return None;
    }
    Some(AclRule { permission, who: Who::default(), action, topics: vec![pattern] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let r = rule("allow", "publish", "devices/${clientid}/#").unwrap();
        assert_eq!(r.topics, vec![TopicPattern::Filter("devices/%c/#".into())]);
        assert_eq!(rule("DENY", "all", "eq a/#").unwrap().topics, vec![TopicPattern::Eq("a/#".into())]);
        assert!(rule("maybe", "publish", "a").is_none());
        assert!(rule("allow", "read", "a").is_none());
        assert!(rule("allow", "publish", "a/#/b").is_none());
    }
}
