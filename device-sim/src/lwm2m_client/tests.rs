//! The simulated client against a scripted server, on a virtual clock.

use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_coap::codec;

use super::device::{Device, DeviceConfig, Event};

use roost_lwm2m::types::{Value, format};

struct Rig {
    dev: Device,
    t0: Instant,
    mid: u16,
}

fn cf(p: &Packet) -> Option<u32> {
    codec::uint_option(p, CoapOption::ContentFormat).and_then(Result::ok)
}

fn path_of(p: &Packet) -> String {
    codec::uri_path(p).unwrap().join("/")
}

impl Rig {
    fn new(queue_mode: bool) -> Rig {
        let t0 = Instant::now();
        let mut cfg = DeviceConfig::new("ep-1");
        cfg.lifetime = Duration::from_secs(60);
        cfg.queue_mode = queue_mode;
        cfg.queue_window = Duration::from_secs(5);
        cfg.report_period = Duration::from_secs(10);
        Rig { dev: Device::new(cfg, t0), t0, mid: 100 }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    fn sent(&mut self) -> Packet {
        codec::decode(&self.dev.poll_transmit().expect("a datagram")).unwrap()
    }

    fn nothing_sent(&mut self) {
        assert_eq!(self.dev.poll_transmit(), None);
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.dev.poll_event()).collect()
    }

    /// Answers the device's request `p` with a piggybacked `code`.
    fn ack(&mut self, p: &Packet, code: ResponseType, location: &[&str], at: Instant) {
        let mut r = Packet::new();
        r.header.set_type(MessageType::Acknowledgement);
        r.header.message_id = p.header.message_id;
        r.header.code = MessageClass::Response(code);
        r.set_token(p.get_token().to_vec());
        for l in location {
            r.add_option(CoapOption::LocationPath, l.as_bytes().to_vec());
        }
        self.dev.handle(&codec::encode(&r).unwrap(), at);
    }

    fn registered(queue_mode: bool) -> Rig {
        let mut rig = Rig::new(queue_mode);
        rig.dev.register(rig.t0);
        let reg = rig.sent();
        rig.ack(&reg, ResponseType::Created, &["rd", "5a3f"], rig.t0);
        assert_eq!(rig.events(), vec![Event::Registered(vec!["rd".into(), "5a3f".into()])]);
        rig
    }

