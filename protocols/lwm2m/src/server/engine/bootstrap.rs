//! A minimal bootstrap server (OMA LwM2M 1.1 Core §6.1, client-initiated): `POST /bs?ep=..`
//! is answered 2.04, then the device is provisioned in order: Bootstrap-Delete `/0` and
//! `/1` (their failures are tolerated: the objects may be empty), Write `/0/1` (the Security
//! object: our server's URI, PSK or no security), Write `/1/0` (the Server object: short id,
//! lifetime, binding) and Bootstrap-Finish (`POST /bs`). A failure, a reset or a timeout
//! ends the session (logged and counted); the device retries by itself.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use roost_coap::codec;
use roost_coap::message::{MessageLayer, Received};

use super::Server;
use crate::server::mqtt::encode_records;
use crate::server::settings::BootstrapSettings;
use crate::types::{Path, Record, Value};

/// One device being provisioned.
pub(super) struct Bootstrap {
    pub ep: String,
    peer: SocketAddr,
    layer: MessageLayer,
    /// The requests still to send, and whether a failure of each is tolerated.
    steps: VecDeque<(Packet, bool)>,
    current: Option<(u64, bool)>,
}

/// Bootstrap sessions by device address (bounded).
pub(super) type Bootstraps = HashMap<SocketAddr, Bootstrap>;

const MAX_BOOTSTRAPS: usize = 1024;
const SHORT_SERVER_ID: i64 = 1;

fn request(method: RequestType, path: &[&str]) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(method);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    p
}

fn write(path: &str, records: Vec<Record>) -> Option<Packet> {
    let base: Path = path.parse().ok()?;
    let (format, body) = encode_records(&base, &records).ok()?;
    let segs: Vec<String> = base.ids().iter().map(u16::to_string).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut p = request(RequestType::Put, &segs);
    p.add_option(CoapOption::ContentFormat, codec::encode_uint(u32::from(format)));
    p.payload = body;
    Some(p)
}

fn rec(path: &str, value: Value) -> Option<Record> {
    Some(Record { path: path.parse().ok()?, value })
}

/// The provisioning requests for one device, with `psk` (identity, key) or NoSec.
pub(crate) fn steps(b: &BootstrapSettings, psk: Option<(&str, &[u8])>) -> VecDeque<(Packet, bool)> {
    let mut security = vec![
        rec("/0/1/0", Value::String(b.server_uri.clone())),
        rec("/0/1/1", Value::Boolean(false)),
        // Security mode: 0 PSK, 3 NoSec.
        rec("/0/1/2", Value::Integer(if psk.is_some() { 0 } else { 3 })),
        rec("/0/1/10", Value::Integer(SHORT_SERVER_ID)),
    ];
    if let Some((id, key)) = psk {
        security.push(rec("/0/1/3", Value::Opaque(id.as_bytes().to_vec())));
        security.push(rec("/0/1/5", Value::Opaque(key.to_vec())));
    }
    let server = vec![
        rec("/1/0/0", Value::Integer(SHORT_SERVER_ID)),
        rec("/1/0/1", Value::Integer(i64::try_from(b.lifetime.as_secs()).unwrap_or(i64::MAX))),
        rec("/1/0/6", Value::Boolean(false)),
        rec("/1/0/7", Value::String("U".into())),
    ];
    let mut out = VecDeque::new();
    out.push_back((request(RequestType::Delete, &["0"]), true));
    out.push_back((request(RequestType::Delete, &["1"]), true));
    if let Some(p) = write("/0/1", security.into_iter().flatten().collect()) {
        out.push_back((p, false));
    }
    if let Some(p) = write("/1/0", server.into_iter().flatten().collect()) {
        out.push_back((p, false));
    }
    out.push_back((request(RequestType::Post, &["bs"]), false));
    out
}

