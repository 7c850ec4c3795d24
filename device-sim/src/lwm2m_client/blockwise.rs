//! Block-wise transfers on the simulated device, the CoAP server side (RFC 7959), within a
//! small buffer as on a constrained device (wakaama's default is 1024 bytes):
//!
//! - a request payload larger than `block_size` must come in Block1 blocks (§2.5): they
//!   are reassembled and the request handled once, when the last is in; each block but
//!   the last is answered 2.31 Continue in the device's block size (§2.3: a larger block,
//!   up to [`MAX_BLOCK`], is taken, and the next ones asked smaller). Without blocks it is
//!   refused with 4.13 Request Entity Too Large and Size1 = `block_size` (§2.9.3, §4);
//! - a response payload larger than a block goes in Block2 blocks (§2.4), each asked for
//!   by the server with the request repeated.

use coap_lite::{CoapOption, MessageClass, Packet, ResponseType};
use roost_coap::block::slice;
use roost_coap::codec::{self, Block};

/// The largest body reassembled from Block1 blocks.
pub const MAX_BODY: usize = 256 * 1024;

/// The largest block taken (SZX 6); a larger payload in a block is refused with 4.13.
pub const MAX_BLOCK: usize = 1024;

/// A Block1 transfer in progress: the request's code and path, and the body so far.
#[derive(Debug)]
pub struct Incoming {
    key: (u8, Vec<String>),
    body: Vec<u8>,
}

#[derive(Debug)]
pub enum Received {
    /// The request whole, to handle; reassembled from blocks: the last Block1, echoed in
    /// the answer.
    Whole(Packet, Option<Block>),
    /// Answered now: a 2.31 Continue for a block, or an error.
    Reply(Packet),
}

fn reply(code: ResponseType) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p
}

/// 4.13 with Size1 = `limit`, and a Block1 option in the device's block size: the hint to
/// send the request again in blocks of it (RFC 7959 §2.9.3), as small C clients answer.
fn too_large(limit: usize) -> Packet {
    let mut p = reply(ResponseType::RequestEntityTooLarge);
    p.add_option(CoapOption::Size1, codec::encode_uint(u32::try_from(limit).unwrap_or(u32::MAX)));
    let hint = Block { num: 0, more: false, szx: Block::szx_for(limit.min(1024)) };
    p.add_option(CoapOption::Block1, codec::encode_uint(hint.encode()));
    p
}

/// One request from the server to a device whose buffer is `block_size` bytes, with the
/// Block1 transfer in progress, if any, in `incoming`.
pub fn receive(incoming: &mut Option<Incoming>, p: &Packet, block_size: usize) -> Received {
    let block = match Block::of(p, CoapOption::Block1) {
        None if p.payload.len() > block_size => return Received::Reply(too_large(block_size)),
        None => return Received::Whole(p.clone(), None),
        Some(Err(_)) => return Received::Reply(reply(ResponseType::BadOption)),
        Some(Ok(b)) => b,
    };
    if p.payload.len() > MAX_BLOCK {
        *incoming = None;
        return Received::Reply(too_large(block_size));
    }
    let key = (u8::from(p.header.code), codec::uri_path(p).unwrap_or_default());
    let offset = block.num as usize * block.size();
    if offset == 0 {
        *incoming = Some(Incoming { key: key.clone(), body: Vec::new() });
    }
    // Every block but the last fills its size (§2.2); blocks come in order.
    let in_order = incoming.as_ref().is_some_and(|i| i.key == key && i.body.len() == offset);
    if !in_order || (block.more && p.payload.len() != block.size()) || p.payload.len() > block.size() {
        *incoming = None;
        return Received::Reply(reply(ResponseType::RequestEntityIncomplete));
    }
    if offset + p.payload.len() > MAX_BODY {
        *incoming = None;
        return Received::Reply(too_large(MAX_BODY));
    }
    let Some(inc) = incoming.as_mut() else { return Received::Reply(reply(ResponseType::RequestEntityIncomplete)) };
    inc.body.extend_from_slice(&p.payload);
    if block.more {
        let szx = block.szx.min(Block::szx_for(block_size));
        let num = u32::try_from(offset >> (szx + 4)).unwrap_or(u32::MAX);
        let mut r = reply(ResponseType::Continue);
        r.add_option(CoapOption::Block1, codec::encode_uint(Block { num, more: true, szx }.encode()));
        return Received::Reply(r);
    }
    let mut whole = p.clone();
    whole.clear_option(CoapOption::Block1);
    whole.clear_option(CoapOption::Size1);
    whole.payload = incoming.take().map(|i| i.body).unwrap_or_default();
    Received::Whole(whole, Some(block))
}

