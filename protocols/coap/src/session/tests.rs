//! Session tests with a virtual clock and an in-memory broker: observe flow control
//! (RFC 7641 §4.5), observer removal on timeout, NAT rebinding by token.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_core::settings::BrokerSettings;
use roost_core::{Broker, ClientId, QoS};

use super::*;
use crate::settings::{CoapSettings, NotifyType};

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn setup(settings: CoapSettings) -> (Broker, Session) {
    let broker = Broker::new(BrokerSettings::default());
    let ctx = Context::new(broker.clone(), settings);
    let s = Session::new(ctx, ClientId::new("dev"), peer(1000), Instant::now(), 1);
    (broker, s)
}

fn req(method: RequestType, mid: u16, path: &str, query: &[&str]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(vec![9, 9]);
    for s in path.split('/') {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p
}

fn out(s: &mut Session) -> Vec<(SocketAddr, Packet)> {
    let mut v = Vec::new();
    while let Some((a, b)) = s.poll_transmit() {
        v.push((a, crate::codec::decode(&b).unwrap()));
    }
    v
}

async fn deliver_all(s: &mut Session, now: Instant) {
    while let Some(d) = s.connection().and_then(|c| c.try_next_delivery()) {
        s.handle_delivery(now, d).await;
    }
}

async fn observe(s: &mut Session, now: Instant, path: &str) {
    let mut r = req(RequestType::Get, 1, path, &[]);
    r.add_option(CoapOption::Observe, vec![]);
    s.handle_packet(now, peer(1000), r).await;
    let o = out(s);
    assert_eq!(o[0].1.header.code, MessageClass::Response(ResponseType::Content));
}

#[tokio::test]
async fn one_con_notification_in_flight_and_the_queue_keeps_the_newest() {
    let settings = CoapSettings { notify_type: NotifyType::Con, notify_queue: 2, ..CoapSettings::default() };
    let (broker, mut s) = setup(settings);
    let t0 = Instant::now();
    observe(&mut s, t0, "ps/t").await;
    for i in 0..5 {
        broker.publish(roost_core::Message::new("t", format!("m{i}"), QoS::AtMostOnce, false));
    }
    deliver_all(&mut s, t0).await;
    let sent = out(&mut s);
    assert_eq!(sent.len(), 1, "one CON in flight");
    assert_eq!(sent[0].1.payload, b"m0");
    assert_eq!(sent[0].1.header.get_type(), MessageType::Confirmable);
    // m1, m2 were dropped for m3, m4 (queue of 2 keeps the newest).
    assert_eq!(s.ctx.counters.notify_dropped.load(Relaxed), 2);
    let ack = crate::codec::empty(MessageType::Acknowledgement, sent[0].1.header.message_id);
    s.handle_packet(t0, peer(1000), ack).await;
    let next = out(&mut s);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.payload, b"m3");
    let seq = |p: &Packet| crate::codec::uint_option(p, CoapOption::Observe).unwrap().unwrap();
    assert!(seq(&next[0].1) > seq(&sent[0].1), "Observe numbers rise");
}

#[tokio::test]
async fn an_observer_whose_notification_times_out_is_removed_with_its_subscription() {
    let settings = CoapSettings { notify_type: NotifyType::Con, ..CoapSettings::default() };
    let (broker, mut s) = setup(settings);
    let t0 = Instant::now();
    observe(&mut s, t0, "ps/t/+").await;
    assert_eq!(broker.subscription_filter_count(), 1);
    broker.publish(roost_core::Message::new("t/x", "hello", QoS::AtMostOnce, false));
    deliver_all(&mut s, t0).await;
    assert_eq!(out(&mut s).len(), 1);
    // Keep the device alive (a heartbeat-free connection-less observer does not idle out)
    // and let the retransmissions run out: 4 resends, then the observer goes.
    let mut resends = 0;
    while s.observer_count() > 0 {
        let at = s.poll_timeout().unwrap();
        assert!(at - t0 < Duration::from_secs(100), "gave up in time");
        s.handle_timeout(at).await;
        resends += out(&mut s).len();
    }
    assert_eq!(resends, 4);
    assert_eq!(broker.subscription_filter_count(), 0);
    assert_eq!(s.ctx.counters.observers_lost.load(Relaxed), 1);
}

#[tokio::test]
async fn a_valid_token_from_a_new_address_moves_the_session_and_its_notifications() {
    let settings = CoapSettings { notify_type: NotifyType::Non, ..CoapSettings::default() };
    let (broker, mut s) = setup(settings);
    let t0 = Instant::now();
    s.handle_packet(t0, peer(1000), req(RequestType::Post, 1, "mqtt/connection", &["clientid=dev"])).await;
    let created = out(&mut s);
    assert_eq!(created[0].1.header.code, MessageClass::Response(ResponseType::Created));
    let token = format!("token={}", String::from_utf8(created[0].1.payload.clone()).unwrap());
    let mut r = req(RequestType::Get, 2, "ps/cmd", &["clientid=dev", &token]);
    r.add_option(CoapOption::Observe, vec![]);
    s.handle_packet(t0, peer(1000), r).await;
    out(&mut s);
    // The NAT gives the device a new port; its next request carries the token.
    s.handle_packet(t0, peer(2000), req(RequestType::Put, 3, "mqtt/connection", &["clientid=dev", &token])).await;
    assert_eq!(out(&mut s)[0].0, peer(2000));
    broker.publish(roost_core::Message::new("cmd", "go", QoS::AtMostOnce, false));
    deliver_all(&mut s, t0).await;
    let n = out(&mut s);
    assert_eq!((n[0].0, &n[0].1.payload[..]), (peer(2000), &b"go"[..]));
    // A wrong token from a third address does not move it.
    s.handle_packet(t0, peer(3000), req(RequestType::Put, 4, "mqtt/connection", &["clientid=dev", "token=x"])).await;
    let r = out(&mut s);
    assert_eq!(r[0].1.header.code, MessageClass::Response(ResponseType::Unauthorized));
    assert_eq!(s.peer(), peer(2000));
    // Without heartbeats the connection expires after 1.5 heartbeats.
    let at = s.poll_timeout().unwrap();
    assert_eq!(at - t0, Duration::from_secs(45));
    s.handle_timeout(at).await;
    assert!(s.ended().is_some());
}

#[tokio::test]
async fn a_non_observer_gets_a_con_notification_after_24_hours() {
    let settings = CoapSettings { notify_type: NotifyType::Non, ..CoapSettings::default() };
    let (broker, mut s) = setup(settings);
    let t0 = Instant::now();
    observe(&mut s, t0, "ps/t").await;
    broker.publish(roost_core::Message::new("t", "a", QoS::AtMostOnce, false));
    deliver_all(&mut s, t0).await;
    assert_eq!(out(&mut s)[0].1.header.get_type(), MessageType::NonConfirmable);
    // RFC 7641 §4.5: at least one CON a day, so a vanished device is found out.
    let later = t0 + Duration::from_secs(24 * 3600);
    broker.publish(roost_core::Message::new("t", "b", QoS::AtMostOnce, false));
    deliver_all(&mut s, later).await;
    assert_eq!(out(&mut s)[0].1.header.get_type(), MessageType::Confirmable);
}
