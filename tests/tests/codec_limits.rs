//! `[[codec]] limits` hold: a TCP frame over `max_frame_size` closes that connection before
//! it is buffered further; UDP devices beyond `max_connections` are not served, and a
//! connection that never connects is closed at `connect_timeout`.

use crate::codec_support;

use codec_support::LineDevice;
use roost_e2e::{QUIET, TestBroker, WAIT};
use tokio::net::UdpSocket;

#[tokio::test]
async fn an_overlong_tcp_frame_closes_that_connection_only() {
    let broker = TestBroker::start_with(
        "[[codec]]\ncodec = \"line\"\nbind = \"127.0.0.1:0\"\nlimits = { max_frame_size = 64 }\n",
    )
    .await;
    let addr = broker.codec_addr("line");
    let mut good = LineDevice::connect(addr).await;
    assert_eq!(good.ask("CONNECT good").await, "OK");
    let mut long = LineDevice::connect(addr).await;
    assert_eq!(long.ask("CONNECT long").await, "OK");
    long.send_raw(&[b'x'; 200]).await;
    assert_eq!(long.expect_closed(WAIT).await, Vec::<String>::new());
    assert_eq!(good.ask("PING").await, "PONG");
    broker.stop().await;
}

#[tokio::test]
async fn a_device_that_never_connects_is_closed_at_connect_timeout() {
    let broker = TestBroker::start_with(
        "[[codec]]\ncodec = \"line\"\nbind = \"127.0.0.1:0\"\nlimits = { connect_timeout = \"300ms\" }\n",
    )
    .await;
    let mut idle = LineDevice::connect(broker.codec_addr("line")).await;
    assert_eq!(idle.expect_closed(WAIT).await, Vec::<String>::new());
    broker.stop().await;
}

#[tokio::test]
async fn udp_devices_beyond_max_connections_are_not_served() {
    let broker = TestBroker::start_with(
        "[[codec]]\ncodec = \"line\"\ntransport = \"udp\"\nbind = \"127.0.0.1:0\"\nlimits = { max_connections = 1 }\n",
    )
    .await;
    let addr = broker.codec_addr("line");
    let first = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    first.connect(addr).await.expect("connect");
    let second = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    second.connect(addr).await.expect("connect");
    let mut buf = [0u8; 64];

    first.send(b"CONNECT one\n").await.expect("send");
    let n = tokio::time::timeout(WAIT, first.recv(&mut buf)).await.expect("answer").expect("recv");
    assert_eq!(&buf[..n], b"OK\n");
    second.send(b"CONNECT two\n").await.expect("send");
    assert!(tokio::time::timeout(QUIET, second.recv(&mut buf)).await.is_err(), "the second device is not served");
    first.send(b"PING\n").await.expect("send");
    let n = tokio::time::timeout(WAIT, first.recv(&mut buf)).await.expect("answer").expect("recv");
    assert_eq!(&buf[..n], b"PONG\n");
    broker.stop().await;
}