/// `response` to `request`, cut to the Block2 block asked for, or to block 0 when its
/// payload is larger than `block_size`.
pub fn respond_in_blocks(request: &Packet, mut response: Packet, block_size: usize) -> Packet {
    if response.header.code != MessageClass::Response(ResponseType::Content) {
        return response;
    }
    let mine = Block::szx_for(block_size);
    let (num, szx) = match Block::of(request, CoapOption::Block2) {
        Some(Ok(b)) => (b.num, b.szx.min(mine)),
        Some(Err(_)) => return reply(ResponseType::BadOption),
        None if response.payload.len() > block_size => (0, mine),
        None => return response,
    };
    let Some((chunk, block)) = slice(&response.payload, num, szx).map(|(c, b)| (c.to_vec(), b)) else {
        return reply(ResponseType::BadRequest);
    };
    response.payload = chunk;
    response.add_option(CoapOption::Block2, codec::encode_uint(block.encode()));
    response
}

#[cfg(test)]
mod tests {
    use coap_lite::RequestType;

    use super::*;

    fn put(num: u32, more: bool, szx: u8, payload: &[u8]) -> Packet {
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(RequestType::Put);
        p.add_option(CoapOption::UriPath, b"5".to_vec());
        p.add_option(CoapOption::Block1, codec::encode_uint(Block { num, more, szx }.encode()));
        p.payload = payload.to_vec();
        p
    }

    fn block1(p: &Packet) -> Block {
        Block::of(p, CoapOption::Block1).unwrap().unwrap()
    }

    #[test]
    fn blocks_are_reassembled_in_the_device_size() {
        let mut inc = None;
        let body: Vec<u8> = (0..192u32).map(|i| i as u8).collect();
        // A 128-byte block 0 to a 32-byte device: taken, and 32-byte blocks asked for; the
        // server goes on with 4/1/32 (RFC 7959 figure 6).
        let Received::Reply(r) = receive(&mut inc, &put(0, true, 3, &body[..128]), 32) else { panic!() };
        assert_eq!(
            (r.header.code, block1(&r)),
            (MessageClass::Response(ResponseType::Continue), Block { num: 0, more: true, szx: 1 })
        );
        let Received::Reply(r) = receive(&mut inc, &put(4, true, 1, &body[128..160]), 32) else { panic!() };
        assert_eq!(block1(&r), Block { num: 4, more: true, szx: 1 });
        let Received::Whole(w, Some(last)) = receive(&mut inc, &put(5, false, 1, &body[160..]), 32) else { panic!() };
        assert_eq!((Block::of(&w, CoapOption::Block1), w.payload, last.num), (None, body, 5));
        assert!(inc.is_none());
    }

    #[test]
    fn too_large_out_of_order_and_unblocked_are_refused() {
        let mut inc = None;
        let code = |r: Received| match r {
            Received::Reply(p) => p.header.code,
            Received::Whole(..) => panic!("accepted"),
        };
        let mut whole = put(0, false, 6, &[0; 1025]);
        whole.clear_option(CoapOption::Block1);
        let Received::Reply(r) = receive(&mut inc, &whole, 1024) else { panic!() };
        assert_eq!(
            (r.header.code, codec::uint_option(&r, CoapOption::Size1)),
            (MessageClass::Response(ResponseType::RequestEntityTooLarge), Some(Ok(1024)))
        );
        assert_eq!(
            code(receive(&mut inc, &put(1, true, 0, &[0; 16]), 1024)),
            MessageClass::Response(ResponseType::RequestEntityIncomplete)
        );
        assert_eq!(
            code(receive(&mut inc, &put(0, true, 0, &[0; 15]), 1024)),
            MessageClass::Response(ResponseType::RequestEntityIncomplete)
        );
        assert_eq!(
            code(receive(&mut inc, &put(0, false, 6, &[0; 1500]), 512)),
            MessageClass::Response(ResponseType::RequestEntityTooLarge)
        );
    }

    #[test]
    fn large_responses_go_in_block2_blocks() {
        let mut resp = reply(ResponseType::Content);
        resp.payload = vec![1; 100];
        let get = Packet::new();
        let b0 = respond_in_blocks(&get, resp.clone(), 64);
        assert_eq!(
            (b0.payload.len(), Block::of(&b0, CoapOption::Block2)),
            (64, Some(Ok(Block { num: 0, more: true, szx: 2 })))
        );
        let mut next = Packet::new();
        next.add_option(CoapOption::Block2, codec::encode_uint(Block { num: 1, more: false, szx: 2 }.encode()));
        let b1 = respond_in_blocks(&next, resp.clone(), 64);
        assert_eq!(
            (b1.payload.len(), Block::of(&b1, CoapOption::Block2)),
            (36, Some(Ok(Block { num: 1, more: false, szx: 2 })))
        );
        assert_eq!(respond_in_blocks(&get, resp, 1024).payload.len(), 100);
    }
}
