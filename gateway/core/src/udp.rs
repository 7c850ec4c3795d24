//! UDP sockets for the datagram adapters (MQTT-SN, CoAP, LoRaWAN packet forwarders).

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Binds every configured address, asking the kernel for a receive buffer of
/// `recv_buffer` bytes (0: the system default). A fleet sending in step fills the default
/// buffer in a burst, and UDP drops what does not fit; the kernel caps the request at
/// `net.core.rmem_max`. An IPv6 address binds IPv6 only, so `0.0.0.0` and `[::]` can both
/// be listed.
pub fn bind(addrs: &[SocketAddr], recv_buffer: usize) -> std::io::Result<Vec<UdpSocket>> {
    use socket2::{Domain, Socket, Type};
    let mut sockets = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let socket = Socket::new(Domain::for_address(*addr), Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        if recv_buffer > 0 {
            socket.set_recv_buffer_size(recv_buffer)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&(*addr).into())?;
        sockets.push(UdpSocket::from_std(socket.into())?);
    }
    Ok(sockets)
}
