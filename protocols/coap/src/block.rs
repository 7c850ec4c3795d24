//! Blockwise transfers (RFC 7959), server side: Block1 reassembly of large request bodies
//! (§2.5, atomic: the request is handled once, when the last block arrives) and Block2
//! slicing of large response and notification bodies (§2.4, §3.4). Bodies are bounded by
//! `max_body_size`; what is too large gets 4.13 with Size1 (§4).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::Block;

/// Block1 transfers in progress per session; a new one beyond it evicts the oldest.
const MAX_ASSEMBLIES: usize = 4;

/// A transfer with no block for this long is forgotten (EXCHANGE_LIFETIME is the upper
/// bound RFC 7959 §2.5 suggests; devices send their blocks back to back).
const ASSEMBLY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block1Outcome {
    /// More blocks expected: answer 2.31 Continue echoing this Block1 option.
    Continue(Block),
    /// The body is whole: handle the request with it, answer echoing this Block1 option.
    Complete(Vec<u8>, Block),
    /// 4.08 Request Entity Incomplete (a block out of order or no transfer).
    Incomplete,
    /// 4.13 Request Entity Too Large; Size1 = the limit.
    TooLarge,
}

struct Assembly {
    /// What identifies the transfer: peer, method and URI (§2.5: not the token).
    key: String,
    body: Vec<u8>,
    next: u32,
    touched: Instant,
}

pub struct Assemblies {
    list: VecDeque<Assembly>,
    /// Transfers kept at most; a new one beyond it evicts the oldest.
    limit: usize,
}

impl Default for Assemblies {
    fn default() -> Self {
        Assemblies::with_limit(MAX_ASSEMBLIES)
    }
}

impl Assemblies {
    /// Keeps up to `limit` transfers at once (one session's: the default; a server's
    /// registration interface, shared by every peer: more).
    pub fn with_limit(limit: usize) -> Assemblies {
        Assemblies { list: VecDeque::new(), limit: limit.max(1) }
    }

    /// Feeds one Block1 block of the request identified by `key`.
    pub fn feed(&mut self, now: Instant, key: &str, block: Block, payload: &[u8], max_body: usize) -> Block1Outcome {
        self.list.retain(|a| now.saturating_duration_since(a.touched) < ASSEMBLY_TIMEOUT);
        let offset = u64::from(block.num) * block.size() as u64;
        if offset + payload.len() as u64 > max_body as u64 {
            self.list.retain(|a| a.key != key);
            return Block1Outcome::TooLarge;
        }
        // Every block but the last fills its size exactly (§2.2).
        if block.more && payload.len() != block.size() {
            return Block1Outcome::Incomplete;
        }
        if block.num == 0 {
            self.list.retain(|a| a.key != key);
            if !block.more {
                return Block1Outcome::Complete(payload.to_vec(), block);
            }
            if self.list.len() >= self.limit {
                self.list.pop_front();
            }
            self.list.push_back(Assembly { key: key.to_string(), body: payload.to_vec(), next: 1, touched: now });
            return Block1Outcome::Continue(block);
        }
        let Some(i) = self.list.iter().position(|a| a.key == key) else {
            return Block1Outcome::Incomplete;
        };
        let a = &mut self.list[i];
        // A repeated block (its ACK was lost and the dedup cache missed it) is acknowledged again.
        if block.num + 1 == a.next && block.more {
            return Block1Outcome::Continue(block);
        }
        if block.num != a.next || a.body.len() as u64 != offset {
            self.list.remove(i);
            return Block1Outcome::Incomplete;
        }
        a.body.extend_from_slice(payload);
        a.next += 1;
        a.touched = now;
        if block.more {
            return Block1Outcome::Continue(block);
        }
        let body = self.list.remove(i).map(|a| a.body).unwrap_or_default();
        Block1Outcome::Complete(body, block)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Block `num` of `body` in blocks of 2^(szx+4) bytes, with the Block2 option to send;
/// `None` when the block starts past the end.
pub fn slice(body: &[u8], num: u32, szx: u8) -> Option<(&[u8], Block)> {
    let size = 1usize << (szx + 4);
    let start = (num as usize).checked_mul(size)?;
    if start > body.len() || (start == body.len() && num > 0) {
        return None;
    }
    let end = (start + size).min(body.len());
    Some((&body[start..end], Block { num, more: end < body.len(), szx }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(num: u32, more: bool) -> Block {
        Block { num, more, szx: 0 }
    }

    #[test]
    fn blocks_in_order_reassemble() {
        let now = Instant::now();
        let mut a = Assemblies::default();
        let body: Vec<u8> = (0..40u8).collect();
        assert_eq!(a.feed(now, "k", b(0, true), &body[..16], 100), Block1Outcome::Continue(b(0, true)));
        assert_eq!(a.feed(now, "k", b(1, true), &body[16..32], 100), Block1Outcome::Continue(b(1, true)));
        // A repeated block is acknowledged again, not appended.
        assert_eq!(a.feed(now, "k", b(1, true), &body[16..32], 100), Block1Outcome::Continue(b(1, true)));
        assert_eq!(a.feed(now, "k", b(2, false), &body[32..], 100), Block1Outcome::Complete(body.clone(), b(2, false)));
        assert!(a.is_empty());
    }

    #[test]
    fn out_of_order_and_oversize_are_refused() {
        let now = Instant::now();
        let mut a = Assemblies::default();
        assert_eq!(a.feed(now, "k", b(1, true), &[0; 16], 100), Block1Outcome::Incomplete);
        a.feed(now, "k", b(0, true), &[0; 16], 100);
        assert_eq!(a.feed(now, "k", b(2, true), &[0; 16], 100), Block1Outcome::Incomplete);
        assert_eq!(a.feed(now, "k", b(0, true), &[0; 16], 20), Block1Outcome::Continue(b(0, true)));
        assert_eq!(a.feed(now, "k", b(1, true), &[0; 16], 20), Block1Outcome::TooLarge);
        assert_eq!(a.feed(now, "k", b(0, true), &[0; 15], 100), Block1Outcome::Incomplete);
    }

    #[test]
    fn stale_transfers_are_forgotten_and_count_is_bounded() {
        let now = Instant::now();
        let mut a = Assemblies::default();
        for i in 0..10 {
            a.feed(now, &format!("k{i}"), b(0, true), &[0; 16], 100);
        }
        assert_eq!(a.len(), MAX_ASSEMBLIES);
        a.feed(now + ASSEMBLY_TIMEOUT, "x", b(5, true), &[0; 16], 1000);
        assert!(a.is_empty());
    }

    #[test]
    fn slices_cover_the_body() {
        let body: Vec<u8> = (0..40u8).collect();
        let (s0, b0) = slice(&body, 0, 0).unwrap();
        assert_eq!((s0.len(), b0.more), (16, true));
        let (s2, b2) = slice(&body, 2, 0).unwrap();
        assert_eq!((s2, b2.more), (&body[32..], false));
        assert!(slice(&body, 3, 0).is_none());
        assert_eq!(slice(&[], 0, 0).unwrap().0.len(), 0);
    }
}
