//! Authentication and authorization. Every protocol's connect goes through the broker's
//! [`Authenticator`] and every publish/subscribe through its [`Authorizer`].
//!
//! - [`chain`]: `[auth] chain`, sources tried in order ([`AuthSource`]: allow, deny or ignore)
//! - [`users`]: the users file (argon2 hashes, optional client id binding; `roost passwd`)
//! - [`acl`]: `[acl]` rules, first match wins
//! - [`ClientInfo`]: who a connection is, as ACL rules, hooks and listings see it
//! - [`Grants`]: what a source grants an admitted client (superuser, its own ACL rules)
//! - [`throttle`]: repeated failed logins from one address are answered slowly
//!
//! The plain [`AnonymousPolicy`] and [`AllowAll`] remain the defaults when nothing is
//! configured.

pub mod acl;
pub mod chain;
pub mod throttle;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::types::{ClientId, Protocol};

pub use acl::{Acl, AclRule, Permission, RuleAction, TopicPattern, Who};
pub use chain::{AuthChain, AuthSource, ClientIdList, Verdict, VerifiedCertificate};
pub use users::{PasswordFile, UsersError};

pub use crate::types::BoxFuture;

/// Who a connection is, as hooks and ACL rules see it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: ClientId,
    pub protocol: Protocol,
    /// The name shown for the protocol where it is finer than [`Protocol`]: a custom
    /// codec's registered name (e.g. `"tlv-sensor"`) for [`Protocol::Codec`]. `None`: the
    /// protocol's own name. Read it with [`ClientInfo::protocol_name`].
    pub protocol_detail: Option<Arc<str>>,
    pub peer: Option<SocketAddr>,
    pub username: Option<String>,
    /// What its auth sources granted (superuser, per-client ACL rules); `None`: nothing.
    pub grants: Option<Arc<Grants>>,
}

impl ClientInfo {
    /// The protocol as listings show it: the codec's name for custom codecs, else
    /// [`Protocol::as_str`].
    pub fn protocol_name(&self) -> &str {
        self.protocol_detail.as_deref().unwrap_or(self.protocol.as_str())
    }
}

/// The credentials a device presented.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    pub client: &'a ClientInfo,
    pub password: Option<&'a Bytes>,
    /// The identity of a TLS client certificate the listener verified against its CA
    /// (mTLS), e.g. its common name; `None` without one. (DTLS listeners pass the PSK
    /// identity here too.)
    pub certificate: Option<&'a str>,
    /// The MQTT 5 CONNECT user properties (empty for other protocols and MQTT 3): a source
    /// may read its credential from one (e.g. a JWT, `[auth.jwt] from = "user_property"`).
    pub user_properties: &'a [(String, String)],
    /// Where the source that admits the client leaves what it grants beyond the connect.
    pub grants: &'a GrantSlot,
}

/// What the sources that admitted a client grant it beyond the connect: EMQX's
/// `is_superuser` (every publish and subscribe allowed, the ACL skipped) and the client's
/// own ACL rules loaded from a database at connect (`[acl] sources`), checked after the
/// `[acl]` rules, and the claims of a verified token that ACL topics name as `%{claim}`.
/// Kept in [`ClientInfo::grants`] for the connection's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub superuser: bool,
    pub rules: Vec<AclRule>,
    /// Scalar claims of the client's verified token (JWT), as text, for `%{name}` in ACL
    /// topics. Bounded by the source that sets them.
    pub claims: Vec<(String, String)>,
    /// The username the source established (a token's claim; `Some(None)`: none): it
    /// replaces the one the client sent, for the ACL (`%u`), listings and logs. Taken out
    /// by the broker, never kept in [`ClientInfo::grants`].
    pub username: Option<Option<String>>,
}

impl Grants {
    /// The value of claim `name`, if the client's token had it.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Filled by auth sources during one authentication, read by the broker once it is done.
#[derive(Debug, Default)]
pub struct GrantSlot(parking_lot::Mutex<Grants>);

impl GrantSlot {
    pub fn set_superuser(&self, superuser: bool) {
        self.0.lock().superuser = superuser;
    }
    pub fn superuser(&self) -> bool {
        self.0.lock().superuser
    }
    /// Appends per-client rules (in source order: the first match wins).
    pub fn add_rules(&self, rules: impl IntoIterator<Item = AclRule>) {
        self.0.lock().rules.extend(rules);
    }
    /// Claims for `%{name}` ACL placeholders (replacing any set before).
    pub fn set_claims(&self, claims: Vec<(String, String)>) {
        self.0.lock().claims = claims;
    }
    /// The identity the broker uses for the client from now on, admitted or refused (a
    /// source reading a token from the username sets it so the token is never logged).
    pub fn set_username(&self, username: Option<String>) {
        self.0.lock().username = Some(username);
    }
    pub fn take(&self) -> Grants {
        std::mem::take(&mut *self.0.lock())
    }
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
