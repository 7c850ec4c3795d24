//! `[auth] chain`: authentication sources tried in order, as EMQX's authentication chain.
//! Each source answers allow, deny or ignore ("not mine": the next one is asked). When
//! every source ignores a client, it is admitted only if it is anonymous (no username)
//! and `allow_anonymous` is on; a username nobody knows is refused, as in Mosquitto.

use std::sync::Arc;

use super::{AuthDecision, Authenticator, BoxFuture, Credentials};

/// One source's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused: wrong password, or the client is not allowed to connect.
    Deny(AuthDecision),
    /// Not this source's client: ask the next one.
    Ignore,
}

/// A source of the chain: the users file, a client id list, an HTTP service, certificates.
pub trait AuthSource: Send + Sync {
    /// Shown in logs when this source refuses a client.
    fn name(&self) -> &str;
    fn check<'a>(&'a self, creds: &'a Credentials<'a>) -> BoxFuture<'a, Verdict>;
}

impl<T: AuthSource + ?Sized> AuthSource for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn check<'a>(&'a self, creds: &'a Credentials<'a>) -> BoxFuture<'a, Verdict> {
        (**self).check(creds)
    }
}

/// The sources in order, then the anonymous rule.
pub struct AuthChain {
    pub sources: Vec<Box<dyn AuthSource>>,
    pub allow_anonymous: bool,
}

impl Authenticator for AuthChain {
    fn authenticate<'a>(&'a self, creds: Credentials<'a>) -> BoxFuture<'a, AuthDecision> {
        Box::pin(async move {
            for source in &self.sources {
                match source.check(&creds).await {
                    Verdict::Allow => return AuthDecision::Allow,
                    Verdict::Deny(d) => {
                        tracing::debug!(source = source.name(), client_id = %creds.client.client_id, "auth source refused");
                        return d;
                    }
                    Verdict::Ignore => {}
                }
            }
            let anonymous = creds.client.username.is_none() && creds.password.is_none();
            if anonymous && self.allow_anonymous { AuthDecision::Allow } else { AuthDecision::BadCredentials }
        })
    }
}

/// `[auth] client_ids`: clients admitted by client id alone. For devices that have no
/// credentials to present, above all MQTT-SN 1.2 (whose CONNECT carries none; EMQX's
/// MQTT-SN gateway likewise authenticates such clients by client id). An entry ending in
/// `*` is a prefix. A listed id is allowed; any other is not this source's (ignore).
pub struct ClientIdList {
    exact: std::collections::HashSet<String>,
    prefixes: Vec<String>,
}

impl ClientIdList {
    pub fn new<I: IntoIterator<Item = String>>(entries: I) -> Self {
        let mut exact = std::collections::HashSet::new();
        let mut prefixes = Vec::new();
        for e in entries {
            match e.strip_suffix('*') {
                Some(p) => prefixes.push(p.to_string()),
                None => {
                    exact.insert(e);
                }
            }
        }
        ClientIdList { exact, prefixes }
    }

    pub fn contains(&self, client_id: &str) -> bool {
        self.exact.contains(client_id) || self.prefixes.iter().any(|p| client_id.starts_with(p.as_str()))
    }
}

impl AuthSource for ClientIdList {
    fn name(&self) -> &str {
        "client_ids"
    }
    fn check<'a>(&'a self, creds: &'a Credentials<'a>) -> BoxFuture<'a, Verdict> {
        let v = if self.contains(creds.client.client_id.as_str()) { Verdict::Allow } else { Verdict::Ignore };
        Box::pin(std::future::ready(v))
    }
}

/// `"certificate"` in the chain: a client whose TLS certificate the listener verified
/// against `[mqtt.tls] ca_file` is allowed (its identity, the certificate's common name, is
/// its username when `cn_as_username` is on). Others: ignore.
pub struct VerifiedCertificate;

impl AuthSource for VerifiedCertificate {
    fn name(&self) -> &str {
        "certificate"
    }
    fn check<'a>(&'a self, creds: &'a Credentials<'a>) -> BoxFuture<'a, Verdict> {
        let v = if creds.certificate.is_some() { Verdict::Allow } else { Verdict::Ignore };
        Box::pin(std::future::ready(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ClientInfo;
    use crate::types::{ClientId, Protocol};

    fn info(id: &str, user: Option<&str>) -> ClientInfo {
        ClientInfo {
            client_id: ClientId::from(id),
            protocol: Protocol::MqttSn,
            protocol_detail: None,
            peer: None,
            username: user.map(String::from),
            grants: None,
        }
    }

    async fn run(chain: &AuthChain, c: &ClientInfo) -> AuthDecision {
        chain
            .authenticate(Credentials {
                client: c,
                password: None,
                certificate: None,
                user_properties: &[],
                grants: &Default::default(),
            })
            .await
    }

    #[tokio::test]
    async fn client_ids_then_anonymous_rule() {
        let chain = AuthChain {
            sources: vec![Box::new(ClientIdList::new(["sensor-1".into(), "fleet-*".into()]))],
            allow_anonymous: false,
        };
        assert_eq!(run(&chain, &info("sensor-1", None)).await, AuthDecision::Allow);
        assert_eq!(run(&chain, &info("fleet-42", None)).await, AuthDecision::Allow);
        assert_eq!(run(&chain, &info("other", None)).await, AuthDecision::BadCredentials);
        // Nobody knows this username: refused even with anonymous access on.
        let open = AuthChain { sources: vec![], allow_anonymous: true };
        assert_eq!(run(&open, &info("x", Some("who"))).await, AuthDecision::BadCredentials);
        assert_eq!(run(&open, &info("x", None)).await, AuthDecision::Allow);
    }
}
