//! The topic trie router: subscription filters (with `+`/`#` wildcards and
//! `$share/{group}/...` groups) -> sessions. MQTT 5.0 §4.7 (matching), §4.8.2 (shared).
//!
//! The router holds `Arc<Session>` handles, so a remote route (a bridge) is just another
//! subscriber. Matching takes a read lock and only collects targets; enqueueing happens
//! outside the lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

use crate::cluster::{ClusterLink, LocalShare};
use crate::session::Session;
use crate::settings::SharedStrategy;
pub use crate::types::SubOptions;

#[derive(Clone)]
pub(crate) struct Target {
    pub session: Arc<Session>,
    pub options: SubOptions,
    pub shared: bool,
}

struct SharedGroup {
    /// The group's filter (without `$share/{group}/`): a cluster names a group by both.
    filter: Arc<str>,
    members: Vec<(Arc<Session>, SubOptions)>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    subscribers: Vec<(Arc<Session>, SubOptions)>,
    groups: HashMap<Box<str>, SharedGroup>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty() && self.groups.is_empty()
    }
}

pub(crate) struct Router {
    root: RwLock<Node>,
    strategy: SharedStrategy,
    /// Told of every subscription added or removed, under the write lock, so that what it
    /// counts never drifts from the trie (set once, when a cluster is attached).
    link: std::sync::OnceLock<Arc<dyn ClusterLink>>,
}

impl Router {
    pub fn new(strategy: SharedStrategy) -> Self {
        Router { root: RwLock::new(Node::default()), strategy, link: std::sync::OnceLock::new() }
    }

    /// Attaches `link` and returns every subscription held now as (group, filter, count),
    /// both under one write lock: no subscription is counted twice or missed.
    pub fn attach(&self, link: Arc<dyn ClusterLink>) -> Vec<(Option<String>, String, usize)> {
        let root = self.root.write();
        if self.link.set(link).is_err() {
            tracing::warn!("a cluster link was already attached: the second one is ignored");
        }
        let mut out = Vec::new();
        let mut path = Vec::new();
        list(&root, &mut path, &mut out);
        out
    }

    /// Adds or replaces `session`'s subscription to `filter` (in `group` if shared).
    pub fn subscribe(&self, session: &Arc<Session>, group: Option<&str>, filter: &str, options: SubOptions) {
        let mut root = self.root.write();
        let mut node = &mut *root;
        for level in filter.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let list = match group {
            None => &mut node.subscribers,
            Some(g) => {
                &mut node
                    .groups
                    .entry(g.into())
                    .or_insert_with(|| SharedGroup {
                        filter: filter.into(),
                        members: Vec::new(),
                        next: AtomicUsize::new(0),
                    })
                    .members
            }
        };
        match list.iter_mut().find(|(s, _)| s.id() == session.id()) {
            Some(entry) => entry.1 = options,
            None => {
                list.push((session.clone(), options));
                if let Some(link) = self.link.get() {
                    link.route_added(group, filter);
                }
            }
        }
    }

    /// Removes a subscription; true if it existed.
    pub fn unsubscribe(&self, session_id: u64, group: Option<&str>, filter: &str) -> bool {
        let mut root = self.root.write();
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove(&mut root, &levels, session_id, group);
        if removed && let Some(link) = self.link.get() {
            link.route_removed(group, filter);
        }
        removed
    }

    /// Every subscription matching `topic`: all plain subscribers, and one member per
    /// shared group (chosen by the strategy, online members first) of the groups `share`
    /// lets this node serve.
    pub fn matches(&self, topic: &str, publisher_hash: u64, share: &LocalShare, out: &mut Vec<Target>) {
        let root = self.root.read();
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        let walk = Walk { dollar, hash: publisher_hash, share };
        self.walk(&root, &levels, 0, &walk, out);
    }

    fn walk(&self, node: &Node, levels: &[&str], depth: usize, w: &Walk<'_>, out: &mut Vec<Target>) {
        // A leading wildcard never matches a `$` topic (§4.7.2).
        let wild_ok = !(w.dollar && depth == 0);
        if wild_ok && let Some(all) = node.children.get("#") {
            self.collect(all, w, out);
        }
        let Some((level, rest)) = levels.split_first() else {
            self.collect(node, w, out);
            return;
        };
        if let Some(child) = node.children.get(*level) {
            self.walk(child, rest, depth + 1, w, out);
        }
        if wild_ok && let Some(child) = node.children.get("+") {
            self.walk(child, rest, depth + 1, w, out);
        }
    }

    fn collect(&self, node: &Node, w: &Walk<'_>, out: &mut Vec<Target>) {
        out.extend(node.subscribers.iter().map(|(s, o)| Target { session: s.clone(), options: *o, shared: false }));
        for (name, group) in &node.groups {
            if !w.share.serves(name, &group.filter) {
                continue;
            }
            if let Some((s, o)) = self.pick(group, w.hash) {
                out.push(Target { session: s.clone(), options: *o, shared: true });
            }
        }
    }

    fn pick<'a>(&self, group: &'a SharedGroup, hash: u64) -> Option<&'a (Arc<Session>, SubOptions)> {
        let n = group.members.len();
        if n == 0 {
            return None;
        }
        let start = match self.strategy {
            SharedStrategy::RoundRobin => group.next.fetch_add(1, Ordering::Relaxed) % n,
            SharedStrategy::Random => rand::random_range(0..n),
            SharedStrategy::HashClientId => (hash % n as u64) as usize,
        };
        // Prefer a member that is connected; an all-offline group queues in the chosen one.
        (0..n)
            .map(|i| &group.members[(start + i) % n])
            .find(|(s, _)| s.is_online())
            .or_else(|| group.members.get(start))
    }

    /// Count of distinct filters with at least one subscriber (for `$SYS` and metrics).
    pub fn filter_count(&self) -> usize {
        fn count(n: &Node) -> usize {
            usize::from(!n.subscribers.is_empty() || !n.groups.is_empty())
                + n.children.values().map(count).sum::<usize>()
        }
        count(&self.root.read())
    }
}

/// What one match walk carries down the trie.
struct Walk<'a> {
    dollar: bool,
    hash: u64,
    share: &'a LocalShare,
}

fn list(node: &Node, path: &mut Vec<String>, out: &mut Vec<(Option<String>, String, usize)>) {
    let filter = path.join("/");
    if !node.subscribers.is_empty() {
        out.push((None, filter.clone(), node.subscribers.len()));
    }
    for (name, group) in &node.groups {
        out.push((Some(name.to_string()), filter.clone(), group.members.len()));
    }
    for (level, child) in &node.children {
        path.push(level.to_string());
        list(child, path, out);
        path.pop();
    }
}

fn remove(node: &mut Node, levels: &[&str], session_id: u64, group: Option<&str>) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return match group {
            None => {
                let before = node.subscribers.len();
                node.subscribers.retain(|(s, _)| s.id() != session_id);
                before != node.subscribers.len()
            }
            Some(g) => {
                let Some(grp) = node.groups.get_mut(g) else { return false };
                let before = grp.members.len();
                grp.members.retain(|(s, _)| s.id() != session_id);
                let removed = before != grp.members.len();
                if grp.members.is_empty() {
                    node.groups.remove(g);
                }
                removed
            }
        };
    };
    let Some(child) = node.children.get_mut(*first) else { return false };
    let removed = remove(child, rest, session_id, group);
    if child.is_empty() {
        node.children.remove(*first);
    }
    removed
}
