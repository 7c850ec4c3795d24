//! Shared by the codec end-to-end tests: a TCP device speaking the `line` protocol, and
//! an authenticator and authorizer that record who asked (to see the codec's name as the
//! protocol) and refuse what a test says.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use roost::core::ClientInfo;
use roost::core::auth::{Action, AuthDecision, Authenticator, Authorizer, BoxFuture, Credentials};
use roost::core::hooks::{Event, Hook};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// A device on a TCP codec listener that speaks in lines.
pub struct LineDevice {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl LineDevice {
    pub async fn connect(addr: SocketAddr) -> LineDevice {
        let stream = match timeout(roost_e2e::WAIT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            other => panic!("cannot connect to {addr}: {other:?}"),
        };
        let (r, w) = stream.into_split();
        LineDevice { reader: BufReader::new(r), writer: w }
    }

    pub async fn send(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.send_raw(&bytes).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.writer.write_all(bytes).await {
            panic!("write failed: {e}");
        }
    }

    /// The next line, without its newline; panics if none comes within `wait`.
    pub async fn expect_line(&mut self, wait: Duration) -> String {
        match self.try_line(wait).await {
            Some(Some(line)) => line,
            Some(None) => panic!("connection closed while a line was expected"),
            None => panic!("no line within {wait:?}"),
        }
    }

    /// Sends `line` and returns the answer.
    pub async fn ask(&mut self, line: &str) -> String {
        self.send(line).await;
        self.expect_line(roost_e2e::WAIT).await
    }

    /// None: nothing within `wait`; Some(None): closed; Some(Some(line)).
    pub async fn try_line(&mut self, wait: Duration) -> Option<Option<String>> {
        let mut line = String::new();
        match timeout(wait, self.reader.read_line(&mut line)).await {
            Err(_) => None,
            Ok(Ok(0)) | Ok(Err(_)) => Some(None),
            Ok(Ok(_)) => Some(Some(line.trim_end_matches(['\r', '\n']).to_string())),
        }
    }

    /// Reads until the gateway closes the connection (within `wait`); returns the lines
    /// it sent before closing.
    pub async fn expect_closed(&mut self, wait: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_line(left).await {
                Some(Some(line)) => lines.push(line),
                Some(None) => return lines,
                None => panic!("connection still open after {wait:?}; got {lines:?}"),
            }
        }
    }
}

/// Records every ACL check and connect as `(client id, protocol name)`.
#[derive(Default)]
pub struct Seen(pub parking_lot::Mutex<Vec<(String, String)>>);

impl Seen {
    pub fn protocol_of(&self, client_id: &str) -> Option<String> {
        self.0.lock().iter().find(|(c, _)| c == client_id).map(|(_, p)| p.clone())
    }

    fn record(&self, client: &ClientInfo) {
        self.0.lock().push((client.client_id.to_string(), client.protocol_name().to_string()));
    }
}

/// Password `s3cret` for every username; a connect without username is refused; clients
/// whose id starts with `banned` are not authorized.
pub struct Passwords(pub Arc<Seen>);

impl Authenticator for Passwords {
    fn authenticate<'a>(&'a self, creds: Credentials<'a>) -> BoxFuture<'a, AuthDecision> {
        self.0.record(creds.client);
        let decision = if creds.client.client_id.as_str().starts_with("banned") {
            AuthDecision::NotAuthorized
        } else if creds.client.username.is_none() {
            // Anonymous devices are allowed only for protocols without credentials
            // (the tlv-sensor codec): the authenticator sees the codec's name.
            if creds.client.protocol_name() == "tlv-sensor" {
                AuthDecision::Allow
            } else {
                AuthDecision::BadCredentials
            }
        } else if creds.password.map(|p| &p[..]) == Some(b"s3cret") {
            AuthDecision::Allow
        } else {
            AuthDecision::BadCredentials
        };
        Box::pin(std::future::ready(decision))
    }
}

/// Nobody publishes to a topic with a `secret` level or subscribes to a filter with an
/// `admin` level (topics as the broker sees them, mountpoint included); client
/// ids ending in `-ro` publish nothing.
pub struct Rules(pub Arc<Seen>);

impl Authorizer for Rules {
    fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> bool {
        self.0.record(client);
        match action {
            Action::Publish => {
                !topic.split('/').any(|level| level == "secret") && !client.client_id.as_str().ends_with("-ro")
            }
            Action::Subscribe => !topic.split('/').any(|level| level == "admin"),
        }
    }
}

/// What a hook saw: `("connected" | "disconnected", client id, protocol name)`.
pub type Seen3 = (&'static str, String, String);

/// A hook forwarding connects and disconnects to the test.
pub struct Events(pub mpsc::UnboundedSender<Seen3>);

impl Events {
    pub fn new() -> (Arc<Events>, EventLog) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Events(tx)), EventLog(rx))
    }
}

impl Hook for Events {
    fn on_event(&self, event: &Event<'_>) {
        let (what, client) = match event {
            Event::Connected { client, .. } => ("connected", client),
            Event::Disconnected { client, .. } => ("disconnected", client),
            _ => return,
        };
        let _ = self.0.send((what, client.client_id.to_string(), client.protocol_name().to_string()));
    }
}

pub struct EventLog(mpsc::UnboundedReceiver<Seen3>);

impl EventLog {
    /// Waits (bounded) for `what` of `client_id`; returns its protocol name.
    pub async fn expect(&mut self, what: &str, client_id: &str) -> String {
        let deadline = tokio::time::Instant::now() + roost_e2e::WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.0.recv()).await {
                Ok(Some((w, c, protocol))) if w == what && c == client_id => return protocol,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("no {what} of {client_id} within {:?}", roost_e2e::WAIT),
            }
        }
    }
}

/// An authenticator from a function of the client and its password.
pub struct AuthFn<F>(pub F);

impl<F> Authenticator for AuthFn<F>
where
    F: Fn(&ClientInfo, Option<&bytes::Bytes>) -> AuthDecision + Send + Sync,
{
    fn authenticate<'a>(&'a self, creds: Credentials<'a>) -> BoxFuture<'a, AuthDecision> {
        Box::pin(std::future::ready((self.0)(creds.client, creds.password)))
    }
}

/// An authorizer from a function.
pub struct AclFn<F>(pub F);

impl<F> Authorizer for AclFn<F>
where
    F: Fn(&ClientInfo, Action, &str) -> bool + Send + Sync,
{
    fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> bool {
        (self.0)(client, action, topic)
    }
}