    /// A CON request from the server; returns the device's response.
    fn request(
        &mut self,
        method: RequestType,
        path: &str,
        opts: &[(CoapOption, Vec<u8>)],
        payload: &[u8],
        at: Instant,
    ) -> Packet {
        self.mid += 1;
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.message_id = self.mid;
        p.header.code = MessageClass::Request(method);
        p.set_token(vec![0xA0, self.mid as u8]);
        for s in path.split('/').filter(|s| !s.is_empty()) {
            p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        for (o, v) in opts {
            p.add_option(*o, v.clone());
        }
        p.payload = payload.to_vec();
        self.dev.handle(&codec::encode(&p).unwrap(), at);
        let r = self.sent();
        assert_eq!(r.header.get_type(), MessageType::Acknowledgement);
        assert_eq!((r.header.message_id, r.get_token()), (self.mid, p.get_token()));
        r
    }

    fn get(&mut self, path: &str, at: Instant) -> Packet {
        self.request(RequestType::Get, path, &[], b"", at)
    }
}

fn code(p: &Packet) -> String {
    super::serve::code_string(p.header.code)
}

/// Content-Format: text/plain.
fn text() -> (CoapOption, Vec<u8>) {
    (CoapOption::ContentFormat, codec::encode_uint(u32::from(format::TEXT)))
}

#[test]
fn registers_updates_and_deregisters() {
    let mut rig = Rig::new(false);
    rig.dev.register(rig.t0);
    let reg = rig.sent();
    assert_eq!(reg.header.code, MessageClass::Request(RequestType::Post));
    assert_eq!(path_of(&reg), "rd");
    let q: Vec<String> = codec::uri_query(&reg).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(q, ["ep=ep-1", "lt=60", "lwm2m=1.1", "b=U"]);
    assert_eq!(cf(&reg), Some(40));
    assert_eq!(reg.payload, b"</1/0>,</3/0>,</5/0>,</3303/0>");
    rig.ack(&reg, ResponseType::Created, &["rd", "5a3f"], rig.t0);
    assert!(rig.dev.is_registered());
    // The Update goes out at 3/4 of the lifetime, to the Location.
    assert_eq!(rig.dev.poll_timeout(), Some(rig.at(45)));
    rig.dev.handle_timeout(rig.at(44));
    rig.nothing_sent();
    rig.dev.handle_timeout(rig.at(45));
    let upd = rig.sent();
    assert_eq!((upd.header.code, path_of(&upd)), (MessageClass::Request(RequestType::Post), "rd/5a3f".into()));
    assert!(upd.payload.is_empty());
    rig.ack(&upd, ResponseType::Changed, &[], rig.at(45));
    assert_eq!(rig.events(), vec![Event::Registered(vec!["rd".into(), "5a3f".into()]), Event::Updated]);
    assert_eq!(rig.dev.poll_timeout(), Some(rig.at(90)));
    rig.dev.deregister(rig.at(50));
    let del = rig.sent();
    assert_eq!((del.header.code, path_of(&del)), (MessageClass::Request(RequestType::Delete), "rd/5a3f".into()));
    rig.ack(&del, ResponseType::Deleted, &[], rig.at(50));
    assert_eq!(rig.events(), vec![Event::Deregistered]);
    assert!(!rig.dev.is_registered());
}

#[test]
fn register_is_retransmitted_then_given_up() {
    let mut rig = Rig::new(false);
    rig.dev.register(rig.t0);
    let first = rig.dev.poll_transmit().unwrap();
    let mut t = rig.t0;
    for _ in 0..4 {
        t = rig.dev.poll_timeout().unwrap();
        rig.dev.handle_timeout(t);
        assert_eq!(rig.dev.poll_transmit().unwrap(), first);
    }
    rig.dev.handle_timeout(rig.dev.poll_timeout().unwrap());
    rig.nothing_sent();
    assert_eq!(rig.events(), vec![Event::RegisterFailed(None)]);
    assert!(t < rig.at(60));
}

#[test]
fn refused_register_and_failed_update_register_again() {
    let mut rig = Rig::new(false);
    rig.dev.register(rig.t0);
    let reg = rig.sent();
    rig.ack(&reg, ResponseType::Forbidden, &[], rig.t0);
    assert_eq!(rig.events(), vec![Event::RegisterFailed(Some("4.03".into()))]);
    let mut rig = Rig::registered(false);
    rig.dev.handle_timeout(rig.at(45));
    let upd = rig.sent();
    rig.ack(&upd, ResponseType::NotFound, &[], rig.at(45));
    let again = rig.sent();
    assert_eq!(path_of(&again), "rd");
    assert_eq!(rig.events(), vec![Event::UpdateFailed]);
}

#[test]
fn reads_in_text_and_the_default_format_for_instances() {
    let mut rig = Rig::registered(false);
    let r = rig.get("/3/0/2", rig.at(1));
    assert_eq!((code(&r), cf(&r), r.payload.as_slice()), ("2.05".into(), Some(0), b"ep-1".as_slice()));
    let r = rig.get("/3303/0/5700", rig.at(1));
    assert_eq!(code(&r), "2.05");
    let celsius: f64 = std::str::from_utf8(&r.payload).unwrap().parse().unwrap();
    assert!((20.0..=25.0).contains(&celsius), "{celsius}");
    assert_eq!(rig.get("/3303/0/5701", rig.at(1)).payload, b"Cel");
    // TLV asked for one resource; a whole instance comes in TLV by default.
    let accept_tlv = [(CoapOption::Accept, codec::encode_uint(u32::from(format::TLV)))];
    let r = rig.request(RequestType::Get, "/3/0/2", &accept_tlv, b"", rig.at(1));
    assert_eq!((code(&r), cf(&r)), ("2.05".into(), Some(11542)));
    let one = roost_lwm2m::content::decode(format::TLV, "/3/0/2".parse().unwrap(), &r.payload, &|_| {
        Some(roost_lwm2m::types::Kind::String)
    })
    .unwrap();
    assert_eq!(one[0].value, Value::String("ep-1".into()));
    let r = rig.get("/3/0", rig.at(1));
    assert_eq!((code(&r), cf(&r)), ("2.05".into(), Some(11542)));
    let registry = roost_lwm2m::objects::Registry::builtin();
    let all =
        roost_lwm2m::content::decode(format::TLV, "/3/0".parse().unwrap(), &r.payload, &|p| registry.kind(p)).unwrap();
    assert!(
        all.iter().any(|rec| rec.path.to_string() == "/3/0/2" && rec.value == Value::String("ep-1".into())),
        "{all:?}"
    );
    assert_eq!(code(&rig.get("/3/7", rig.at(1))), "4.04");
    assert_eq!(code(&rig.get("/42", rig.at(1))), "4.04");
    assert_eq!(code(&rig.get("/3/0/4", rig.at(1))), "4.05");
    assert_eq!(code(&rig.get("/rd/x", rig.at(1))), "4.04");
    assert!(rig.events().iter().all(|e| matches!(e, Event::Answered(_))));
}

#[test]
fn discover_write_attributes_and_writes() {
    let mut rig = Rig::registered(false);
    let link = [(CoapOption::Accept, codec::encode_uint(40))];
    let attrs = [(CoapOption::UriQuery, b"pmin=2".to_vec()), (CoapOption::UriQuery, b"pmax=30".to_vec())];
    assert_eq!(code(&rig.request(RequestType::Put, "/3303/0/5700", &attrs, b"", rig.at(1))), "2.04");
    assert_eq!(rig.dev.attrs(&"/3303/0/5700".parse().unwrap()).pmax, Some(30));
    let bad = [(CoapOption::UriQuery, b"pmin=x".to_vec())];
    assert_eq!(code(&rig.request(RequestType::Put, "/3303/0/5700", &bad, b"", rig.at(1))), "4.00");
    let r = rig.request(RequestType::Get, "/3303/0", &link, b"", rig.at(1));
    assert_eq!((code(&r), cf(&r)), ("2.05".into(), Some(40)));
    assert_eq!(
        std::str::from_utf8(&r.payload).unwrap(),
        "</3303/0>,</3303/0/5601>,</3303/0/5602>,</3303/0/5605>,</3303/0/5700>;pmin=2;pmax=30,</3303/0/5701>"
    );
    let r = rig.request(RequestType::Put, "/1/0/1", &[text()], b"120", rig.at(2));
    assert_eq!(code(&r), "2.04");
    assert_eq!(rig.get("/1/0/1", rig.at(2)).payload, b"120");
    assert_eq!(code(&rig.request(RequestType::Put, "/3/0/0", &[text()], b"x", rig.at(2))), "4.05");
    assert_eq!(code(&rig.request(RequestType::Put, "/1/0/1", &[text()], b"abc", rig.at(2))), "4.00");
    let unknown = [(CoapOption::ContentFormat, codec::encode_uint(9999))];
    assert_eq!(code(&rig.request(RequestType::Put, "/1/0/1", &unknown, b"1", rig.at(2))), "4.15");
}

#[test]
fn execute_reboot_registers_again_and_trigger_updates() {
    let mut rig = Rig::registered(false);
    assert_eq!(code(&rig.request(RequestType::Post, "/1/0/8", &[], b"", rig.at(3))), "2.04");
    let upd = rig.sent();
    assert_eq!(path_of(&upd), "rd/5a3f");
    rig.ack(&upd, ResponseType::Changed, &[], rig.at(3));
    assert_eq!(code(&rig.request(RequestType::Post, "/3/0/4", &[], b"", rig.at(4))), "2.04");
    let reg = rig.sent();
    assert_eq!((path_of(&reg), reg.payload.as_slice()), ("rd".into(), b"</1/0>,</3/0>,</5/0>,</3303/0>".as_slice()));
    assert_eq!(code(&rig.request(RequestType::Post, "/3/0/0", &[], b"", rig.at(4))), "4.05");
}

#[test]
fn create_and_delete_sensors_update_the_object_list() {
    let mut rig = Rig::registered(false);
    let r = rig.request(RequestType::Post, "/3303", &[], b"", rig.at(1));
    assert_eq!(code(&r), "2.01");
    let loc: Vec<_> = r.get_option(CoapOption::LocationPath).unwrap().iter().cloned().collect();
    assert_eq!(loc, [b"3303".to_vec(), b"1".to_vec()]);
    let upd = rig.sent();
    assert_eq!(
        (path_of(&upd), upd.payload.as_slice()),
        ("rd/5a3f".into(), b"</1/0>,</3/0>,</5/0>,</3303/0>,</3303/1>".as_slice())
    );
    rig.ack(&upd, ResponseType::Changed, &[], rig.at(1));
    assert_eq!(rig.get("/3303/1/5701", rig.at(1)).payload, b"Cel");
    assert_eq!(code(&rig.request(RequestType::Delete, "/3303/1", &[], b"", rig.at(2))), "2.02");
    assert_eq!(rig.sent().payload, b"</1/0>,</3/0>,</5/0>,</3303/0>");
    assert_eq!(code(&rig.request(RequestType::Delete, "/3/0", &[], b"", rig.at(2))), "4.05");
    assert_eq!(code(&rig.request(RequestType::Post, "/3", &[], b"", rig.at(2))), "4.05");
}

#[test]
fn observe_notifies_with_rising_sequence_until_cancelled() {
    let mut rig = Rig::registered(false);
    let obs = [(CoapOption::Observe, codec::encode_uint(0))];
    let r = rig.request(RequestType::Get, "/3303/0/5700", &obs, b"", rig.at(1));
    assert_eq!((code(&r), codec::uint_option(&r, CoapOption::Observe)), ("2.05".into(), Some(Ok(0))));
    let token = r.get_token().to_vec();
    assert_eq!(rig.dev.poll_timeout(), Some(rig.at(11)));
    let mut last_mid = 0;
    for (n, at) in [(1, 11), (2, 21)] {
        rig.dev.handle_timeout(rig.at(at));
        let note = rig.sent();
        assert_eq!(note.header.get_type(), MessageType::NonConfirmable);
        assert_eq!((code(&note), note.get_token()), ("2.05".into(), token.as_slice()));
        assert_eq!(codec::uint_option(&note, CoapOption::Observe), Some(Ok(n)));
        last_mid = note.header.message_id;
    }
    // pmax on the instance shortens the period for the resource below it.
    let attrs = [(CoapOption::UriQuery, b"pmax=3".to_vec())];
    rig.request(RequestType::Put, "/3303/0", &attrs, b"", rig.at(21));
    assert_eq!(rig.dev.poll_timeout(), Some(rig.at(24)));
    // A RST to a notification cancels it.
    rig.dev.handle(&codec::encode(&codec::empty(MessageType::Reset, last_mid)).unwrap(), rig.at(22));
    assert!(rig.dev.observations().is_empty());
    rig.dev.handle_timeout(rig.at(30));
    rig.nothing_sent();
    // Cancel with Observe 1 on the same token.
    rig.request(RequestType::Get, "/3/0/9", &obs, b"", rig.at(31));
    assert_eq!(rig.dev.observations().len(), 1);
    let cancel = [(CoapOption::Observe, codec::encode_uint(1))];
    let r = rig.request(RequestType::Get, "/3/0/9", &cancel, b"", rig.at(32));
    assert_eq!(code(&r), "2.05");
    assert!(rig.dev.observations().is_empty());
    let notified = rig.events().iter().filter(|e| matches!(e, Event::Notified(_))).count();
    assert_eq!(notified, 2);
}

#[test]
fn queue_mode_sleeps_after_the_window_until_the_next_update() {
    let mut rig = Rig::new(true);
    rig.dev.register(rig.t0);
    let reg = rig.sent();
    assert!(codec::uri_query(&reg).contains(&("b".into(), "UQ".into())));
    rig.ack(&reg, ResponseType::Created, &["rd", "q"], rig.t0);
    assert_eq!(code(&rig.get("/3/0/9", rig.at(4))), "2.05");
    // The response reopened the window: asleep 5 s after it.
    rig.mid += 1;
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.message_id = rig.mid;
    p.header.code = MessageClass::Request(RequestType::Get);
    p.add_option(CoapOption::UriPath, b"3".to_vec());
    rig.dev.handle(&codec::encode(&p).unwrap(), rig.at(10));
    rig.nothing_sent();
    assert!(rig.events().contains(&Event::Ignored));
    rig.dev.handle_timeout(rig.at(45));
    let upd = rig.sent();
    rig.ack(&upd, ResponseType::Changed, &[], rig.at(45));
    assert_eq!(code(&rig.get("/3/0/9", rig.at(46))), "2.05");
}

#[test]
fn duplicate_requests_get_the_same_answer_and_garbage_is_ignored() {
    let mut rig = Rig::registered(false);
    rig.get("/3/0/2", rig.at(1));
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.message_id = rig.mid;
    p.header.code = MessageClass::Request(RequestType::Delete);
    p.add_option(CoapOption::UriPath, b"3303".to_vec());
    rig.dev.handle(&codec::encode(&p).unwrap(), rig.at(2));
    let again = rig.sent();
    assert_eq!(again.payload, b"ep-1");
    for junk in [&b""[..], b"\x40", b"\xff\xff\xff\xff\xff", b"\x44\x01\x00\x01\xde\xad\xbe\xef\xff"] {
        rig.dev.handle(junk, rig.at(3));
    }
    rig.nothing_sent();
}

proptest::proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
        let mut rig = Rig::registered(false);
        rig.dev.handle(&bytes, rig.at(1));
        let _ = rig.dev.poll_transmit();
    }
}

