//! The registration interface (OMA LwM2M 1.1 Transport §6.2.1 / Core §6.2): `POST /rd`
//! (Register), `POST /rd/{id}` (Update), `DELETE /rd/{id}` (De-register); and the routing
//! of the other requests a device makes: `/bs` (bootstrap), `/dp` (Send, [`super::send`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use roost_coap::codec;
use roost_core::DisconnectReason;
use serde_json::{Value as Json, json};

use super::inbound::{self, Inbound};
use super::{Counters, Device, Output, Refusal, Registering, Server, Sink};
use crate::server::link;
use crate::server::settings::UpdatePublish;

/// What a device said about itself when it registered (and updated).
#[derive(Debug, Clone, PartialEq)]
pub struct RegInfo {
    pub ep: String,
    pub lifetime: Duration,
    pub lwm2m: String,
    pub binding: String,
    pub sms: Option<String>,
    /// Queue mode: binding `UQ` (1.0) or the `Q` parameter (1.1).
    pub queue: bool,
    /// The alternate path the objects are below (`/` mostly).
    pub root: String,
    pub objects: Vec<String>,
    /// The content formats the device announced (`ct` of its `</>` link, LwM2M 1.1 Core
    /// §6.2.1): reads and observes ask for one of them; none: no Accept, as before.
    pub formats: Vec<u16>,
}

impl RegInfo {
    /// The `data` of a register/update event (EMQX).
    pub fn to_json(&self) -> Json {
        let mut d = json!({
            "ep": self.ep,
            "lt": self.lifetime.as_secs(),
            "lwm2m": self.lwm2m,
            "b": self.binding,
            "alternatePath": self.root,
            "objectList": self.objects,
        });
        if let Some(s) = &self.sms {
            d["sms"] = json!(s);
        }
        d
    }
}

fn reply(code: ResponseType) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p
}

fn diag(code: ResponseType, text: &str) -> Packet {
    let mut p = reply(code);
    p.payload = text.as_bytes().to_vec();
    p
}

impl Server {
    pub(super) fn handle_request(&mut self, now: Instant, peer: SocketAddr, req: Packet) {
        let path = codec::uri_path(&req).unwrap_or_default();
        let MessageClass::Request(method) = req.header.code else { return };
        let segs: Vec<&str> = path.iter().map(String::as_str).collect();
        // Send reassembles its own blocks, per device; the rest of `/rd` and `/bs` here.
        let (req, block1) = if matches!(segs.as_slice(), ["rd", ..] | ["bs"]) {
            match inbound::reassemble(&mut self.rd_blocks, now, peer, method, &path, req.clone()) {
                Inbound::Whole(whole, block1) => (whole, block1),
                Inbound::Answer(resp) => return self.rd.respond(peer, &req, resp),
            }
        } else {
            (req, None)
        };
        let resp = match (method, segs.as_slice()) {
            (RequestType::Post, ["rd"]) => match self.register(now, peer, &req, block1) {
                Ok(()) => return,
                Err(resp) => resp,
            },
            (RequestType::Post, ["rd", id]) => self.update(now, peer, id, &req),
            (RequestType::Delete, ["rd", id]) => {
                let id = id.to_string();
                if self.devices.contains_key(&id) {
                    Counters::bump(&self.counters.deregistrations);
                    self.deregister(now, &id, "deregister", DisconnectReason::Normal);
                    reply(ResponseType::Deleted)
                } else {
                    diag(ResponseType::NotFound, "no such registration")
                }
            }
            (RequestType::Post, ["bs"]) => self.bootstrap_request(now, peer, &req),
            (RequestType::Post, ["dp"]) => self.send_request(now, peer, &req),
            (_, ["rd", ..]) => reply(ResponseType::MethodNotAllowed),
            _ => diag(ResponseType::NotFound, "only /rd and /dp are served"),
        };
        self.rd.respond(peer, &req, inbound::echo_block1(resp, block1));
    }

