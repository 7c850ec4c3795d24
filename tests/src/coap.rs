//! A raw CoAP endpoint (coap-lite messages over a UDP socket) for exact response codes and
//! hand-made datagrams, shared by the CoAP, security and `$SYS` tests.

use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use tokio::net::UdpSocket;
use tokio::time::timeout;

use crate::WAIT;

/// A raw CoAP endpoint for exact codes and hand-made datagrams.
pub struct Raw {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    /// Message ids of [`Raw::call`]: sequential from a random start, as RFC 7252 §4.4 asks.
    /// (Random ids collide: among 500 requests, more likely than not, and the gateway rightly
    /// answers a repeated id from its duplicate cache without handling the request again.)
    next_mid: std::sync::atomic::AtomicU16,
}

impl Raw {
    pub async fn new(server: SocketAddr) -> Raw {
        Raw {
            socket: UdpSocket::bind("127.0.0.1:0").await.expect("bind a loopback UDP socket"),
            server,
            next_mid: std::sync::atomic::AtomicU16::new(rand::random()),
        }
    }

    pub async fn send(&self, p: &Packet) {
        self.socket
            .send_to(&p.to_bytes().expect("the test's CoAP message encodes"), self.server)
            .await
            .expect("send a datagram to the gateway");
    }

    pub async fn send_bytes(&self, b: &[u8]) {
        self.socket.send_to(b, self.server).await.expect("send a datagram to the gateway");
    }

    pub async fn recv_within(&self, wait: Duration) -> Option<Packet> {
        let mut buf = vec![0u8; 65_536];
        match timeout(wait, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(Packet::from_bytes(&buf[..n]).expect("the gateway's answer parses as CoAP")),
            _ => None,
        }
    }

    pub async fn recv(&self) -> Packet {
        self.recv_within(WAIT).await.expect("a CoAP answer within 3 s")
    }

    /// Sends a CON request and returns its piggybacked response.
    pub async fn call(&self, method: RequestType, path: &str, query: &[&str], payload: &[u8]) -> Packet {
        let mid = self.next_mid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = request(MessageType::Confirmable, method, mid, path, query, payload);
        self.send(&p).await;
        let r = self.recv().await;
        assert_eq!(r.header.message_id, p.header.message_id);
        r
    }
}

pub fn request(kind: MessageType, method: RequestType, mid: u16, path: &str, query: &[&str], payload: &[u8]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(vec![0x42, (mid & 0xFF) as u8]);
    for seg in path.split('/') {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p.payload = payload.to_vec();
    p
}

pub fn code(p: &Packet) -> MessageClass {
    p.header.code
}

pub fn resp(r: ResponseType) -> MessageClass {
    MessageClass::Response(r)
}
