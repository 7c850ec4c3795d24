//! Block-wise transfers with a device, the server (CoAP client) side, sans-IO (RFC 7959):
//!
//! - Block1 uploads (§2.5): a request whose payload is larger than `block_size` (a firmware
//!   package written to `/5/0/0`, a big multi-resource Write) goes out in blocks; the device
//!   answers each block but the last with 2.31 Continue, and may ask for smaller blocks in
//!   that answer (§2.3 size negotiation); its answer to the last block is the answer to the
//!   request. Every block carries the request's token: RFC 7959 lets a client pick tokens
//!   freely, and keeping one suits devices (Zephyr's LwM2M engine) that key their block
//!   context by it.
//! - Block2 downloads (§2.4): the request for the next block of a large response.

use coap_lite::{CoapOption, Packet};
use roost_coap::block::slice;
use roost_coap::codec::{self, Block};

/// The largest body sent or reassembled in blocks.
pub(super) const MAX_BODY: usize = 256 * 1024;

/// A request body going out in Block1 blocks.
#[derive(Debug)]
pub(super) struct Upload {
    body: Vec<u8>,
    /// The block in flight, in blocks of 2^(szx+4) bytes.
    num: u32,
    szx: u8,
}

impl Upload {
    /// `Some` when `body` is larger than one block of `block_size` (16..=1024, a power of two).
    pub(super) fn new(body: Vec<u8>, block_size: usize) -> Option<Upload> {
        let szx = Block::szx_for(block_size);
        (body.len() > 1usize << (szx + 4)).then_some(Upload { body, num: 0, szx })
    }

    fn size(&self) -> usize {
        1usize << (self.szx + 4)
    }

    fn offset(&self) -> usize {
        self.num as usize * self.size()
    }

    pub(super) fn total(&self) -> usize {
        self.body.len()
    }

    /// The size of the blocks going out now.
    pub(super) fn block_len(&self) -> usize {
        self.size()
    }

    /// The whole body back (to start over in another block size).
    pub(super) fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The block in flight as a request: `base` (code, options, token) with its Block1
    /// option and its slice of the body; block 0 also carries Size1, the whole size (§4),
    /// so a device short of memory can refuse with 4.13 at once.
    pub(super) fn request(&self, base: &Packet) -> Packet {
        let mut p = base.clone();
        let (chunk, block) =
            slice(&self.body, self.num, self.szx).unwrap_or((&[], Block { num: self.num, more: false, szx: self.szx }));
        p.clear_option(CoapOption::Block1);
        p.clear_option(CoapOption::Size1);
        p.add_option(CoapOption::Block1, codec::encode_uint(block.encode()));
        if self.num == 0 {
            p.add_option(CoapOption::Size1, codec::encode_uint(u32::try_from(self.body.len()).unwrap_or(u32::MAX)));
        }
        p.payload = chunk.to_vec();
        p
    }

    /// A 2.31 Continue for the block in flight, with the device's Block1 option: moves on to
    /// the next block, in the device's smaller size if it asked for one (§2.3; a larger
    /// one is not taken). `Err` when the 2.31 does not fit: it answers the last block, or
    /// names neither the block sent (its number) nor its offset (in the device's size).
    pub(super) fn advance(&mut self, ack: Block) -> Result<(), UnexpectedBlock> {
        let (offset, end) = (self.offset(), self.offset() + self.size());
        if end >= self.body.len() {
            return Err(UnexpectedBlock);
        }
        if ack.num != self.num && (ack.num as usize).checked_mul(ack.size()) != Some(offset) {
            return Err(UnexpectedBlock);
        }
        // Both sizes are powers of two and the new one is not larger: `end` is a whole
        // number of new blocks.
        self.szx = ack.szx.min(self.szx);
        self.num = u32::try_from(end / self.size()).map_err(|_| UnexpectedBlock)?;
        Ok(())
    }
}

/// A 2.31 Continue that does not belong to the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UnexpectedBlock;

