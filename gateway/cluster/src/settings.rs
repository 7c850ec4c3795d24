//! `[cluster]` as the gateway validated it: where NATS is, how to log in, this node's name
//! and the cluster's timeouts and bounds.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of one node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This node's name, unique in the cluster: letters, digits, `-` and `_` (it is part of
    /// NATS subjects and KV keys).
    pub node: String,
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`).
    pub nats: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// A NATS `.creds` file (JWT + NKey seed).
    pub creds_file: Option<PathBuf>,
    /// A PEM CA that signs the NATS server's certificate (TLS is then required).
    pub tls_ca: Option<PathBuf>,
    /// How long the first connection to NATS may take before start-up fails.
    pub connect_timeout: Duration,
    /// Bound of each request to NATS on a client's path (the client id claim at CONNECT).
    pub request_timeout: Duration,
    /// How often this node says it is alive.
    pub heartbeat: Duration,
    /// A node not heard of for this long is down: no message is sent to it.
    pub node_timeout: Duration,
    /// Messages for other nodes waiting while NATS is slow or away; beyond it they are
    /// dropped and counted.
    pub buffer: usize,
    /// Addresses this node serves, shown to other nodes and in `/api/v1/cluster`.
    pub addresses: Vec<String>,
    /// How long a message waits in a persistent session's JetStream stream at most (the
    /// stream's max age): beyond it, undelivered, it is gone.
    pub session_max_age: Duration,
    /// Messages one persistent session's stream holds at most; beyond it the oldest go.
    pub session_max_messages: i64,
    /// Messages of one session taken from its stream and not yet acknowledged by its
    /// client, at most (the consumer's max ack pending).
    pub session_window: i64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            node: String::new(),
            nats: vec!["nats://127.0.0.1:4222".to_string()],
            user: None,
            password: None,
            token: None,
            creds_file: None,
            tls_ca: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            buffer: 100_000,
            addresses: Vec::new(),
            session_max_age: Duration::from_secs(24 * 3600),
            session_max_messages: 100_000,
            session_window: 1000,
        }
    }
}

/// Why a node name cannot be used.
pub fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?} must be 1 to 64 characters"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!("{name:?} has {c:?}: only letters, digits, '-' and '_' may be used"));
    }
    Ok(())
}

/// A node name made from any text (the `[node] name` default `roost@127.0.0.1`): every
/// character that cannot be in a NATS token becomes `_`.
pub fn node_name_from(text: &str) -> String {
    let s: String = text
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if s.is_empty() { "roost".to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert!(check_node_name("node-a_1").is_ok());
        assert!(check_node_name("").is_err());
        assert!(check_node_name("a.b").is_err());
        assert!(check_node_name("a b").is_err());
        assert_eq!(node_name_from("roost@127.0.0.1"), "roost_127_0_0_1");
        assert!(check_node_name(&node_name_from("é.*>")).is_ok());
    }
}
