//! Requests to the registration and bootstrap interfaces that come in Block1 blocks
//! (RFC 7959 §2.5; OMA LwM2M 1.1 Transport §6.4): a device with a small CoAP buffer sends
//! a Register, Update or Bootstrap-Request whose link list exceeds one block. Block1 is
//! critical (RFC 7252 §5.4.1): every block but the last is answered 2.31 Continue, and the
//! request is handled once, whole, with the last; its answer echoes that block's Block1.
//! Transfers are keyed by peer, method and path (§2.5: not the token), bounded in number
//! and in size. Send (`/dp`) reassembles per registered device in [`super::send`].

use std::net::SocketAddr;
use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use roost_coap::block::{Assemblies, Block1Outcome};
use roost_coap::codec::{self, Block};

/// The largest registration-interface body reassembled: a link list of a few hundred
/// object instances fits many times over.
pub(super) const MAX_REG_BODY: usize = 64 * 1024;

/// Block1 transfers in progress on the registration interface, across all peers; beyond it
/// the oldest is forgotten (and its device gets 4.08 for its next block).
pub(super) const MAX_REG_ASSEMBLIES: usize = 1024;

/// What became of one request to the registration interface.
pub(super) enum Inbound {
    /// Whole: handle it (its payload is the reassembled body); the answer echoes `Block1`.
    Whole(Packet, Option<Block>),
    /// Answer now (2.31 Continue, 4.08, 4.13, 4.02).
    Answer(Packet),
}

fn answer(code: ResponseType) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p
}

/// Adds the Block1 option of the block a final answer answers.
pub(super) fn echo_block1(mut p: Packet, block: Option<Block>) -> Packet {
    if let Some(b) = block {
        p.clear_option(CoapOption::Block1);
        p.add_option(CoapOption::Block1, codec::encode_uint(b.encode()));
    }
    p
}

/// Feeds `req` from `peer` (a request to `/rd`, `/rd/{id}` or `/bs`) to `blocks`.
pub(super) fn reassemble(
    blocks: &mut Assemblies,
    now: Instant,
    peer: SocketAddr,
    method: RequestType,
    path: &[String],
    req: Packet,
) -> Inbound {
    let block = match Block::of(&req, CoapOption::Block1) {
        None => return Inbound::Whole(req, None),
        Some(Err(_)) => return Inbound::Answer(answer(ResponseType::BadOption)),
        Some(Ok(b)) => b,
    };
    let key = format!("{peer} {method:?} /{}", path.join("/"));
    match blocks.feed(now, &key, block, &req.payload, MAX_REG_BODY) {
        Block1Outcome::Continue(b) => Inbound::Answer(echo_block1(answer(ResponseType::Continue), Some(b))),
        Block1Outcome::Complete(body, b) => {
            let mut whole = req;
            whole.clear_option(CoapOption::Block1);
            whole.clear_option(CoapOption::Size1);
            whole.payload = body;
            Inbound::Whole(whole, Some(b))
        }
        Block1Outcome::Incomplete => {
            tracing::debug!(%peer, %key, "LwM2M Block1 block out of order: 4.08");
            let mut p = answer(ResponseType::RequestEntityIncomplete);
            p.payload = b"block out of order".to_vec();
            Inbound::Answer(p)
        }
        Block1Outcome::TooLarge => {
            roost_core::peer_log!(WARN, "lwm2m.body_too_large", peer, %peer, %key, "LwM2M request body over {MAX_REG_BODY} bytes refused: 4.13");
            let mut p = answer(ResponseType::RequestEntityTooLarge);
            p.add_option(CoapOption::Size1, codec::encode_uint(MAX_REG_BODY as u32));
            Inbound::Answer(p)
        }
    }
}
