//! Hooks: what happens in the broker, told to whoever registered an interest (webhooks,
//! `$SYS` events, tracing). Hooks run inline, so they must be cheap and never block;
//! a hook with real work to do hands the event to its own task.

use crate::session::DisconnectReason;
use crate::types::{ClientInfo, Message};

#[derive(Debug)]
pub enum Event<'a> {
    Connected { client: &'a ClientInfo, session_present: bool },
    Disconnected { client: &'a ClientInfo, reason: DisconnectReason },
    Published { client: Option<&'a ClientInfo>, message: &'a Message },
    Subscribed { client: &'a ClientInfo, filter: &'a str },
    Unsubscribed { client: &'a ClientInfo, filter: &'a str },
}

pub trait Hook: Send + Sync {
    fn on_event(&self, event: &Event<'_>);
}