#[test]
fn a_separate_response_to_the_register_is_waited_for() {
    let mut rig = Rig::new(false);
    rig.dev.register(rig.t0);
    let reg = rig.sent();
    let empty = codec::empty(MessageType::Acknowledgement, reg.header.message_id);
    rig.dev.handle(&codec::encode(&empty).unwrap(), rig.at(1));
    // No retransmission after the empty ACK.
    rig.dev.handle_timeout(rig.at(20));
    rig.nothing_sent();
    let mut r = Packet::new();
    r.header.set_type(MessageType::Confirmable);
    r.header.message_id = 999;
    r.header.code = MessageClass::Response(ResponseType::Created);
    r.set_token(reg.get_token().to_vec());
    r.add_option(CoapOption::LocationPath, b"rd".to_vec());
    r.add_option(CoapOption::LocationPath, b"s".to_vec());
    rig.dev.handle(&codec::encode(&r).unwrap(), rig.at(21));
    let ack = rig.sent();
    assert_eq!(
        (ack.header.get_type(), ack.header.message_id, ack.header.code),
        (MessageType::Acknowledgement, 999, MessageClass::Empty)
    );
    assert_eq!(rig.events(), vec![Event::Registered(vec!["rd".into(), "s".into()])]);
    // An Update on request (the queue-mode wake-up).
    rig.dev.update(rig.at(22));
    assert_eq!(path_of(&rig.sent()), "rd/s");
}

mod blockwise;
mod send;
