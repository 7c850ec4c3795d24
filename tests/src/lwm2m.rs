//! A small simulated LwM2M device for the end-to-end tests: raw CoAP (roost_coap::codec)
//! over a UDP socket. It registers, updates, de-registers, answers the server's requests
//! from a table of text values, and sends notifications for what is observed.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_coap::codec;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};

use crate::WAIT;

pub struct Device {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    /// `rd/{id}` from the Register's Location-Path.
    pub location: Vec<String>,
    /// Resource values by path (`/3/0/0`), as text.
    pub values: HashMap<String, String>,
    /// Observed paths: token and the next Observe sequence number.
    pub observed: HashMap<String, (Vec<u8>, u32)>,
    /// Requests from the server that arrived while we waited for something else.
    stash: VecDeque<Packet>,
    mid: u16,
}

fn uri(p: &Packet) -> String {
    let segs = codec::uri_path(p).unwrap_or_default();
    format!("/{}", segs.join("/"))
}

impl Device {
    pub async fn new(server: SocketAddr) -> Device {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind a loopback UDP socket");
        let values = [("/3/0/0", "Roost Sim"), ("/3/0/1", "Model 7"), ("/3303/0/5700", "21.5")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Device {
            socket,
            server,
            location: Vec::new(),
            values,
            observed: HashMap::new(),
            stash: VecDeque::new(),
            mid: 1,
        }
    }

    pub async fn send(&self, p: &Packet) {
        let b = codec::encode(p).expect("the simulated device's message encodes");
        self.socket.send_to(&b, self.server).await.expect("send a datagram to the gateway");
    }

    async fn recv_until(&self, deadline: Instant) -> Option<Packet> {
        let mut buf = vec![0u8; 65_536];
        match timeout_at(deadline, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(codec::decode(&buf[..n]).expect("the gateway's datagram decodes")),
            _ => None,
        }
    }

    /// Sends a CON request and waits (bounded) for its piggybacked response; server
    /// requests meanwhile are kept for [`Device::next_request`].
    pub async fn request(&mut self, method: RequestType, path: &[&str], query: &[String], body: &str) -> Packet {
        self.mid = self.mid.wrapping_add(1);
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(method);
        p.header.message_id = self.mid;
        p.set_token(self.mid.to_be_bytes().to_vec());
        for s in path {
            p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        for q in query {
            p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        if !body.is_empty() {
            p.add_option(CoapOption::ContentFormat, codec::encode_uint(40));
        }
        p.payload = body.as_bytes().to_vec();
        self.exchange(p).await
    }

    /// The 1.1 Send operation: `POST /dp` with `body` in content `format`; returns the answer.
    pub async fn send_report(&mut self, format: u16, body: &[u8]) -> Packet {
        self.mid = self.mid.wrapping_add(1);
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(RequestType::Post);
        p.header.message_id = self.mid;
        p.set_token(self.mid.to_be_bytes().to_vec());
        p.add_option(CoapOption::UriPath, b"dp".to_vec());
        p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(format)));
        p.payload = body.to_vec();
        self.exchange(p).await
    }

    /// Sends CON request `p` (message id `self.mid`) and waits (bounded) for its piggybacked
    /// response; server requests meanwhile are kept for [`Device::next_request`].
    async fn exchange(&mut self, p: Packet) -> Packet {
        let (method, path) = (p.header.code, uri(&p));
        self.send(&p).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self
                .recv_until(deadline)
                .await
                .unwrap_or_else(|| panic!("no answer to {method:?} {path:?} within {WAIT:?}"));
            if r.header.get_type() == MessageType::Acknowledgement && r.header.message_id == self.mid {
                return r;
            }
            if matches!(r.header.code, MessageClass::Request(_)) {
                self.stash.push_back(r);
            }
        }
    }

    /// Registers endpoint `ep` (lifetime `lt` s, binding `b`) with objects 1, 3, 3303 and 5;
    /// returns the response (2.01 sets [`Device::location`]).
    pub async fn register(&mut self, ep: &str, lt: u32, b: &str) -> Packet {
        let q = [format!("ep={ep}"), format!("lt={lt}"), "lwm2m=1.1".into(), format!("b={b}")];
        let body = "</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</3/0>,</3303/0>;ver=1.1,</5>";
        let r = self.request(RequestType::Post, &["rd"], &q, body).await;
        if let Some(loc) = r.get_option(CoapOption::LocationPath) {
            self.location = loc.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
        }
        r
    }

    pub async fn update(&mut self, query: &[String], body: &str) -> Packet {
        let loc = self.location.clone();
        let path: Vec<&str> = loc.iter().map(String::as_str).collect();
        self.request(RequestType::Post, &path, query, body).await
    }

