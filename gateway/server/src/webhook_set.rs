//! The `[[webhook]]`s of a gateway as one broker hook whose members a configuration reload
//! replaces: a webhook added starts (its sender task and queue), one removed stops (what
//! its queue holds is dropped with it), one changed restarts; the others keep running with
//! their queues and counters. The hook's interests are the union of its members', read
//! again by the broker after each change, so a gateway without webhooks builds no events.

use std::sync::Arc;

use parking_lot::RwLock;
use roost_core::Broker;
use roost_core::hooks::{Event, EventMask, Hook};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::reload::{Apply, Reload};
use crate::webhook::{Webhook, WebhookHook, WebhookSettings};

/// One running webhook: the broker-side half, its settings and counters, and the token that
/// stops its sender.
struct Member {
    hook: Arc<WebhookHook>,
    webhook: Webhook,
    stop: CancellationToken,
}

/// The running webhooks, in config order.
pub struct WebhookSet {
    node: Arc<str>,
    members: RwLock<Vec<Member>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl WebhookSet {
    /// An empty set whose senders stop with `shutdown`; [`WebhookSet::replace`] fills it.
    pub fn new(node: &str, shutdown: CancellationToken, tracker: TaskTracker) -> Arc<WebhookSet> {
        Arc::new(WebhookSet { node: node.into(), members: RwLock::new(Vec::new()), shutdown, tracker })
    }

    /// The webhooks with their counters, in config order.
    pub fn list(&self) -> Vec<Webhook> {
        self.members.read().iter().map(|m| m.webhook.clone()).collect()
    }

    /// Checks every webhook of `wanted` that is not running yet (its URL and CA file), so
    /// that [`WebhookSet::replace`] cannot fail.
    pub fn check(&self, wanted: &[WebhookSettings]) -> anyhow::Result<()> {
        let members = self.members.read();
        for (i, w) in wanted.iter().enumerate() {
            if !members.iter().any(|m| m.webhook.settings == *w) {
                roost_rules::action::http::HttpClient::new(&w.url, w.ca_file.as_deref())
                    .map_err(|e| anyhow::anyhow!("webhook[{i}] {}: {e}", w.url))?;
            }
        }
        Ok(())
    }

    /// Makes `wanted` the running set: identical webhooks keep running, the others start or
    /// stop. Returns (started, stopped, kept).
    pub fn replace(&self, wanted: &[WebhookSettings]) -> (usize, usize, usize) {
        let mut members = self.members.write();
        let mut old: Vec<Member> = std::mem::take(&mut *members);
        let (mut started, mut kept) = (0, 0);
        for w in wanted {
            match old.iter().position(|m| m.webhook.settings == *w) {
                Some(i) => {
                    members.push(old.remove(i));
                    kept += 1;
                }
                None => {
                    let (hook, webhook, rx) = crate::webhook::hook(&self.node, w.clone());
                    let stop = self.shutdown.child_token();
                    crate::webhook::spawn(webhook.clone(), rx, stop.clone(), &self.tracker);
                    members.push(Member { hook, webhook, stop });
                    started += 1;
                }
            }
        }
        for m in &old {
            m.stop.cancel();
        }
        (started, old.len(), kept)
    }
}

impl Hook for WebhookSet {
    fn interests(&self) -> EventMask {
        self.members.read().iter().fold(EventMask::NONE, |a, m| a.union(m.hook.interests()))
    }

    fn on_event(&self, event: &Event<'_>) {
        let kind = event.kind();
        for m in self.members.read().iter() {
            if m.hook.interests().contains(kind) {
                m.hook.on_event(event);
            }
        }
    }
}

/// `[[webhook]]` on reload: the set replaced, then the broker told of its new interests.
pub struct WebhooksPart {
    pub set: Arc<WebhookSet>,
    pub broker: Broker,
}

impl Reload for WebhooksPart {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn prepare(&self, old: &Settings, new: &Settings) -> anyhow::Result<Option<Apply>> {
        if old.webhooks == new.webhooks {
            return Ok(None);
        }
        self.set.check(&new.webhooks)?;
        let (set, broker, wanted) = (self.set.clone(), self.broker.clone(), new.webhooks.clone());
        Ok(Some(Box::new(move || {
            let (started, stopped, kept) = set.replace(&wanted);
            broker.refresh_hook_interests();
            format!("webhook: {started} started, {stopped} stopped, {kept} kept")
        })))
    }
}
