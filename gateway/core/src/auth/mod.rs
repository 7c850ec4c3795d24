//! Authentication and authorization. Every protocol's connect goes through the broker's
//! [`Authenticator`] and every publish/subscribe through its [`Authorizer`].
//!
//! - [`chain`]: `[auth] chain`, sources tried in order ([`AuthSource`]: allow, deny or ignore)
//! - [`users`]: the users file (argon2 hashes, optional client id binding; `roost passwd`)
//! - [`acl`]: `[acl]` rules, first match wins
//! - [`throttle`]: repeated failed logins from one address are answered slowly
//!
//! The plain [`AnonymousPolicy`] and [`AllowAll`] remain the defaults when nothing is
//! configured.

pub mod acl;
pub mod chain;
pub mod throttle;
pub mod users;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::types::ClientInfo;

pub use acl::{Acl, AclRule, Permission, RuleAction, TopicPattern, Who};
pub use chain::{AuthChain, AuthSource, ClientIdList, Verdict, VerifiedCertificate};
pub use users::{PasswordFile, UsersError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The credentials a device presented.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    pub client: &'a ClientInfo,
    pub password: Option<&'a Bytes>,
    /// The identity of a TLS client certificate the listener verified against its CA
    /// (mTLS), e.g. its common name; `None` without one. (DTLS listeners pass the PSK
    /// identity here too.)
    pub certificate: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    Allow,
    /// Wrong or missing credentials (MQTT 5 0x86).
    BadCredentials,
    /// Known but not allowed to connect (MQTT 5 0x87).
    NotAuthorized,
}

pub trait Authenticator: Send + Sync {
    fn authenticate<'a>(&'a self, creds: Credentials<'a>) -> BoxFuture<'a, AuthDecision>;
}

/// `[auth] allow_anonymous` alone (no `[auth] chain`): with it on, everyone may connect;
/// with it off, a connect without a username is refused.
pub struct AnonymousPolicy {
    pub allow_anonymous: bool,
}

impl Authenticator for AnonymousPolicy {
    fn authenticate<'a>(&'a self, creds: Credentials<'a>) -> BoxFuture<'a, AuthDecision> {
        let decision = if self.allow_anonymous || creds.client.username.is_some() {
            AuthDecision::Allow
        } else {
            AuthDecision::BadCredentials
        };
        Box::pin(std::future::ready(decision))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Subscribe,
}

pub trait Authorizer: Send + Sync {
    fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> bool;
}

/// Allows every client everything (the default until ACL rules are configured).
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn check(&self, _client: &ClientInfo, _action: Action, _topic: &str) -> bool {
        true
    }
}
