//! Replaceable authenticator, authorizer and DTLS backend: the broker and the DTLS sockets
//! hold one of these for their whole life, and a reload swaps what is inside. A check or
//! handshake takes the current value when it starts, so one in progress finishes with the
//! old one.

use std::sync::Arc;

use parking_lot::RwLock;
use roost_core::ClientInfo;
use roost_core::auth::{Action, AuthDecision, Authenticator, Authorizer, BoxFuture, Credentials};

/// A value a reload replaces whole.
pub struct Switch<T: ?Sized>(RwLock<Arc<T>>);

impl<T: ?Sized> Switch<T> {
    pub fn new(value: Arc<T>) -> Arc<Switch<T>> {
        Arc::new(Switch(RwLock::new(value)))
    }

    pub fn current(&self) -> Arc<T> {
        self.0.read().clone()
    }

    pub fn replace(&self, value: Arc<T>) {
        *self.0.write() = value;
    }
}

/// The broker's authenticator: the `[auth]` chain in force.
pub struct SwitchAuthenticator(pub Arc<Switch<dyn Authenticator>>);

impl Authenticator for SwitchAuthenticator {
    fn authenticate<'a>(&'a self, creds: Credentials<'a>) -> BoxFuture<'a, AuthDecision> {
        let current = self.0.current();
        Box::pin(async move { current.authenticate(creds).await })
    }
}

/// The broker's authorizer: the `[acl]` rules in force.
pub struct SwitchAuthorizer(pub Arc<Switch<dyn Authorizer>>);

impl Authorizer for SwitchAuthorizer {
    fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> bool {
        self.0.0.read().check(client, action, topic)
    }
}

/// The DTLS listeners' backend: the `[coap]` PSKs and certificate in force.
#[cfg(feature = "coap")]
pub struct SwitchDtls(pub Arc<Switch<dyn roost_coap::dtls::Backend>>);

#[cfg(feature = "coap")]
#[async_trait::async_trait]
impl roost_coap::dtls::Backend for SwitchDtls {
    async fn accept(
        &self,
        channel: roost_coap::dtls::PeerChannel,
        hello: &roost_coap::dtls::records::ClientHello,
    ) -> Result<Box<dyn roost_coap::dtls::Secured>, String> {
        let current = self.0.current();
        current.accept(channel, hello).await
    }
}
