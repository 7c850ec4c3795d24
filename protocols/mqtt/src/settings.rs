//! Typed settings of the MQTT listener(s), filled from `[mqtt]` by the server crate.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// TCP listeners; empty disables plain MQTT.
    pub bind: Vec<SocketAddr>,
    /// Largest packet accepted from a client (and announced as v5 Maximum Packet Size).
    pub max_packet_size: u32,
    /// A connection that sends no CONNECT within this time is closed.
    pub connect_timeout: Duration,
    /// Topic aliases a v5 client may use towards us (Topic Alias Maximum in CONNACK).
    pub topic_alias_maximum: u16,
    /// Incoming QoS 1/2 publishes in flight at once (v5 Receive Maximum in CONNACK).
    pub receive_maximum: u16,
    /// Largest keep alive accepted; a client asking for more (or 0) is told this value in
    /// v5 Server Keep Alive. 0: accept whatever the client asks.
    pub max_keep_alive: u16,
    /// Accept an empty client id (3.1.1 with clean session, any v5 connect) and assign one.
    pub allow_empty_client_id: bool,
    /// MQTT over TLS listeners (8883); need `tls`.
    pub tls_bind: Vec<SocketAddr>,
    /// MQTT over WebSocket listeners (8083), path `ws_path`, subprotocol `mqtt`.
    pub ws_bind: Vec<SocketAddr>,
    /// MQTT over secure WebSocket listeners (8084); need `tls`.
    pub wss_bind: Vec<SocketAddr>,
    /// The HTTP path WebSocket clients connect to.
    pub ws_path: String,
    /// Certificate, key and client verification of the TLS and WSS listeners.
    pub tls: Option<TlsSettings>,
    /// Flood control, applied to each listener on its own.
    pub limits: ListenerLimits,
    /// A v5 PUBLISH the ACL denies closes the connection (DISCONNECT 0x87) instead of being
    /// answered PUBACK/PUBREC 0x87. (3.1.1 has no negative acknowledgement: it is dropped
    /// either way, or the connection closed with this set.)
    pub acl_deny_disconnect: bool,
    /// PROXY protocol v1/v2 from trusted load balancers, on every MQTT listener.
    pub proxy: crate::proxy::ProxySettings,
}

/// `[mqtt.tls]`: files are PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// CA certificates client certificates are verified against; `None`: no client certificates.
    pub ca_file: Option<std::path::PathBuf>,
    /// With a CA: a client without a valid certificate is refused (mTLS). Without it, a
    /// certificate is verified when the client offers one.
    pub verify_peer: bool,
    /// The verified client certificate's common name is the client's username.
    pub cn_as_username: bool,
    /// Oldest TLS version accepted: 1.2 or 1.3.
    pub tls13_only: bool,
}

/// Per-listener flood control. 0 / `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerLimits {
    /// Connections open at once on this listener (beyond it, new ones are closed at accept).
    pub max_connections: usize,
    /// New connections per second (token bucket, burst of one second's worth); beyond it,
    /// accepted sockets are closed at once.
    pub max_conn_rate: u32,
    /// Bytes per second read from one connection; beyond it the connection is not read
    /// until its budget refills (TCP pushes back on the client).
    pub bytes_rate: Option<u64>,
    /// PUBLISH packets per second from one connection, the same way.
    pub messages_rate: Option<u32>,
    /// Over a rate: disconnect instead of throttling.
    pub disconnect_over_rate: bool,
}

/// The listener limits in force: a configuration reload replaces the rates
/// (`max_conn_rate`, bytes and messages rates, the action). The next accept and every new
/// connection read them; an open connection keeps the budgets it started with.
#[derive(Debug, Default)]
pub struct LiveLimits(parking_lot::RwLock<ListenerLimits>);

impl LiveLimits {
    pub fn new(limits: ListenerLimits) -> LiveLimits {
        LiveLimits(parking_lot::RwLock::new(limits))
    }

    pub fn get(&self) -> ListenerLimits {
        *self.0.read()
    }

    /// Takes the rates of `next`; `max_connections` stays (the accept semaphore is sized
    /// from it at start).
    pub fn set_rates(&self, next: ListenerLimits) {
        let mut l = self.0.write();
        *l = ListenerLimits { max_connections: l.max_connections, ..next };
    }
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], 1883)), SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 1883))],
            max_packet_size: 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            topic_alias_maximum: 64,
            receive_maximum: 64,
            max_keep_alive: 0,
            allow_empty_client_id: true,
            tls_bind: Vec::new(),
            ws_bind: Vec::new(),
            wss_bind: Vec::new(),
            ws_path: "/mqtt".to_string(),
            tls: None,
            limits: ListenerLimits::default(),
            acl_deny_disconnect: false,
            proxy: crate::proxy::ProxySettings::default(),
        }
    }
}
