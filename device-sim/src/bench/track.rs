//! Loss and duplicate accounting: sequence numbers per publisher, per subscriber.
//!
//! MQTT keeps the order of one publisher's messages on one topic to one subscriber, so a
//! stream normally arrives as 0, 1, 2, ... A gap records the missing numbers (up to a bound;
//! past it they are counted as lost outright); a number below the next expected one is
//! either a late arrival that fills a recorded gap or a duplicate. At the end, everything
//! the publisher sent beyond the highest number received is lost too.

use std::collections::BTreeSet;

/// Missing numbers remembered per stream; beyond this a gap is counted lost at once.
const MAX_MISSING: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct Stream {
    next: u64,
    missing: BTreeSet<u64>,
    lost_outright: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    New,
    Duplicate,
}

impl Stream {
    pub fn record(&mut self, seq: u64) -> Outcome {
        if seq >= self.next {
            let gap = seq - self.next;
            let room = (MAX_MISSING - self.missing.len()) as u64;
            let remembered = gap.min(room);
            self.missing.extend(self.next..self.next + remembered);
            self.lost_outright += gap - remembered;
            self.next = seq + 1;
            Outcome::New
        } else if self.missing.remove(&seq) {
            Outcome::New
        } else {
            Outcome::Duplicate
        }
    }

    /// Messages lost, given how many the publisher sent (numbered 0..sent).
    pub fn lost(&self, sent: u64) -> u64 {
        self.missing.len() as u64 + self.lost_outright + sent.saturating_sub(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_loss() {
        let mut s = Stream::default();
        for i in 0..100 {
            assert_eq!(s.record(i), Outcome::New);
        }
        assert_eq!(s.lost(100), 0);
        assert_eq!(s.lost(103), 3, "the last three never arrived");
    }

    #[test]
    fn gaps_late_arrivals_and_duplicates() {
        let mut s = Stream::default();
        for i in [0, 1, 4, 5, 2, 5, 0, 7] {
            s.record(i);
        }
        // Missing: 3 and 6; 2 arrived late (not lost, not a duplicate); 5 and 0 repeated.
        assert_eq!(s.lost(8), 2);
        let mut s = Stream::default();
        let dups = [0, 1, 1, 2, 2, 2].iter().filter(|&&i| s.record(i) == Outcome::Duplicate).count();
        assert_eq!(dups, 3);
    }

    #[test]
    fn a_huge_gap_is_bounded_but_still_counted() {
        let mut s = Stream::default();
        s.record(0);
        s.record(1_000_000);
        assert_eq!(s.lost(1_000_001), 999_999);
        assert!(s.missing.len() <= MAX_MISSING);
    }
}