impl Server {
    /// `POST /bs?ep=..`: answered here; the provisioning starts.
    pub(super) fn bootstrap_request(&mut self, now: Instant, peer: SocketAddr, req: &Packet) -> Packet {
        let mut resp = Packet::new();
        let Some(b) = self.settings.bootstrap.clone() else {
            resp.header.code = MessageClass::Response(ResponseType::NotFound);
            return resp;
        };
        let ep = codec::uri_query(req).into_iter().find(|(k, _)| k == "ep").map(|(_, v)| v).unwrap_or_default();
        if ep.is_empty() || (self.bootstraps.len() >= MAX_BOOTSTRAPS && !self.bootstraps.contains_key(&peer)) {
            resp.header.code = MessageClass::Response(ResponseType::BadRequest);
            return resp;
        }
        let Ok(psk) = b.psk_for(&ep) else {
            roost_core::peer_log!(WARN, "lwm2m.bootstrap_refused", peer, %ep, %peer, "LwM2M bootstrap refused: no bootstrap information for this endpoint (lwm2m.bootstrap.only_listed)");
            resp.header.code = MessageClass::Response(ResponseType::BadRequest);
            resp.payload = b"no bootstrap information for this endpoint".to_vec();
            return resp;
        };
        roost_core::peer_log!(INFO, "lwm2m.bootstrap_request", peer, %ep, %peer, psk = psk.map(|(id, _)| id), "LwM2M bootstrap request");
        let steps = steps(&b, psk);
        self.next_id = self.next_id.wrapping_add(1);
        let layer = MessageLayer::new(self.settings.transmission, self.seed ^ self.next_id, 16);
        let mut bs = Bootstrap { ep, peer, layer, steps, current: None };
        bs.next(now);
        self.drain_bootstrap(peer, bs);
        resp.header.code = MessageClass::Response(ResponseType::Changed);
        resp
    }

    /// An ACK or RST from a device being provisioned; `false` if `peer` is not one.
    pub(super) fn bootstrap_packet(&mut self, now: Instant, peer: SocketAddr, packet: Packet) -> bool {
        let Some(mut bs) = self.bootstraps.remove(&peer) else { return false };
        let ok = matches!(packet.header.code, MessageClass::Response(_)) && u8::from(packet.header.code) >> 5 == 2;
        match bs.layer.receive(now, peer, packet) {
            Received::Acked(tag) if bs.current.is_some_and(|(t, _)| t == tag) => {
                let tolerated = bs.current.is_some_and(|(_, t)| t);
                if !ok && !tolerated {
                    roost_core::peer_log!(INFO, "lwm2m.bootstrap_failed", peer, ep = %bs.ep, "LwM2M bootstrap refused by the device: session ended");
                    return true;
                }
                if bs.steps.is_empty() {
                    roost_core::peer_log!(INFO, "lwm2m.bootstrap_finished", peer, ep = %bs.ep, "LwM2M bootstrap finished");
                    return true;
                }
                bs.next(now);
            }
            Received::Reset(_) => {
                roost_core::peer_log!(INFO, "lwm2m.bootstrap_reset", peer, ep = %bs.ep, "LwM2M bootstrap reset by the device");
                return true;
            }
            _ => {}
        }
        self.drain_bootstrap(peer, bs);
        true
    }

    pub(super) fn bootstrap_timeouts(&mut self, now: Instant) {
        let due: Vec<SocketAddr> = self
            .bootstraps
            .iter()
            .filter(|(_, b)| b.layer.poll_timeout().is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            let Some(mut bs) = self.bootstraps.remove(&peer) else { continue };
            if !bs.layer.handle_timeout(now).is_empty() {
                roost_core::peer_log!(INFO, "lwm2m.bootstrap_timeout", peer, ep = %bs.ep, "LwM2M bootstrap timed out");
                continue;
            }
            self.drain_bootstrap(peer, bs);
        }
    }

    pub(super) fn bootstrap_deadline(&self) -> Option<Instant> {
        self.bootstraps.values().filter_map(|b| b.layer.poll_timeout()).min()
    }

    fn drain_bootstrap(&mut self, peer: SocketAddr, mut bs: Bootstrap) {
        while let Some(t) = bs.layer.poll_transmit() {
            self.transmit.push_back(t);
        }
        self.bootstraps.insert(peer, bs);
    }
}

impl Bootstrap {
    fn next(&mut self, now: Instant) {
        let Some((mut p, tolerated)) = self.steps.pop_front() else { return };
        let tag = self.current.map_or(1, |(t, _)| t + 1);
        p.set_token(tag.to_be_bytes().to_vec());
        self.current = Some((tag, tolerated));
        // Every step goes to the address the request came from.
        self.layer.send_confirmable(now, tag, self.peer, p);
    }
}
