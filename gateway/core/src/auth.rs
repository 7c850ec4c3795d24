//! Authentication and authorization seams. Every protocol's connect goes through the
//! broker's [`Authenticator`] and every publish/subscribe through its [`Authorizer`].
//! The built-in ones implement `[auth] allow_anonymous` and allow-all ACL; richer backends
//! (users file, HTTP, certificates) plug in here.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::types::ClientInfo;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The credentials a device presented.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    pub client: &'a ClientInfo,
    pub password: Option<&'a Bytes>,
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

/// `[auth] allow_anonymous`: with it on, everyone may connect; with it off, a connect
/// without a username is refused. (Password checking comes with the users-file backend.)
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
