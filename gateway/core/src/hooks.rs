//! The event bus: what happens in the broker, told to whoever registered an interest
//! (webhooks, `$SYS` events, tracing, a user's own in-process handlers).
//!
//! Event names follow EMQX's hook points: `client.connected`, `client.disconnected`,
//! `client.authenticate`, `session.created`, `session.resumed`, `session.subscribed`,
//! `session.unsubscribed`, `session.terminated`, `message.publish`, `message.delivered`,
//! `message.acked`, `message.dropped`.
//!
//! Hooks run inline on the broker's tasks, so they must be cheap and never block; a hook
//! with real work to do (an HTTP POST) hands the event to its own task through a bounded
//! queue. Each hook says which events it wants ([`Hook::interests`]); the broker keeps the
//! union, so an event nobody wants costs one bit test and no allocation on the hot path.
//!
//! A hook may also rewrite or reject what a client publishes ([`Hook::on_publish`], asked
//! only of hooks whose [`Hook::rewrites_publish`] is true): a rejected publish is refused
//! to the client as not authorized and counted as dropped (`rejected`).

use crate::auth::ClientInfo;
use crate::metrics::DropReason;
use crate::types::DisconnectReason;
use crate::types::{ClientId, Message, QoS};

/// One thing that happened in the broker.
#[derive(Debug)]
pub enum Event<'a> {
    /// `client.connected`: a connection was accepted and attached to its session.
    Connected { client: &'a ClientInfo, session_present: bool, keep_alive: u16 },
    /// `client.disconnected`.
    Disconnected { client: &'a ClientInfo, reason: DisconnectReason },
    /// `client.authenticate`: the authenticator's decision on a connect.
    Authenticate { client: &'a ClientInfo, allowed: bool },
    /// `session.created`: a connect started a new session.
    SessionCreated { client: &'a ClientInfo },
    /// `session.resumed`: a connect resumed an existing session.
    SessionResumed { client: &'a ClientInfo },
    /// `session.subscribed`.
    Subscribed { client: &'a ClientInfo, filter: &'a str },
    /// `session.unsubscribed`.
    Unsubscribed { client: &'a ClientInfo, filter: &'a str },
    /// `session.terminated`: a session ended (`expired`, `discarded` by a clean start,
    /// `closed` with its connection when its expiry is 0).
    SessionTerminated { client_id: &'a ClientId, reason: &'static str },
    /// `message.publish`: a message entered the broker (`client` is `None` for the broker's
    /// own messages: HTTP API, bridges).
    Published { client: Option<&'a ClientInfo>, message: &'a Message },
    /// `message.delivered`: a message was handed to a client's connection to send.
    Delivered { client: &'a ClientInfo, message: &'a Message, qos: QoS },
    /// `message.acked`: a client acknowledged a QoS 1/2 delivery (PUBACK / PUBCOMP).
    Acked { client: &'a ClientInfo, message: &'a Message },
    /// `message.dropped`: a message was not delivered to `client` (or to anyone).
    Dropped { client: Option<&'a ClientId>, message: &'a Message, reason: DropReason },
}

/// The kinds of [`Event`], as named in webhook filters and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ClientConnected,
    ClientDisconnected,
    ClientAuthenticate,
    SessionCreated,
    SessionResumed,
    SessionSubscribed,
    SessionUnsubscribed,
    SessionTerminated,
    MessagePublish,
    MessageDelivered,
    MessageAcked,
    MessageDropped,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::ClientConnected,
        EventKind::ClientDisconnected,
        EventKind::ClientAuthenticate,
        EventKind::SessionCreated,
        EventKind::SessionResumed,
        EventKind::SessionSubscribed,
        EventKind::SessionUnsubscribed,
        EventKind::SessionTerminated,
        EventKind::MessagePublish,
        EventKind::MessageDelivered,
        EventKind::MessageAcked,
        EventKind::MessageDropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ClientConnected => "client.connected",
            EventKind::ClientDisconnected => "client.disconnected",
            EventKind::ClientAuthenticate => "client.authenticate",
            EventKind::SessionCreated => "session.created",
            EventKind::SessionResumed => "session.resumed",
            EventKind::SessionSubscribed => "session.subscribed",
            EventKind::SessionUnsubscribed => "session.unsubscribed",
            EventKind::SessionTerminated => "session.terminated",
            EventKind::MessagePublish => "message.publish",
            EventKind::MessageDelivered => "message.delivered",
            EventKind::MessageAcked => "message.acked",
            EventKind::MessageDropped => "message.dropped",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of [`EventKind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventMask(u16);

impl EventMask {
    pub const NONE: EventMask = EventMask(0);
    pub const ALL: EventMask = EventMask((1 << EventKind::ALL.len()) - 1);

    pub const fn of(kinds: &[EventKind]) -> EventMask {
        let mut bits = 0;
        let mut i = 0;
        while i < kinds.len() {
            bits |= kinds[i].bit();
            i += 1;
        }
        EventMask(bits)
    }

    pub const fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub const fn union(self, other: EventMask) -> EventMask {
        EventMask(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Event<'_> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Connected { .. } => EventKind::ClientConnected,
            Event::Disconnected { .. } => EventKind::ClientDisconnected,
            Event::Authenticate { .. } => EventKind::ClientAuthenticate,
            Event::SessionCreated { .. } => EventKind::SessionCreated,
            Event::SessionResumed { .. } => EventKind::SessionResumed,
            Event::Subscribed { .. } => EventKind::SessionSubscribed,
            Event::Unsubscribed { .. } => EventKind::SessionUnsubscribed,
            Event::SessionTerminated { .. } => EventKind::SessionTerminated,
            Event::Published { .. } => EventKind::MessagePublish,
            Event::Delivered { .. } => EventKind::MessageDelivered,
            Event::Acked { .. } => EventKind::MessageAcked,
            Event::Dropped { .. } => EventKind::MessageDropped,
        }
    }

    /// The client the event is about, if any.
    pub fn client_id(&self) -> Option<&ClientId> {
        match self {
            Event::Connected { client, .. }
            | Event::Disconnected { client, .. }
            | Event::Authenticate { client, .. }
            | Event::SessionCreated { client }
            | Event::SessionResumed { client }
            | Event::Subscribed { client, .. }
            | Event::Unsubscribed { client, .. }
            | Event::Delivered { client, .. }
            | Event::Acked { client, .. } => Some(&client.client_id),
            Event::SessionTerminated { client_id, .. } => Some(client_id),
            Event::Published { client, .. } => client.map(|c| &c.client_id),
            Event::Dropped { client, .. } => *client,
        }
    }
}

/// What an in-process handler decided about a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishVerdict {
    /// Route the (possibly rewritten) message.
    Continue,
    /// Refuse it: the client is told it is not authorized; counted as dropped (`rejected`).
    Reject,
}

/// A sink of broker events, registered with `BrokerBuilder::hook`.
pub trait Hook: Send + Sync {
    /// The events this hook wants (default: all of them). Read once, when the broker is
    /// built.
    fn interests(&self) -> EventMask {
        EventMask::ALL
    }

    /// Told of every event in [`Hook::interests`]. Must not block.
    fn on_event(&self, event: &Event<'_>) {
        let _ = event;
    }

    /// Whether [`Hook::on_publish`] must be asked about every publish (default: no).
    fn rewrites_publish(&self) -> bool {
        false
    }

    /// Asked before a client's publish is routed, after the ACL check: may rewrite the
    /// message (topic, payload, QoS, properties) or reject it. Must not block. A rewritten
    /// topic is checked again as a topic name.
    fn on_publish(&self, client: Option<&ClientInfo>, message: &mut Message) -> PublishVerdict {
        let _ = (client, message);
        PublishVerdict::Continue
    }
}

/// The hooks of one broker, with the union of their interests for the fast path.
#[derive(Default)]
pub(crate) struct Hooks {
    all: Vec<std::sync::Arc<dyn Hook>>,
    masks: Vec<EventMask>,
    mask: EventMask,
    rewriters: Vec<std::sync::Arc<dyn Hook>>,
}

impl Hooks {
    pub fn new(hooks: Vec<std::sync::Arc<dyn Hook>>) -> Hooks {
        let masks: Vec<EventMask> = hooks.iter().map(|h| h.interests()).collect();
        let mask = masks.iter().fold(EventMask::NONE, |a, m| a.union(*m));
        let rewriters = hooks.iter().filter(|h| h.rewrites_publish()).cloned().collect();
        Hooks { all: hooks, masks, mask, rewriters }
    }

    /// Someone wants events of this kind: build the event only then.
    #[inline]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.mask.contains(kind)
    }

    pub fn emit(&self, event: &Event<'_>) {
        let kind = event.kind();
        if !self.mask.contains(kind) {
            return;
        }
        for (h, m) in self.all.iter().zip(&self.masks) {
            if m.contains(kind) {
                h.on_event(event);
            }
        }
    }

    pub fn has_rewriters(&self) -> bool {
        !self.rewriters.is_empty()
    }

    pub fn on_publish(&self, client: Option<&ClientInfo>, message: &mut Message) -> PublishVerdict {
        for h in &self.rewriters {
            if h.on_publish(client, message) == PublishVerdict::Reject {
                return PublishVerdict::Reject;
            }
        }
        PublishVerdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_masks_hold_what_they_say() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert!(EventMask::ALL.contains(k));
            assert!(!EventMask::NONE.contains(k));
        }
        let m = EventMask::of(&[EventKind::ClientConnected, EventKind::MessageDropped]);
        assert!(m.contains(EventKind::ClientConnected) && m.contains(EventKind::MessageDropped));
        assert!(!m.contains(EventKind::MessagePublish));
        assert_eq!(EventKind::parse("client.nope"), None);
    }
}