    pub async fn deregister(&mut self) -> Packet {
        let loc = self.location.clone();
        let path: Vec<&str> = loc.iter().map(String::as_str).collect();
        self.request(RequestType::Delete, &path, &[], "").await
    }

    /// The next request from the server within `wait`.
    pub async fn next_request(&mut self, wait: Duration) -> Option<Packet> {
        if let Some(p) = self.stash.pop_front() {
            return Some(p);
        }
        let deadline = Instant::now() + wait;
        loop {
            let p = self.recv_until(deadline).await?;
            if matches!(p.header.code, MessageClass::Request(_)) {
                return Some(p);
            }
        }
    }

    /// Answers `req` piggybacked with `code`, an optional content format and a body.
    pub async fn answer(
        &self,
        req: &Packet,
        code: ResponseType,
        format: Option<u16>,
        body: &[u8],
        observe: Option<u32>,
    ) {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Acknowledgement);
        p.header.message_id = req.header.message_id;
        p.header.code = MessageClass::Response(code);
        p.set_token(req.get_token().to_vec());
        if let Some(o) = observe {
            p.add_option(CoapOption::Observe, codec::encode_uint(o));
        }
        if let Some(f) = format {
            p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(f)));
        }
        p.payload = body.to_vec();
        self.send(&p).await;
    }

    /// Waits for the next request and answers it as a small LwM2M client would; returns it.
    pub async fn serve_one(&mut self) -> Packet {
        let req = self.next_request(WAIT).await.expect("a request from the gateway");
        let path = uri(&req);
        let MessageClass::Request(method) = req.header.code else { unreachable!() };
        let accept = codec::uint_option(&req, CoapOption::Accept).and_then(Result::ok);
        let observe = codec::uint_option(&req, CoapOption::Observe).and_then(Result::ok);
        match method {
            RequestType::Get if accept == Some(40) => {
                let links = format!("<{path}>;pmin=10,<{path}/0>,<{path}/1>");
                self.answer(&req, ResponseType::Content, Some(40), links.as_bytes(), None).await;
            }
            RequestType::Get => {
                let Some(v) = self.values.get(&path).cloned() else {
                    self.answer(&req, ResponseType::NotFound, None, b"", None).await;
                    return req;
                };
                let seq = match observe {
                    Some(0) => {
                        self.observed.insert(path.clone(), (req.get_token().to_vec(), 1));
                        Some(0)
                    }
                    Some(_) => {
                        self.observed.remove(&path);
                        None
                    }
                    None => None,
                };
                self.answer(&req, ResponseType::Content, Some(0), v.as_bytes(), seq).await;
            }
            RequestType::Put if req.payload.is_empty() => {
                // Write-Attributes: the query carries them.
                self.answer(&req, ResponseType::Changed, None, b"", None).await;
            }
            RequestType::Put => {
                self.values.insert(path, String::from_utf8_lossy(&req.payload).into_owned());
                self.answer(&req, ResponseType::Changed, None, b"", None).await;
            }
            // Bootstrap-Finish.
            RequestType::Post if path == "/bs" => self.answer(&req, ResponseType::Changed, None, b"", None).await,
            RequestType::Post if path.matches('/').count() == 1 => {
                // Create on an object: the new instance is /o/0.
                let mut p = Packet::new();
                p.header.set_type(MessageType::Acknowledgement);
                p.header.message_id = req.header.message_id;
                p.header.code = MessageClass::Response(ResponseType::Created);
                p.set_token(req.get_token().to_vec());
                p.add_option(CoapOption::LocationPath, path.trim_start_matches('/').as_bytes().to_vec());
                p.add_option(CoapOption::LocationPath, b"0".to_vec());
                self.send(&p).await;
            }
            RequestType::Post => self.answer(&req, ResponseType::Changed, None, b"", None).await,
            RequestType::Delete => self.answer(&req, ResponseType::Deleted, None, b"", None).await,
            _ => self.answer(&req, ResponseType::MethodNotAllowed, None, b"", None).await,
        }
        req
    }

    /// Sends a NON notification of `value` for observed `path`.
    pub async fn notify(&mut self, path: &str, value: &str) {
        let (token, seq) = self
            .observed
            .get_mut(path)
            .map(|(t, s)| {
                *s += 1;
                (t.clone(), *s)
            })
            .unwrap_or_else(|| panic!("{path} is not observed"));
        self.mid = self.mid.wrapping_add(1);
        let mut p = Packet::new();
        p.header.set_type(MessageType::NonConfirmable);
        p.header.code = MessageClass::Response(ResponseType::Content);
        p.header.message_id = self.mid;
        p.set_token(token);
        p.add_option(CoapOption::Observe, codec::encode_uint(seq));
        p.add_option(CoapOption::ContentFormat, codec::encode_uint(0));
        p.payload = value.as_bytes().to_vec();
        self.send(&p).await;
    }
}
