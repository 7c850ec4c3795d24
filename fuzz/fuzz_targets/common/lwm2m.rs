//! Shared by the LwM2M fuzz targets: the sans-IO registration server
//! (`roost_lwm2m::server::Server`) with virtual time, one device address per index, the
//! core's answers given at once (every Connect accepted), and a reader of `[op][len][bytes]`
//! records out of the fuzz input.

// Each target includes this module and uses a different part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_coap::codec;
use roost_lwm2m::objects::Registry;
use roost_lwm2m::server::{Counters, Lwm2mSettings, Output, Server};
use roost_lwm2m::types::Path;

pub struct Harness {
    pub server: Server,
    pub now: Instant,
    mid: u16,
    /// Requests the server sent devices (decoded), for the targets to answer.
    pub requests: Vec<(SocketAddr, Packet)>,
    /// Endpoints the core connected.
    pub endpoints: Vec<String>,
}

pub fn peer(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1 + i % 4], 40_000))
}

impl Harness {
    pub fn new() -> Harness {
        static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
        let reg = REGISTRY.get_or_init(|| Arc::new(Registry::builtin())).clone();
        let kind_of = Arc::new(move |p: &Path| reg.kind(p));
        let server = Server::new(Arc::new(Lwm2mSettings::default()), kind_of, Arc::new(Counters::default()), 7);
        Harness { server, now: Instant::now(), mid: 1, requests: Vec::new(), endpoints: Vec::new() }
    }

    pub fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.server.handle_datagram(self.now, from, bytes);
        self.settle();
    }

    /// A confirmable request with these options and body.
    pub fn request(&mut self, from: SocketAddr, method: RequestType, path: &[&[u8]], query: &[&[u8]], body: &[u8]) {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(method);
        self.mid = self.mid.wrapping_add(1);
        p.header.message_id = self.mid;
        p.set_token(self.mid.to_be_bytes().to_vec());
        for s in path {
            p.add_option(CoapOption::UriPath, s.to_vec());
        }
        for q in query {
            p.add_option(CoapOption::UriQuery, q.to_vec());
        }
        p.payload = body.to_vec();
        if let Ok(bytes) = codec::encode(&p) {
            self.datagram(from, &bytes);
        }
    }

    /// Registers `ep` from `from` with a typical object list.
    pub fn register(&mut self, from: SocketAddr, ep: &str) {
        let ep = format!("ep={ep}");
        let query: [&[u8]; 4] = [ep.as_bytes(), b"lt=300", b"lwm2m=1.1", b"b=U"];
        let body = b"</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</3/0>,</3303/0>;ver=1.1";
        self.request(from, RequestType::Post, &[b"rd"], &query, body);
    }

    /// The device answers request `r` piggybacked, with `code` and `body`.
    pub fn answer(&mut self, to: SocketAddr, r: &Packet, code: ResponseType, format: Option<u16>, body: &[u8]) {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Acknowledgement);
        p.header.message_id = r.header.message_id;
        p.header.code = MessageClass::Response(code);
        p.set_token(r.get_token().to_vec());
        if let Some(f) = format {
            p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(f)));
        }
        p.payload = body.to_vec();
        if let Ok(bytes) = codec::encode(&p) {
            self.datagram(to, &bytes);
        }
    }

    pub fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.server.handle_timeout(self.now);
        self.settle();
    }

    /// Accepts every connection the server asks the core for; collects what it sends.
    fn settle(&mut self) {
        while let Some(out) = self.server.poll_output() {
            if let Output::Connect { ticket, ep, .. } = out {
                self.endpoints.push(ep);
                self.server.connected(self.now, ticket, Ok(()));
            }
        }
        while let Some((to, bytes)) = self.server.poll_transmit() {
            let packet = codec::decode(&bytes)
                .unwrap_or_else(|e| panic!("the server sent a datagram that does not decode: {e}"));
            if matches!(packet.header.code, MessageClass::Request(_)) && self.requests.len() < 64 {
                self.requests.push((to, packet));
            }
        }
    }
}

/// `[op][len][len bytes]` records, the last one cut short by the end of the input.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let [op, len, rest @ ..] = data else { return None };
        let n = usize::from(*len).min(rest.len());
        let (body, tail) = rest.split_at(n);
        data = tail;
        Some((*op, body))
    })
}
