//! `[cluster]`: this node in a cluster over NATS JetStream, as read and as validated.
//! Absent (or `enable = false`): no cluster, and no NATS is contacted.

use std::time::Duration;

use roost_cluster::settings::{ClusterSettings, check_node_name, node_name_from};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration::ConfigDuration;
use super::schema::Int;

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct ClusterSection {
    pub enable: bool,
    pub node: String,
    pub nats: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub creds_file: Option<String>,
    pub tls_ca: Option<String>,
    pub connect_timeout: ConfigDuration,
    pub request_timeout: ConfigDuration,
    pub heartbeat: ConfigDuration,
    pub node_timeout: ConfigDuration,
    pub buffer: Int,
    pub session_max_age: ConfigDuration,
    pub session_max_messages: Int,
    pub session_window: Int,
}

impl Default for ClusterSection {
    fn default() -> Self {
        let d = ClusterSettings::default();
        ClusterSection {
            enable: true,
            node: String::new(),
            nats: d.nats,
            user: None,
            password: None,
            token: None,
            creds_file: None,
            tls_ca: None,
            connect_timeout: ConfigDuration(d.connect_timeout),
            request_timeout: ConfigDuration(d.request_timeout),
            heartbeat: ConfigDuration(d.heartbeat),
            node_timeout: ConfigDuration(d.node_timeout),
            buffer: Int(d.buffer as i64),
            session_max_age: ConfigDuration(d.session_max_age),
            session_max_messages: Int(d.session_max_messages),
            session_window: Int(d.session_window),
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: format!("cluster.{key}"), message: message.into() }
}

/// The validated section; `None` when there is none or it is disabled. `node_name` is the
/// `[node] name`, from which the cluster node name is made when `node` is not given.
pub(super) fn cluster(
    section: Option<ClusterSection>,
    node_name: &str,
) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some(c) = section.filter(|c| c.enable) else { return Ok(None) };
    let node = if c.node.is_empty() { node_name_from(node_name) } else { c.node };
    check_node_name(&node).map_err(|e| invalid("node", e))?;
    if c.nats.is_empty() {
        return Err(invalid("nats", "at least one NATS server URL is needed"));
    }
    for url in &c.nats {
        let scheme_ok = ["nats://", "tls://"].iter().any(|s| url.starts_with(s));
        if !scheme_ok || url.len() <= "nats://".len() {
            return Err(invalid("nats", format!("{url:?} is not a nats://host:port or tls://host:port URL")));
        }
    }
    if c.user.is_some() != c.password.is_some() {
        return Err(invalid("password", "user and password go together"));
    }
    let methods = usize::from(c.user.is_some()) + usize::from(c.token.is_some()) + usize::from(c.creds_file.is_some());
    if methods > 1 {
        return Err(invalid("token", "use one of user/password, token or creds_file"));
    }
    let file = |key: &str, path: Option<String>| -> Result<Option<std::path::PathBuf>, ConfigError> {
        match path {
            None => Ok(None),
            Some(p) if std::path::Path::new(&p).is_file() => Ok(Some(p.into())),
            Some(p) => Err(invalid(key, format!("{p:?} is not a readable file"))),
        }
    };
    let positive = |key: &str, d: ConfigDuration| -> Result<Duration, ConfigError> {
        if d.0.is_zero() { Err(invalid(key, "must be more than 0")) } else { Ok(d.0) }
    };
    let heartbeat = positive("heartbeat", c.heartbeat)?;
    let node_timeout = positive("node_timeout", c.node_timeout)?;
    if node_timeout < heartbeat * 2 {
        return Err(invalid("node_timeout", "must be at least twice the heartbeat"));
    }
    let buffer = match c.buffer.0 {
        n @ 1..=10_000_000 => n as usize,
        n => return Err(invalid("buffer", format!("{n} is out of range (1..=10000000)"))),
    };
    let session_max_messages = match c.session_max_messages.0 {
        n @ 1..=100_000_000 => n,
        n => return Err(invalid("session_max_messages", format!("{n} is out of range (1..=100000000)"))),
    };
    let session_window = match c.session_window.0 {
        n @ 1..=65_535 => n,
        n => return Err(invalid("session_window", format!("{n} is out of range (1..=65535)"))),
    };
    Ok(Some(ClusterSettings {
        node,
        nats: c.nats,
        user: c.user,
        password: c.password,
        token: c.token,
        creds_file: file("creds_file", c.creds_file)?,
        tls_ca: file("tls_ca", c.tls_ca)?,
        connect_timeout: positive("connect_timeout", c.connect_timeout)?,
        request_timeout: positive("request_timeout", c.request_timeout)?,
        heartbeat,
        node_timeout,
        buffer,
        addresses: Vec::new(),
        session_max_age: positive("session_max_age", c.session_max_age)?,
        session_max_messages,
        session_window,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    #[test]
    fn absent_or_disabled_means_no_cluster() {
        assert_eq!(parse("").unwrap().cluster, None);
        assert_eq!(parse("[cluster]\nenable = false\n").unwrap().cluster, None);
    }

    #[test]
    fn keys_map_and_defaults_apply() {
        let s = parse("[node]\nname = \"roost@10.0.0.1\"\n[cluster]\nnats = [\"nats://10.0.0.2:4222\"]\ntoken = \"t\"\nbuffer = 5\n")
            .unwrap();
        let c = s.cluster.unwrap();
        assert_eq!(c.node, "roost_10_0_0_1");
        assert_eq!(c.nats, vec!["nats://10.0.0.2:4222".to_string()]);
        assert_eq!((c.token.as_deref(), c.buffer), (Some("t"), 5));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("[cluster]\nnode = \"a.b\"\n", "cluster.node"),
            ("[cluster]\nnats = []\n", "cluster.nats"),
            ("[cluster]\nnats = [\"http://x\"]\n", "cluster.nats"),
            ("[cluster]\nuser = \"u\"\n", "cluster.password"),
            ("[cluster]\ntoken = \"t\"\nuser = \"u\"\npassword = \"p\"\n", "cluster.token"),
            ("[cluster]\ntls_ca = \"/nonexistent/ca.pem\"\n", "cluster.tls_ca"),
            ("[cluster]\nheartbeat = \"2s\"\nnode_timeout = \"3s\"\n", "cluster.node_timeout"),
            ("[cluster]\nbuffer = 0\n", "cluster.buffer"),
            ("[cluster]\nsession_max_age = \"0s\"\n", "cluster.session_max_age"),
            ("[cluster]\nsession_window = 70000\n", "cluster.session_window"),
            ("[cluster]\nsession_max_messages = 0\n", "cluster.session_max_messages"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
