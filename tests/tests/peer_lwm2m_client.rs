//! The independent LwM2M client (npm lwm2m-node-lib, driven by `peers/lwm2m_client.js`,
//! installed by scripts/test) against a scripted server on a UDP socket: it sends a
//! well-formed Register (`POST /rd?ep=..&lt=..&lwm2m=..&b=U` with the object links), reports
//! the Location, answers a Read, a Write and an Execute, and de-registers on SIGTERM. The gateway's interop tests
//! drive the same peer against Roost (`tests/lwm2m.rs`).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_coap::codec;
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(20);

use roost_e2e::lwm2m_peer::{line, spawn as spawn_peer};

async fn recv(server: &UdpSocket) -> (Packet, SocketAddr) {
    let mut buf = vec![0u8; 4096];
    let (n, from) =
        tokio::time::timeout(WAIT, server.recv_from(&mut buf)).await.expect("a datagram from the peer").unwrap();
    (codec::decode(&buf[..n]).unwrap(), from)
}

async fn answer(server: &UdpSocket, to: SocketAddr, req: &Packet, code: ResponseType, location: &[&str]) {
    let mut r = codec::empty(MessageType::Acknowledgement, req.header.message_id);
    r.header.code = MessageClass::Response(code);
    r.set_token(req.get_token().to_vec());
    for l in location {
        r.add_option(CoapOption::LocationPath, l.as_bytes().to_vec());
    }
    server.send_to(&codec::encode(&r).unwrap(), to).await.unwrap();
}

fn request(method: RequestType, message_id: u16, path: &str) -> Packet {
    let mut p = codec::empty(MessageType::Confirmable, message_id);
    p.header.code = MessageClass::Request(method);
    p.set_token(message_id.to_be_bytes().to_vec());
    for s in path.split('/') {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    p
}

/// Sends `req` to the peer; the code of its piggybacked answer.
async fn exchange(server: &UdpSocket, peer: SocketAddr, req: &Packet) -> MessageClass {
    server.send_to(&codec::encode(req).unwrap(), peer).await.unwrap();
    let (resp, _) = recv(server).await;
    assert_eq!((resp.header.get_type(), resp.header.message_id), (MessageType::Acknowledgement, req.header.message_id));
    resp.header.code
}

#[tokio::test]
async fn lwm2m_node_lib_registers_answers_requests_and_deregisters() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut child, mut lines) = spawn_peer(server.local_addr().unwrap(), "peer-ep-1");

    let (reg, peer) = recv(&server).await;
    assert_eq!(reg.header.code, MessageClass::Request(RequestType::Post));
    assert_eq!(reg.header.get_type(), MessageType::Confirmable);
    assert_eq!(codec::uri_path(&reg).unwrap(), ["rd"]);
    let query = codec::uri_query(&reg);
    for (k, v) in [("ep", "peer-ep-1"), ("lt", "120"), ("b", "U")] {
        assert!(query.contains(&(k.to_string(), v.to_string())), "{k}={v} missing from {query:?}");
    }
    assert!(query.iter().any(|(k, v)| k == "lwm2m" && v.starts_with('1')), "{query:?}");
    assert_eq!(std::str::from_utf8(&reg.payload).unwrap(), "</1/0>,</3/0>,</3303/0>");
    answer(&server, peer, &reg, ResponseType::Created, &["rd", "p1"]).await;
    assert_eq!(line(&mut lines, "registered").await, "registered rd/p1");

    // The peer listens on the port it registered from once it has printed `registered`.
    let mut read = codec::empty(MessageType::Confirmable, 0x5151);
    read.header.code = MessageClass::Request(RequestType::Get);
    read.set_token(vec![7, 7]);
    for s in ["3303", "0", "5700"] {
        read.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    server.send_to(&codec::encode(&read).unwrap(), peer).await.unwrap();
    let (resp, _) = recv(&server).await;
    assert_eq!(resp.header.code, MessageClass::Response(ResponseType::Content));
    assert_eq!((resp.header.message_id, resp.get_token()), (0x5151, &[7u8, 7][..]));
    assert_eq!(resp.payload, b"21.5");
    assert_eq!(line(&mut lines, "request").await, "request read /3303/0/5700 21.5");

    let mut write = request(RequestType::Put, 0x5152, "3303/0/5701");
    write.add_option(CoapOption::ContentFormat, codec::encode_uint(0));
    write.payload = b"Far".to_vec();
    assert_eq!(exchange(&server, peer, &write).await, MessageClass::Response(ResponseType::Changed));
    assert_eq!(line(&mut lines, "request").await, "request write /3303/0/5701 Far");
    let exec = request(RequestType::Post, 0x5153, "3/0/4");
    assert_eq!(exchange(&server, peer, &exec).await, MessageClass::Response(ResponseType::Changed));
    assert_eq!(line(&mut lines, "request").await, "request execute /3/0/4");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let (del, from) = recv(&server).await;
    assert_eq!(
        (del.header.code, codec::uri_path(&del).unwrap()),
        (MessageClass::Request(RequestType::Delete), vec!["rd".to_string(), "p1".to_string()])
    );
    answer(&server, from, &del, ResponseType::Deleted, &[]).await;
    assert_eq!(line(&mut lines, "deregistered").await, "deregistered");
    tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
}
