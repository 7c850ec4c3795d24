//! TCP: one task per connection owns the stream, its [`Device`] and its timers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use roost_core::{Delivery, DisconnectReason, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{log_close, sleep_until};
use crate::session::{Close, Device, Listener};

const READ_CHUNK: usize = 4096;
/// A device that accepts no bytes for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn serve(
    socket: TcpListener,
    listener: Arc<Listener>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(listener.settings.limits.max_connections));
    loop {
        let accepted = tokio::select! {
            r = socket.accept() => r,
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(listener = %listener.settings.name, error = %e, "codec accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            roost_core::peer_log!(WARN, "codec.max_connections", peer, listener = %listener.settings.name, %peer, "limits.max_connections reached; connection refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (listener, shutdown) = (listener.clone(), shutdown.clone());
        tracker.spawn(async move {
            run(stream, peer, listener, shutdown).await;
            drop(permit);
        });
    }
}

enum Event {
    Read(std::io::Result<usize>),
    Delivery(Delivery),
    Timeout,
    Shutdown,
}

async fn run(mut stream: TcpStream, peer: SocketAddr, listener: Arc<Listener>, shutdown: CancellationToken) {
    let name = listener.settings.name.clone();
    let broker = listener.broker.clone();
    let mut device = Device::new(listener, peer, Instant::now());
    let mut rbuf = BytesMut::new();
    let close = loop {
        if let Err(e) = flush(&mut stream, &mut device).await {
            break Close { reason: DisconnectReason::Abnormal, why: format!("write failed: {e}") };
        }
        let deadline = device.deadline();
        let event = {
            let conn = device.connection();
            let delivery = async move {
                match conn {
                    Some(c) => c.next_delivery().await,
                    None => std::future::pending().await,
                }
            };
            rbuf.reserve(READ_CHUNK);
            tokio::select! {
                r = stream.read_buf(&mut rbuf) => Event::Read(r),
                d = delivery => Event::Delivery(d),
                () = sleep_until(deadline) => Event::Timeout,
                // Connected devices hear of shutdown from the broker (Delivery::Close).
                () = shutdown.cancelled(), if device.connection().is_none() => Event::Shutdown,
            }
        };
        let now = Instant::now();
        let step = match event {
            Event::Read(Ok(0)) => {
                Err(Close { reason: DisconnectReason::Abnormal, why: "peer closed the connection".into() })
            }
            Event::Read(Ok(n)) => {
                broker.metrics().bytes_in(Protocol::Codec, n);
                device.on_stream(&mut rbuf, now).await
            }
            Event::Read(Err(e)) => Err(Close { reason: DisconnectReason::Abnormal, why: format!("read failed: {e}") }),
            Event::Delivery(d) => device.on_delivery(d),
            Event::Timeout => device.on_timeout(now).await,
            Event::Shutdown => Err(Close { reason: DisconnectReason::Shutdown, why: "shutting down".into() }),
        };
        if rbuf.is_empty() {
            // Idle connections keep no read buffer.
            rbuf = BytesMut::new();
        }
        if let Err(close) = step {
            break close;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), flush(&mut stream, &mut device)).await;
    log_close(&name, peer, device.connection().map(|c| c.client_id().to_string()), &close);
    device.finish(&close).await;
    let _ = stream.shutdown().await;
}

async fn flush(stream: &mut TcpStream, device: &mut Device) -> std::io::Result<()> {
    for chunk in device.out.drain(..) {
        match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&chunk)).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "device accepts no bytes")),
        }
    }
    Ok(())
}
