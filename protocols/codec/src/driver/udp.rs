//! UDP: one socket for all devices of a listener. The receive loop finds each datagram's
//! device (the codec's device key, else the sender's address) and hands it to that
//! device's task through a bounded channel; replies go to the address the device last sent
//! from. The device table is bounded by `limits.max_connections`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use roost_core::{Delivery, DisconnectReason, Protocol};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{log_close, sleep_until};
use crate::codec::DeviceKey;
use crate::guard::contain;
use crate::session::{Close, Device, Listener};

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(SocketAddr),
    Id(DeviceKey),
}

struct Entry {
    id: u64,
    tx: mpsc::Sender<(Bytes, SocketAddr)>,
}

type Table = Arc<parking_lot::Mutex<HashMap<Key, Entry>>>;

pub(super) async fn serve(
    socket: Arc<UdpSocket>,
    listener: Arc<Listener>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let table: Table = Arc::default();
    let next_id = AtomicU64::new(1);
    let limits = listener.settings.limits.clone();
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
            tracing::info!(listener = %name, %peer, "datagram over limits.max_frame_size; dropped");
            continue;
        }
        listener.broker.metrics().bytes_in(Protocol::Codec, n);
        let datagram = Bytes::copy_from_slice(&buf[..n]);
        let key = match contain(|| listener.factory.device_key(&datagram)) {
            Ok(Some(id)) => Key::Id(id),
            Ok(None) => Key::Addr(peer),
            Err(panic) => {
                tracing::error!(listener = %name, %peer, panic = %panic, "codec device_key panicked; datagram dropped");
                continue;
            }
        };
        let mut devices = table.lock();
        if let Some(entry) = devices.get(&key) {
            match entry.tx.try_send((datagram.clone(), peer)) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(listener = %name, %peer, "device has limits.max_pending_datagrams waiting; datagram dropped");
                    continue;
                }
                // Its task is ending: a new connection starts below.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    devices.remove(&key);
                }
            }
        }
        if devices.len() >= limits.max_connections {
            tracing::warn!(listener = %name, %peer, "limits.max_connections devices; datagram from a new device dropped");
            continue;
        }
        let (tx, rx) = mpsc::channel(limits.max_pending_datagrams.max(1));
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let _ = tx.try_send((datagram, peer));
        devices.insert(key.clone(), Entry { id, tx });
        drop(devices);
        let task = DeviceTask { socket: socket.clone(), table: table.clone(), key, id };
        tracker.spawn(task.run(rx, Device::new(listener.clone(), peer, Instant::now()), shutdown.clone()));
    }
}

struct DeviceTask {
    socket: Arc<UdpSocket>,
    table: Table,
    key: Key,
    id: u64,
}

enum Event {
    Datagram(Bytes, SocketAddr),
    Delivery(Delivery),
    Timeout,
    Shutdown,
}

impl DeviceTask {
    async fn run(self, mut rx: mpsc::Receiver<(Bytes, SocketAddr)>, mut device: Device, shutdown: CancellationToken) {
        let close = loop {
            self.flush(&mut device).await;
            let deadline = device.deadline();
            let event = {
                let conn = device.connection();
                let delivery = async move {
                    match conn {
                        Some(c) => c.next_delivery().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    m = rx.recv() => match m {
                        Some((d, peer)) => Event::Datagram(d, peer),
                        None => Event::Shutdown,
                    },
                    d = delivery => Event::Delivery(d),
                    () = sleep_until(deadline) => Event::Timeout,
                    () = shutdown.cancelled(), if device.connection().is_none() => Event::Shutdown,
                }
            };
            let now = Instant::now();
            let step = match event {
                Event::Datagram(d, peer) => {
                    device.set_peer(peer);
                    device.on_datagram(d, now).await
                }
                Event::Delivery(d) => device.on_delivery(d),
                Event::Timeout => device.on_timeout(now).await,
                Event::Shutdown => Err(Close { reason: DisconnectReason::Shutdown, why: "shutting down".into() }),
            };
            if let Err(close) = step {
                break close;
            }
        };
        // Out of the table first, so the next datagram from this device starts afresh.
        {
            let mut devices = self.table.lock();
            if devices.get(&self.key).is_some_and(|e| e.id == self.id) {
                devices.remove(&self.key);
            }
        }
        drop(rx);
        self.flush(&mut device).await;
        let name = device.listener_name();
        log_close(&name, device.peer(), device.connection().map(|c| c.client_id().to_string()), &close);
        device.finish(&close).await;
    }

    async fn flush(&self, device: &mut Device) {
        let peer = device.peer();
        for datagram in device.out.drain(..) {
            if let Err(e) = self.socket.send_to(&datagram, peer).await {
                tracing::debug!(%peer, error = %e, "codec udp send failed");
            }
        }
    }
}
