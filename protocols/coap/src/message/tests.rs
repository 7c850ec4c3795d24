//! Virtual-clock tests of the message layer: time only moves when a test says so.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};

use super::*;
use crate::codec;

fn peer() -> SocketAddr {
    "10.0.0.1:5000".parse().unwrap()
}

fn layer() -> MessageLayer {
    MessageLayer::new(Transmission::default(), 7, 64)
}

fn request(kind: MessageType, mid: u16) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(vec![1, 2]);
    p
}

fn response(code: ResponseType) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p
}

fn sent(l: &mut MessageLayer) -> Vec<Packet> {
    let mut v = Vec::new();
    while let Some((_, b)) = l.poll_transmit() {
        v.push(codec::decode(&b).unwrap());
    }
    v
}

#[test]
fn con_request_gets_piggybacked_ack_and_duplicate_gets_cached_response() {
    let t0 = Instant::now();
    let mut l = layer();
    let req = request(MessageType::Confirmable, 100);
    assert_eq!(l.receive(t0, peer(), req.clone()), Received::Request(req.clone()));
    l.respond(peer(), &req, response(ResponseType::Changed));
    let out = sent(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].header.get_type(), MessageType::Acknowledgement);
    assert_eq!(out[0].header.message_id, 100);
    assert_eq!(out[0].get_token(), &[1, 2]);
    // The same message id again: the cached response, and no second Request.
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(l.receive(t1, peer(), req.clone()), Received::Duplicate);
    let again = sent(&mut l);
    assert_eq!(again, out);
    // From another address it is a different exchange.
    let other: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    assert!(matches!(l.receive(t1, other, req.clone()), Received::Request(_)));
}

#[test]
fn dedup_entry_expires_after_exchange_lifetime() {
    let t0 = Instant::now();
    let mut l = layer();
    let req = request(MessageType::Confirmable, 5);
    l.receive(t0, peer(), req.clone());
    let lifetime = Transmission::default().exchange_lifetime();
    assert_eq!(lifetime, Duration::from_secs(247));
    assert_eq!(l.receive(t0 + lifetime - Duration::from_secs(1), peer(), req.clone()), Received::Duplicate);
    assert!(matches!(l.receive(t0 + lifetime, peer(), req), Received::Request(_)));
}

#[test]
fn non_request_gets_non_response_with_new_id() {
    let t0 = Instant::now();
    let mut l = layer();
    let req = request(MessageType::NonConfirmable, 9);
    l.receive(t0, peer(), req.clone());
    l.respond(peer(), &req, response(ResponseType::Changed));
    let out = sent(&mut l);
    assert_eq!(out[0].header.get_type(), MessageType::NonConfirmable);
    assert_ne!(out[0].header.message_id, 9);
    assert_eq!(l.receive(t0, peer(), req), Received::Duplicate);
    assert!(sent(&mut l).is_empty(), "a duplicate NON is not answered again");
}

#[test]
fn confirmable_is_retransmitted_with_doubling_timeout_then_times_out() {
    let t0 = Instant::now();
    let mut l = layer();
    l.send_confirmable(t0, 42, peer(), response(ResponseType::Content));
    assert_eq!(sent(&mut l).len(), 1);
    let first = l.poll_timeout().unwrap() - t0;
    assert!(first >= Duration::from_secs(2) && first <= Duration::from_secs(3), "{first:?}");
    let mut now;
    let mut gaps = vec![first];
    for _ in 0..4 {
        now = l.poll_timeout().unwrap();
        assert!(l.handle_timeout(now).is_empty());
        assert_eq!(sent(&mut l).len(), 1, "one retransmission");
        gaps.push(l.poll_timeout().unwrap() - now);
    }
    for w in gaps.windows(2) {
        assert_eq!(w[1], w[0] * 2);
    }
    now = l.poll_timeout().unwrap();
    assert_eq!(l.handle_timeout(now), vec![TimedOut(42)]);
    assert!(sent(&mut l).is_empty());
    assert_eq!(l.poll_timeout(), None);
    // Total span within MAX_TRANSMIT_SPAN + the last wait (§4.8.2: 45 s + up to 48 s).
    assert!(now - t0 <= Duration::from_secs(93));
    assert_eq!(l.retransmits, 4);
}

