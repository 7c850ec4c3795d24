// PLACEHOLDER: the lead replaces this file
//! The gateway: starts every listener on the settings and shuts them down. Placeholder so
//! `main` compiles; `start` always fails.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Settings;

pub struct Gateway {
    mqtt_addrs: Vec<SocketAddr>,
}

pub async fn start(settings: Settings) -> anyhow::Result<Gateway> {
    let _ = settings;
    anyhow::bail!("the gateway is not built yet")
}

impl Gateway {
    /// The addresses the MQTT listeners are bound to (useful with port 0).
    pub fn mqtt_addrs(&self) -> &[SocketAddr] {
        &self.mqtt_addrs
    }

    /// Stops accepting, waits up to `grace` for connections to finish, then drops the rest.
    pub async fn shutdown(self, grace: Duration) {
        let _ = grace;
    }
}
