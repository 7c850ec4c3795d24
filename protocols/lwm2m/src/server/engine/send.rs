//! The Send operation of LwM2M 1.1 (Core §6.4.6 Information Reporting interface, Transport
//! §6.4): a registered device reports values unasked with `POST /dp`, in SenML JSON (110)
//! or SenML CBOR (112). The values, typed by the object definitions, are published on the
//! notify topic as `{"msgType": "send", "data": {"reqPath": "/dp", "content": [...]}}`
//! (the content as in read results) and the device gets 2.04 Changed. A peer that is not
//! registered gets 4.04, another content format 4.15, a payload that does not decode 4.00
//! (logged with the endpoint, counted, not published). A report too large for a datagram
//! comes in Block1 blocks (RFC 7959 §2.5), reassembled per device up to 256 KiB and handled
//! once, with the last block.

use std::net::SocketAddr;
use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, Packet, ResponseType};
use roost_coap::block::Block1Outcome;
use roost_coap::codec;
use serde_json::json;

use super::blockwise::MAX_BODY;
use super::{Counters, Server, Sink};
use crate::server::mqtt;
use crate::types::{Path, format};

fn answer(code: ResponseType, diagnostic: &str) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p.payload = diagnostic.as_bytes().to_vec();
    p
}

fn with_block1(mut p: Packet, b: codec::Block) -> Packet {
    p.add_option(CoapOption::Block1, codec::encode_uint(b.encode()));
    p
}

impl Server {
    /// `POST /dp` from `peer`: the answer to send back.
    pub(super) fn send_request(&mut self, now: Instant, peer: SocketAddr, req: &Packet) -> Packet {
        let Some(id) = self.by_peer.get(&peer).cloned() else {
            Counters::bump(&self.counters.bad_sends);
            tracing::debug!(%peer, "LwM2M Send from an unregistered peer refused");
            return answer(ResponseType::NotFound, "not registered");
        };
        let fmt = match codec::uint_option(req, CoapOption::ContentFormat) {
            Some(Ok(f)) => f,
            Some(Err(_)) => return answer(ResponseType::BadOption, "Content-Format is not a number"),
            None => u32::MAX,
        };
        let Some(dev) = self.devices.get_mut(&id) else { return answer(ResponseType::NotFound, "not registered") };
        let ep = dev.info.ep.clone();
        if fmt != u32::from(format::SENML_JSON) && fmt != u32::from(format::SENML_CBOR) {
            Counters::bump(&self.counters.bad_sends);
            roost_core::peer_log!(WARN, "lwm2m.send_bad_format", peer, %ep, format = fmt, "LwM2M Send refused: not SenML JSON (110) or SenML CBOR (112)");
            return answer(ResponseType::UnsupportedContentFormat, "Send takes SenML JSON (110) or SenML CBOR (112)");
        }
        let (payload, last_block) = match codec::Block::of(req, CoapOption::Block1) {
            None => (req.payload.clone(), None),
            Some(Err(_)) => return answer(ResponseType::BadOption, "Block1 is malformed"),
            Some(Ok(b)) => match dev.send_blocks.feed(now, "/dp", b, &req.payload, MAX_BODY) {
                Block1Outcome::Continue(b) => {
                    dev.last_heard = now;
                    return with_block1(answer(ResponseType::Continue, ""), b);
                }
                Block1Outcome::Complete(body, b) => (body, Some(b)),
                Block1Outcome::Incomplete => {
                    return answer(ResponseType::RequestEntityIncomplete, "block out of order");
                }
                Block1Outcome::TooLarge => {
                    let mut p = answer(ResponseType::RequestEntityTooLarge, "");
                    p.add_option(CoapOption::Size1, codec::encode_uint(MAX_BODY as u32));
                    return p;
                }
            },
        };
        let mut out = Sink::default();
        let resp = match crate::content::decode(fmt as u16, Path::ROOT, &payload, &*self.kind_of) {
            Ok(records) => {
                Counters::bump(&self.counters.sends);
                let data = json!({"reqPath": "/dp", "content": mqtt::records_json(&records)});
                out.publish.push((
                    self.settings.translators.notify.clone(),
                    json!({"msgType": "send", "data": data}),
                    None,
                ));
                answer(ResponseType::Changed, "")
            }
            Err(e) => {
                Counters::bump(&self.counters.bad_sends);
                roost_core::peer_log!(WARN, "lwm2m.send_malformed", peer, %ep, "LwM2M Send dropped: {e}");
                answer(ResponseType::BadRequest, &e.to_string())
            }
        };
        // A Send wakes a queue-mode device like any other message from it.
        dev.heard(now, &self.settings, &self.counters, &mut out);
        self.flush(&id, out);
        match last_block {
            Some(b) => with_block1(resp, b),
            None => resp,
        }
    }
}
