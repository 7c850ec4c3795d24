//! Broker counters, per protocol where it matters. Lock-free atomics on the hot path;
//! `snapshot()` reads them for `$SYS`, `/metrics` and tests.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::types::Protocol;

/// Why a message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A session queue was full (the overflow policy dropped one message).
    QueueFull,
    /// The message expiry interval passed while it was queued.
    Expired,
    /// QoS 0 for an offline session, with `queue_qos0_offline` off.
    Qos0Offline,
    /// Larger than the receiving client's Maximum Packet Size.
    TooLarge,
    /// No subscriber matched.
    NoSubscribers,
    /// The publisher was not authorized to publish on the topic.
    NotAuthorized,
    /// Kept in memory only: the store was past `storage.max_size` (not lost unless the
    /// process dies before delivery).
    StoreFull,
    /// An in-process hook rejected the publish.
    Rejected,
}

impl DropReason {
    pub const ALL: [DropReason; 8] = [
        DropReason::QueueFull,
        DropReason::Expired,
        DropReason::Qos0Offline,
        DropReason::TooLarge,
        DropReason::NoSubscribers,
        DropReason::NotAuthorized,
        DropReason::StoreFull,
        DropReason::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Expired => "expired",
            DropReason::Qos0Offline => "qos0_offline",
            DropReason::TooLarge => "too_large",
            DropReason::NoSubscribers => "no_subscribers",
            DropReason::NotAuthorized => "not_authorized",
            DropReason::StoreFull => "store_full",
            DropReason::Rejected => "rejected",
        }
    }
}

/// What flood control refused or held back (per-listener limits of the adapters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// A connection closed at accept: the listener's `max_connections` was reached.
    MaxConnections,
    /// A connection closed at accept: over the listener's `max_conn_rate`.
    ConnRate,
    /// A connection not read for a while: over its bytes-in rate.
    BytesRate,
    /// A connection not read for a while: over its messages-in rate.
    MessageRate,
    /// A datagram dropped: its peer was over the per-peer packet rate.
    PeerPacketRate,
    /// A datagram from a new peer dropped: over the new-peers-per-second cap.
    NewPeerRate,
}

impl Limited {
    pub const ALL: [Limited; 6] = [
        Limited::MaxConnections,
        Limited::ConnRate,
        Limited::BytesRate,
        Limited::MessageRate,
        Limited::PeerPacketRate,
        Limited::NewPeerRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limited::MaxConnections => "max_connections",
            Limited::ConnRate => "conn_rate",
            Limited::BytesRate => "bytes_rate",
            Limited::MessageRate => "message_rate",
            Limited::PeerPacketRate => "peer_packet_rate",
            Limited::NewPeerRate => "new_peer_rate",
        }
    }
}

#[derive(Default)]
struct PerProtocol {
    connections: AtomicU64,
    connects_total: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// All broker counters.
#[derive(Default)]
pub struct Metrics {
    protocols: [PerProtocol; Protocol::ALL.len()],
    dropped: [AtomicU64; DropReason::ALL.len()],
    auth_failures: AtomicU64,
    limited: [AtomicU64; Limited::ALL.len()],
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub connections: u64,
    pub connects_total: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub auth_failures: u64,
    /// (what, count) for every kind of flood control.
    pub limited: Vec<(&'static str, u64)>,
    /// (reason, count) for every drop reason.
    pub dropped_by_reason: Vec<(&'static str, u64)>,
    /// (protocol, connections, messages in, messages out) for every protocol.
    pub by_protocol: Vec<(&'static str, u64, u64, u64)>,
}

impl Snapshot {
    pub fn limited(&self, what: Limited) -> u64 {
        self.limited.iter().find(|(l, _)| *l == what.as_str()).map_or(0, |(_, n)| *n)
    }
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped_by_reason.iter().find(|(r, _)| *r == reason.as_str()).map_or(0, |(_, n)| *n)
    }
}

impl Metrics {
    fn p(&self, protocol: Protocol) -> &PerProtocol {
        &self.protocols[protocol.index()]
    }
    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Relaxed);
    }
    pub fn limited(&self, what: Limited) {
        self.limited[what as usize].fetch_add(1, Relaxed);
    }
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Relaxed);
    }
    pub fn message_in(&self, protocol: Protocol) {
        self.p(protocol).messages_in.fetch_add(1, Relaxed);
    }
    pub fn message_out(&self, protocol: Protocol) {
        self.p(protocol).messages_out.fetch_add(1, Relaxed);
    }
    pub fn bytes_in(&self, protocol: Protocol, n: usize) {
        self.p(protocol).bytes_in.fetch_add(n as u64, Relaxed);
    }
    pub fn bytes_out(&self, protocol: Protocol, n: usize) {
        self.p(protocol).bytes_out.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn connected(&self, protocol: Protocol) {
        self.p(protocol).connections.fetch_add(1, Relaxed);
        self.p(protocol).connects_total.fetch_add(1, Relaxed);
    }
    pub(crate) fn disconnected(&self, protocol: Protocol) {
        self.p(protocol).connections.fetch_sub(1, Relaxed);
    }
    /// Connections of all protocols now open.
    pub fn connections(&self) -> u64 {
        self.protocols.iter().map(|p| p.connections.load(Relaxed)).sum()
    }

    pub fn snapshot(&self) -> Snapshot {
        let sum = |f: fn(&PerProtocol) -> &AtomicU64| self.protocols.iter().map(|p| f(p).load(Relaxed)).sum();
        let dropped_by_reason: Vec<_> =
            DropReason::ALL.iter().map(|r| (r.as_str(), self.dropped[*r as usize].load(Relaxed))).collect();
        Snapshot {
            connections: sum(|p| &p.connections),
            connects_total: sum(|p| &p.connects_total),
            messages_received: sum(|p| &p.messages_in),
            messages_sent: sum(|p| &p.messages_out),
            messages_dropped: dropped_by_reason.iter().map(|(_, n)| n).sum(),
            bytes_received: sum(|p| &p.bytes_in),
            bytes_sent: sum(|p| &p.bytes_out),
            auth_failures: self.auth_failures.load(Relaxed),
            limited: Limited::ALL.iter().map(|l| (l.as_str(), self.limited[*l as usize].load(Relaxed))).collect(),
            dropped_by_reason,
            by_protocol: Protocol::ALL
                .iter()
                .map(|pr| {
                    let p = self.p(*pr);
                    (
                        pr.as_str(),
                        p.connections.load(Relaxed),
                        p.messages_in.load(Relaxed),
                        p.messages_out.load(Relaxed),
                    )
                })
                .collect(),
        }
    }
}