    fn lifetime(&self, v: &str) -> Result<Duration, Packet> {
        let lt = v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| diag(ResponseType::BadRequest, "lt must be seconds"))?;
        if lt < self.settings.lifetime_min || lt > self.settings.lifetime_max {
            return Err(diag(ResponseType::BadRequest, "lt out of the server's range"));
        }
        Ok(lt)
    }

    fn register(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        req: &Packet,
        block1: Option<codec::Block>,
    ) -> Result<(), Packet> {
        let mut info = RegInfo {
            ep: String::new(),
            lifetime: Duration::from_secs(86_400).clamp(self.settings.lifetime_min, self.settings.lifetime_max),
            lwm2m: "1.0".into(),
            binding: "U".into(),
            sms: None,
            queue: false,
            root: "/".into(),
            objects: Vec::new(),
            formats: Vec::new(),
        };
        let mut q_param = false;
        for (k, v) in codec::uri_query(req) {
            match k.as_str() {
                "ep" => info.ep = v,
                "lt" => info.lifetime = self.lifetime(&v)?,
                "lwm2m" => info.lwm2m = v,
                "b" => info.binding = v,
                "sms" => info.sms = Some(v),
                "Q" => q_param = true,
                _ => {}
            }
        }
        if info.ep.is_empty() || info.ep.contains(['+', '#', '/']) {
            return Err(diag(ResponseType::BadRequest, "ep missing or not usable as a client id"));
        }
        info.queue = q_param || info.binding.contains('Q');
        let body =
            std::str::from_utf8(&req.payload).map_err(|_| diag(ResponseType::BadRequest, "body is not UTF-8"))?;
        (info.root, info.objects) = link::object_list(body);
        info.formats = link::content_formats(body);
        if !self.by_ep.contains_key(&info.ep) && self.devices.len() >= self.settings.max_devices {
            Counters::bump(&self.counters.refused);
            return Err(diag(ResponseType::ServiceUnavailable, "too many registrations"));
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let ep = info.ep.clone();
        let commands = format!("{}{}", self.settings.mount(&ep), self.settings.translators.command);
        self.registering.insert(ticket, Registering { peer, request: req.clone(), info, block1 });
        self.outputs.push_back(Output::Connect { ticket, ep, peer, commands });
        let _ = now;
        Ok(())
    }

    /// The core's answer to [`Output::Connect`] `ticket`: the Register is answered.
    pub fn connected(&mut self, now: Instant, ticket: u64, outcome: Result<(), Refusal>) {
        let Some(Registering { peer, request, info, block1 }) = self.registering.remove(&ticket) else { return };
        if let Err(r) = outcome {
            Counters::bump(&self.counters.refused);
            let code = match r {
                Refusal::Forbidden => ResponseType::Forbidden,
                Refusal::Unavailable => ResponseType::ServiceUnavailable,
            };
            self.rd.respond(peer, &request, inbound::echo_block1(reply(code), block1));
            return;
        }
        // A re-register of the same endpoint takes over: requests in flight to the old
        // registration are answered as timed out, queued commands move over.
        let mut queued = Default::default();
        if let Some(old_id) = self.by_ep.get(&info.ep).cloned()
            && let Some(mut old) = self.remove(&old_id)
        {
            let mut out = Sink::default();
            old.fail_all(&mut out, false);
            queued = std::mem::take(&mut old.queue);
            self.devices.insert(old_id.clone(), old);
            self.flush(&old_id, out);
            self.devices.remove(&old_id);
            if let Some(t) = self.scheduled.remove(&old_id) {
                self.timers.remove(&(t, old_id));
            }
        }
        self.next_id = self.next_id.wrapping_add(1);
        let id = loop {
            let id = format!("{:016x}", rand::Rng::random::<u64>(&mut self.ids));
            if !self.devices.contains_key(&id) {
                break id;
            }
        };
        let seed = self.seed ^ self.next_id.rotate_left(17);
        let mut dev = Device::new(id.clone(), info, peer, now, self.settings.transmission, seed);
        dev.queue = queued;
        let mut resp = reply(ResponseType::Created);
        resp.add_option(CoapOption::LocationPath, b"rd".to_vec());
        resp.add_option(CoapOption::LocationPath, id.as_bytes().to_vec());
        self.rd.respond(peer, &request, inbound::echo_block1(resp, block1));
        Counters::bump(&self.counters.registrations);
        self.counters.devices.fetch_add(1, Relaxed);
        tracing::debug!(ep = %dev.info.ep, %peer, %id, "LwM2M device registered");
        let mut out = Sink::default();
        out.publish.push((
            self.settings.translators.register.clone(),
            json!({"msgType": "register", "data": dev.info.to_json()}),
            None,
        ));
        dev.auto_observe(now, &self.settings, &mut out);
        dev.heard(now, &self.settings, &self.counters, &mut out);
        self.by_ep.insert(dev.info.ep.clone(), id.clone());
        self.by_peer.insert(peer, id.clone());
        self.devices.insert(id.clone(), dev);
        self.flush(&id, out);
    }

    fn update(&mut self, now: Instant, peer: SocketAddr, id: &str, req: &Packet) -> Packet {
        let mut lifetime = None;
        let (mut binding, mut sms, mut q_param) = (None, None, false);
        for (k, v) in codec::uri_query(req) {
            match k.as_str() {
                "lt" => match self.lifetime(&v) {
                    Ok(l) => lifetime = Some(l),
                    Err(p) => return p,
                },
                "b" => binding = Some(v),
                "sms" => sms = Some(v),
                "Q" => q_param = true,
                _ => {}
            }
        }
        let Ok(body) = std::str::from_utf8(&req.payload) else {
            return diag(ResponseType::BadRequest, "body is not UTF-8");
        };
        let Some(dev) = self.devices.get_mut(id) else {
            return diag(ResponseType::NotFound, "no such registration");
        };
        Counters::bump(&self.counters.updates);
        if let Some(l) = lifetime {
            dev.info.lifetime = l;
        }
        if let Some(b) = binding {
            dev.info.queue = q_param || b.contains('Q');
            dev.info.binding = b;
        } else if q_param {
            dev.info.queue = true;
        }
        if sms.is_some() {
            dev.info.sms = sms;
        }
        let has_objects = !body.trim().is_empty();
        if has_objects {
            (dev.info.root, dev.info.objects) = link::object_list(body);
            dev.info.formats = link::content_formats(body);
        }
        dev.last_update = now;
        if dev.peer != peer {
            let old = dev.peer;
            dev.peer = peer;
            dev.layer.rebind(peer);
            if self.by_peer.get(&old).is_some_and(|i| i == id) {
                self.by_peer.remove(&old);
            }
            self.by_peer.insert(peer, id.to_string());
        }
        let mut out = Sink::default();
        if has_objects || self.settings.update_msg_publish_condition == UpdatePublish::Always {
            out.publish.push((
                self.settings.translators.update.clone(),
                json!({"msgType": "update", "data": dev.info.to_json()}),
                None,
            ));
        }
        dev.heard(now, &self.settings, &self.counters, &mut out);
        self.flush(id, out);
        reply(ResponseType::Changed)
    }

    /// Ends registration `id`: published on the register topic, what waits for it is
    /// answered, and the core connection closed.
    pub(super) fn deregister(&mut self, _now: Instant, id: &str, why: &str, reason: DisconnectReason) {
        let Some(dev) = self.devices.get_mut(id) else { return };
        let mut out = Sink::default();
        dev.fail_all(&mut out, true);
        out.publish.push((
            self.settings.translators.register.clone(),
            json!({"msgType": "deregister", "data": {"ep": dev.info.ep, "reason": why}}),
            None,
        ));
        let ep = dev.info.ep.clone();
        self.flush(id, out);
        self.remove(id);
        self.outputs.push_back(Output::Close { ep, reason });
    }
}