#[test]
fn nothing_is_sent_before_the_deadline() {
    let t0 = Instant::now();
    let mut l = layer();
    l.send_confirmable(t0, 1, peer(), response(ResponseType::Content));
    sent(&mut l);
    assert!(l.handle_timeout(t0 + Duration::from_millis(1999)).is_empty());
    assert!(sent(&mut l).is_empty());
}

#[test]
fn ack_completes_and_nstart_holds_the_next_until_then() {
    let t0 = Instant::now();
    let mut l = layer();
    l.send_confirmable(t0, 1, peer(), response(ResponseType::Content));
    l.send_confirmable(t0, 2, peer(), response(ResponseType::Content));
    let out = sent(&mut l);
    assert_eq!(out.len(), 1, "NSTART = 1");
    assert!(l.is_pending(2));
    let ack = codec::empty(MessageType::Acknowledgement, out[0].header.message_id);
    assert_eq!(l.receive(t0, peer(), ack), Received::Acked(1));
    let next = sent(&mut l);
    assert_eq!(next.len(), 1, "the waiting message leaves on the ACK");
    let rst = codec::empty(MessageType::Reset, next[0].header.message_id);
    assert_eq!(l.receive(t0, peer(), rst), Received::Reset(2));
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn rst_to_a_non_reports_its_tag_and_unknown_rst_is_nothing() {
    let t0 = Instant::now();
    let mut l = layer();
    l.send_non(9, peer(), response(ResponseType::Content));
    let out = sent(&mut l);
    let rst = codec::empty(MessageType::Reset, out[0].header.message_id);
    assert_eq!(l.receive(t0, peer(), rst.clone()), Received::Reset(9));
    assert_eq!(l.receive(t0, peer(), rst), Received::Nothing);
    let stray = codec::empty(MessageType::Acknowledgement, 1);
    assert_eq!(l.receive(t0, peer(), stray), Received::Nothing);
}

#[test]
fn ping_and_unknown_con_response_get_rst() {
    let t0 = Instant::now();
    let mut l = layer();
    let ping = codec::empty(MessageType::Confirmable, 77);
    assert_eq!(l.receive(t0, peer(), ping), Received::Nothing);
    let out = sent(&mut l);
    assert_eq!(out[0].header.get_type(), MessageType::Reset);
    assert_eq!(out[0].header.message_id, 77);
    let mut resp = response(ResponseType::Content);
    resp.header.set_type(MessageType::Confirmable);
    resp.header.message_id = 78;
    assert_eq!(l.receive(t0, peer(), resp), Received::Nothing);
    assert_eq!(sent(&mut l)[0].header.get_type(), MessageType::Reset);
}

#[test]
fn dedup_cache_is_bounded() {
    let t0 = Instant::now();
    let mut l = MessageLayer::new(Transmission::default(), 1, 4);
    for mid in 0..10 {
        l.receive(t0, peer(), request(MessageType::Confirmable, mid));
    }
    assert!(l.recent.len() <= 4);
    assert_eq!(l.receive(t0, peer(), request(MessageType::Confirmable, 9)), Received::Duplicate);
}

#[test]
fn rebind_moves_retransmissions_to_the_new_address() {
    let t0 = Instant::now();
    let mut l = layer();
    l.send_confirmable(t0, 1, peer(), response(ResponseType::Content));
    l.poll_transmit();
    let new: SocketAddr = "10.0.0.1:6000".parse().unwrap();
    l.rebind(new);
    let at = l.poll_timeout().unwrap();
    l.handle_timeout(at);
    assert_eq!(l.poll_transmit().unwrap().0, new);
}
