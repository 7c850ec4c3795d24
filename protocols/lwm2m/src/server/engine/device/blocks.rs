//! The block-wise parts of a device's exchanges (RFC 7959), the server (CoAP client) side:
//! the request for the next Block2 block, asking for block 0's format (§2.4), and a request
//! answered 4.13 with a smaller Block1 size, tried again in that size (§2.9.3) and the size
//! remembered for the device's later requests.

use std::time::Instant;

use coap_lite::{CoapOption, Packet};
use roost_coap::codec;

use super::super::blockwise::{self, Upload};
use super::{Device, Exchange};

impl Device {
    /// Asks for the block after `got` of exchange `e`'s response, with a new token (the
    /// first one stays recorded: an observation lives under it); the body so far stays.
    pub(super) fn next_block(&mut self, now: Instant, mut e: Exchange, got: codec::Block) {
        let format = e.first.as_deref().and_then(|f| codec::uint_option(f, CoapOption::ContentFormat)?.ok());
        let next = codec::Block { num: got.num + 1, more: false, szx: got.szx };
        let mut next = blockwise::block2_request(&e.cmd.request, next, format);
        self.next_tag = self.next_tag.wrapping_add(1);
        let tag = self.next_tag;
        let token = tag.to_be_bytes().to_vec();
        let old = std::mem::replace(&mut e.token, token.clone());
        e.first_token.get_or_insert(old);
        next.set_token(token);
        self.layer.send_confirmable(now, tag, self.peer, next);
        self.exchanges.insert(tag, e);
    }

    /// A 4.13 to exchange `e`: when it carries a Block1 option smaller than what was sent
    /// (the device's buffer, RFC 7959 §2.9.3), the whole request goes again in Block1
    /// blocks of that size, and the device's later requests too. `Some(e)` back when it is
    /// not retried (the 4.13 is the answer). Each retry is in a strictly smaller size: at
    /// most six.
    pub(super) fn retry_smaller(&mut self, now: Instant, mut e: Exchange, resp: &Packet) -> Option<Exchange> {
        let Some(Ok(hint)) = codec::Block::of(resp, CoapOption::Block1) else { return Some(e) };
        let sent = e.upload.as_ref().map_or(e.cmd.request.payload.len(), Upload::block_len);
        if hint.size() >= sent {
            return Some(e);
        }
        let body = match e.upload.take() {
            Some(u) => u.into_body(),
            None => std::mem::take(&mut e.cmd.request.payload),
        };
        if body.len() <= hint.size() {
            e.cmd.request.payload = body;
            return Some(e);
        }
        let Some(upload) = Upload::new(body, hint.size()) else { return Some(e) };
        tracing::debug!(ep = %self.info.ep, path = %e.cmd.path, block = hint.size(), "LwM2M 4.13 asks for smaller blocks: the request goes again in them");
        self.block_limit = Some(hint.size());
        let first = upload.request(&e.cmd.request);
        e.upload = Some(upload);
        e.deadline = None;
        self.next_tag = self.next_tag.wrapping_add(1);
        let tag = self.next_tag;
        self.layer.send_confirmable(now, tag, self.peer, first);
        self.exchanges.insert(tag, e);
        None
    }

    /// The Accept for a read or observe `request` without one: the first of `preferred`
    /// the device announced at registration; none if it announced none of them.
    pub(super) fn accept_for(&self, request: &mut Packet, preferred: &[u16]) {
        if request.get_option(CoapOption::Accept).is_some() {
            return;
        }
        if let Some(f) = preferred.iter().find(|f| self.info.formats.contains(f)) {
            request.add_option(CoapOption::Accept, codec::encode_uint(u32::from(*f)));
        }
    }
}