/// The request for block `num` of a Block2 response to `request` (Observe is not repeated),
/// asking for `format`, block 0's Content-Format (RFC 7959 §2.4: the same representation;
/// a device whose default differs would otherwise serve the rest in another format).
pub(super) fn block2_request(request: &Packet, next: Block, format: Option<u32>) -> Packet {
    let mut p = request.clone();
    p.clear_option(CoapOption::Block2);
    p.clear_option(CoapOption::Observe);
    p.add_option(CoapOption::Block2, codec::encode_uint(next.encode()));
    if let Some(f) = format {
        p.clear_option(CoapOption::Accept);
        p.add_option(CoapOption::Accept, codec::encode_uint(f));
    }
    p
}

/// Whether block `later` of a Block2 response is of the same representation as block 0
/// `first`: the same Content-Format, and the same ETag where block 0 had one (RFC 7959
/// §2.4). `Err` names the difference: the body is not published as a mixture.
pub(super) fn same_representation(first: &Packet, later: &Packet) -> Result<(), &'static str> {
    if codec::uint_option(first, CoapOption::ContentFormat) != codec::uint_option(later, CoapOption::ContentFormat) {
        return Err("content_format_changed");
    }
    let etag = |p: &Packet| p.get_option(CoapOption::ETag).and_then(|v| v.front().cloned());
    match (etag(first), etag(later)) {
        (Some(a), Some(b)) if a != b => Err("etag_changed"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block1(p: &Packet) -> Block {
        Block::of(p, CoapOption::Block1).unwrap().unwrap()
    }

    #[test]
    fn small_bodies_go_whole_large_ones_in_blocks() {
        assert!(Upload::new(vec![0; 1024], 1024).is_none());
        let body: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let mut u = Upload::new(body.clone(), 1024).unwrap();
        let base = Packet::new();
        let p0 = u.request(&base);
        assert_eq!((block1(&p0), p0.payload.as_slice()), (Block { num: 0, more: true, szx: 6 }, &body[..1024]));
        assert_eq!(codec::uint_option(&p0, CoapOption::Size1), Some(Ok(2500)));
        u.advance(Block { num: 0, more: true, szx: 6 }).unwrap();
        let p1 = u.request(&base);
        assert_eq!((block1(&p1), p1.payload.as_slice()), (Block { num: 1, more: true, szx: 6 }, &body[1024..2048]));
        assert_eq!(codec::uint_option(&p1, CoapOption::Size1), None);
        u.advance(Block { num: 1, more: true, szx: 6 }).unwrap();
        let p2 = u.request(&base);
        assert_eq!((block1(&p2), p2.payload.as_slice()), (Block { num: 2, more: false, szx: 6 }, &body[2048..]));
        // A 2.31 to the last block is not a completion.
        assert_eq!(u.advance(Block { num: 2, more: true, szx: 6 }), Err(UnexpectedBlock));
    }

    #[test]
    fn the_device_may_ask_for_smaller_blocks() {
        let body = vec![7u8; 1000];
        let mut u = Upload::new(body, 128).unwrap();
        // RFC 7959 figure 6: 1:0/1/128 answered 1:0/1/32, next is 1:4/1/32.
        u.advance(Block { num: 0, more: true, szx: 1 }).unwrap();
        let p = u.request(&Packet::new());
        assert_eq!((block1(&p), p.payload.len()), (Block { num: 4, more: true, szx: 1 }, 32));
        // A larger size is not taken; the offset in the device's size is accepted too.
        u.advance(Block { num: 4, more: true, szx: 6 }).unwrap();
        assert_eq!(block1(&u.request(&Packet::new())), Block { num: 5, more: true, szx: 1 });
        assert_eq!(u.advance(Block { num: 9, more: true, szx: 1 }), Err(UnexpectedBlock));
        assert_eq!(u.advance(Block { num: 2, more: true, szx: 0 }), Err(UnexpectedBlock));
        u.advance(Block { num: 10, more: true, szx: 0 }).unwrap();
        let p = u.request(&Packet::new());
        assert_eq!((block1(&p), p.payload.len()), (Block { num: 12, more: true, szx: 0 }, 16));
    }
}
