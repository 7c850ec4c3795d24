//! Driver layer: the sockets. [`start`] binds one `[[codec]]` listener and spawns its
//! task: a TCP accept loop with one task per connection ([`tcp`]), or one UDP socket
//! demultiplexed to one task per device ([`udp`], keyed by the codec's device key or the
//! sender's address). Each device's task owns its codec, so the events of one device reach
//! it in order; a slow or broken device blocks only itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use roost_core::DisconnectReason;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::session::{Close, Listener};
use crate::settings::Transport;

mod tcp;
mod udp;

/// Binds `listener`'s address and serves it until `shutdown`; every task joins `tracker`.
/// Returns the bound address (the real port where the config said 0).
pub async fn start(
    listener: Arc<Listener>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> std::io::Result<SocketAddr> {
    let settings = &listener.settings;
    let context = |e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!("codec listener {:?} ({} {}): {e}", settings.name, settings.transport, settings.bind),
        )
    };
    match settings.transport {
        Transport::Tcp => {
            let socket = tokio::net::TcpListener::bind(settings.bind).await.map_err(context)?;
            let addr = socket.local_addr()?;
            tracker.spawn(tcp::serve(socket, listener.clone(), shutdown, tracker.clone()));
            Ok(addr)
        }
        Transport::Udp => {
            let socket = tokio::net::UdpSocket::bind(settings.bind).await.map_err(context)?;
            let addr = socket.local_addr()?;
            tracker.spawn(udp::serve(Arc::new(socket), listener.clone(), shutdown, tracker.clone()));
            Ok(addr)
        }
    }
}

async fn sleep_until(deadline: Instant) {
    tokio::time::sleep_until(deadline.into()).await;
}

/// Lost connections at info (worth a look), orderly ones at debug.
fn log_close(listener: &str, peer: SocketAddr, client_id: Option<String>, close: &Close) {
    let client_id = client_id.unwrap_or_default();
    match close.reason {
        DisconnectReason::Abnormal => {
            roost_core::peer_log!(INFO, "codec.protocol_error", peer, listener, %peer, client_id, why = %close.why, "codec: connection closed")
        }
        _ => tracing::debug!(listener, %peer, client_id, why = %close.why, "codec: connection closed"),
    }
}
