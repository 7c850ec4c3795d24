//! Shared by the core's integration tests.

use std::time::Duration;

use roost_core::{ClientId, ConnectRequest, Protocol};

/// An MQTT connect request for `id` with the given clean start and session expiry.
pub fn req(id: &str, clean: bool, expiry: Option<Duration>) -> ConnectRequest {
    ConnectRequest {
        client_id: ClientId::new(id),
        protocol: Protocol::Mqtt,
        peer: None,
        username: None,
        password: None,
        clean_start: clean,
        keep_alive: 60,
        will: None,
        session_expiry: expiry,
        receive_maximum: 65535,
    }
}
