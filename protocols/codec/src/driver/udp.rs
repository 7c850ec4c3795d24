//! UDP: one socket for all devices of a listener, on the shared datagram engine
//! ([`roost_core::datagram`]). The receive loop finds each datagram's device (the codec's
//! device key, else the sender's address) and hands it to that device's session; replies go
//! to the address the device last sent from. The device table is bounded by
//! `limits.max_connections`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use roost_core::datagram::{DatagramSession, Demux, Dispatch, End};
use roost_core::{Connection, Delivery, DisconnectReason, Protocol};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::log_close;
use crate::codec::DeviceKey;
use crate::guard::contain;
use crate::session::{Device, Listener};

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(SocketAddr),
    Id(DeviceKey),
}

pub(super) async fn serve(
    socket: Arc<UdpSocket>,
    listener: Arc<Listener>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limits = listener.settings.limits.clone();
    let demux: Demux<Key, (Bytes, SocketAddr)> = Demux::new(limits.max_pending_datagrams);
    let name = listener.settings.name.clone();
    // One byte more than the limit tells an oversized datagram from one that fits.
    let mut buf = vec![0u8; limits.max_frame_size + 1];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = shutdown.cancelled() => return,
        };
        let (n, peer) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable from an earlier send and the like: not fatal.
                tracing::debug!(listener = %name, error = %e, "codec udp receive failed");
                continue;
            }
        };
        if n > limits.max_frame_size {
            roost_core::peer_log!(INFO, "codec.too_large", peer, listener = %name, %peer, "datagram over limits.max_frame_size; dropped");
            continue;
        }
        listener.broker.metrics().bytes_in(Protocol::Codec, n);
        let datagram = Bytes::copy_from_slice(&buf[..n]);
        let key = match contain(|| listener.factory.device_key(&datagram)) {
            Ok(Some(id)) => Key::Id(id),
            Ok(None) => Key::Addr(peer),
            Err(panic) => {
                roost_core::peer_log!(ERROR, "codec.device_key_panic", peer, listener = %name, %peer, panic = %panic, "codec device_key panicked; datagram dropped");
                continue;
            }
        };
        let first = match demux.dispatch(&key, (datagram, peer)) {
            Dispatch::Queued => continue,
            Dispatch::Busy(_) => {
                roost_core::peer_log!(INFO, "codec.busy", peer, listener = %name, %peer, "device has limits.max_pending_datagrams waiting; datagram dropped");
                continue;
            }
            Dispatch::Unknown(first) => first,
        };
        if demux.len() >= limits.max_connections {
            roost_core::peer_log!(WARN, "codec.max_connections", peer, listener = %name, %peer, "limits.max_connections devices; datagram from a new device dropped");
            continue;
        }
        let device = UdpDevice(Device::new(listener.clone(), peer, Instant::now()));
        demux.spawn(key, first, device, socket.clone(), shutdown.clone(), &tracker);
    }
}

/// A codec device as a datagram session: frames in, encoded frames out to its last address.
struct UdpDevice(Device);

impl DatagramSession for UdpDevice {
    type Input = (Bytes, SocketAddr);

    fn connection(&self) -> Option<&Connection> {
        self.0.connection()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.0.deadline())
    }

    /// Connected devices close on the core's `Delivery::Close` at shutdown, so their
    /// goodbye frame goes out first.
    fn watches_shutdown(&self) -> bool {
        self.0.connection().is_none()
    }

    async fn handle_datagram(&mut self, now: Instant, (datagram, peer): (Bytes, SocketAddr)) -> Result<(), End> {
        self.0.set_peer(peer);
        self.0.on_datagram(datagram, now).await
    }

    async fn handle_delivery(&mut self, _now: Instant, delivery: Delivery) -> Result<(), End> {
        self.0.on_delivery(delivery)
    }

    async fn handle_timeout(&mut self, now: Instant) -> Result<(), End> {
        self.0.on_timeout(now).await
    }

    async fn handle_shutdown(&mut self) -> End {
        End::new(DisconnectReason::Shutdown, "shutting down")
    }

    fn poll_transmit(&mut self) -> Option<(Bytes, SocketAddr)> {
        if self.0.out.is_empty() {
            return None;
        }
        Some((self.0.out.remove(0), self.0.peer()))
    }

    async fn finish(self, end: End) {
        let device = self.0;
        let name = device.listener_name();
        log_close(&name, device.peer(), device.connection().map(|c| c.client_id().to_string()), &end);
        device.finish(&end).await;
    }
}
