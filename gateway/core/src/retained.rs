//! Retained messages (MQTT 5.0 §3.3.1.3): the last retained message per topic, kept in a
//! topic trie so a wildcard subscription finds its matches without scanning every topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use crate::types::Message;

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

#[derive(Default)]
pub(crate) struct Retained {
    root: RwLock<Node>,
    count: std::sync::atomic::AtomicUsize,
}

pub(crate) enum RetainOutcome {
    Stored,
    Cleared,
    /// A new topic beyond `max_retained_messages`.
    Full,
}

impl Retained {
    pub fn len(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stores `msg` as the retained message of its topic; an empty payload clears it.
    pub fn set(&self, msg: &Arc<Message>, max: usize) -> RetainOutcome {
        use std::sync::atomic::Ordering::Relaxed;
        let mut root = self.root.write();
        if msg.payload.is_empty() {
            let levels: Vec<&str> = msg.topic.split('/').collect();
            if clear(&mut root, &levels) {
                self.count.fetch_sub(1, Relaxed);
            }
            return RetainOutcome::Cleared;
        }
        let mut node = &mut *root;
        for level in msg.topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        if node.message.is_none() {
            if self.count.load(Relaxed) >= max {
                return RetainOutcome::Full;
            }
            self.count.fetch_add(1, Relaxed);
        }
        node.message = Some(msg.clone());
        RetainOutcome::Stored
    }

    /// Retained messages matching `filter` that have not expired.
    pub fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let root = self.root.read();
        let levels: Vec<&str> = filter.split('/').collect();
        let mut out = Vec::new();
        walk(&root, &levels, true, now, &mut out);
        out
    }
}

fn walk(node: &Node, filter: &[&str], top: bool, now: Instant, out: &mut Vec<Arc<Message>>) {
    let Some((level, rest)) = filter.split_first() else {
        if let Some(m) = &node.message
            && !m.is_expired(now)
        {
            out.push(m.clone());
        }
        return;
    };
    match *level {
        "#" => {
            // `#` also matches the parent level itself (`a/#` matches `a`).
            if !top
                && let Some(m) = &node.message
                && !m.is_expired(now)
            {
                out.push(m.clone());
            }
            all(node, top, now, out);
        }
        "+" => {
            for (name, child) in &node.children {
                if !(top && name.starts_with('$')) {
                    walk(child, rest, false, now, out);
                }
            }
        }
        exact => {
            if let Some(child) = node.children.get(exact) {
                walk(child, rest, false, now, out);
            }
        }
    }
}

/// Every message below `node` (excluding `node` itself).
fn all(node: &Node, top: bool, now: Instant, out: &mut Vec<Arc<Message>>) {
    for (name, child) in &node.children {
        if top && name.starts_with('$') {
            continue;
        }
        if let Some(m) = &child.message
            && !m.is_expired(now)
        {
            out.push(m.clone());
        }
        all(child, false, now, out);
    }
}

fn clear(node: &mut Node, levels: &[&str]) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return node.message.take().is_some();
    };
    let Some(child) = node.children.get_mut(*first) else { return false };
    let removed = clear(child, rest);
    if child.message.is_none() && child.children.is_empty() {
        node.children.remove(*first);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::QoS;

    fn msg(topic: &str, body: &str) -> Arc<Message> {
        Arc::new(Message::new(topic, body.as_bytes().to_vec(), QoS::AtMostOnce, true))
    }

    fn topics(r: &Retained, filter: &str) -> Vec<String> {
        let mut v: Vec<String> = r.matching(filter, Instant::now()).iter().map(|m| m.topic.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn wildcards_and_dollar() {
        let r = Retained::default();
        for t in ["a", "a/b", "a/b/c", "x/b", "$SYS/up"] {
            r.set(&msg(t, "1"), 100);
        }
        assert_eq!(topics(&r, "a/#"), ["a", "a/b", "a/b/c"]);
        assert_eq!(topics(&r, "+/b"), ["a/b", "x/b"]);
        assert_eq!(topics(&r, "#"), ["a", "a/b", "a/b/c", "x/b"]);
        assert_eq!(topics(&r, "$SYS/#"), ["$SYS/up"]);
        assert_eq!(topics(&r, "a"), ["a"]);
        r.set(&msg("a/b", ""), 100);
        assert_eq!(topics(&r, "a/#"), ["a", "a/b/c"]);
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn bounded() {
        let r = Retained::default();
        assert!(matches!(r.set(&msg("a", "1"), 1), RetainOutcome::Stored));
        assert!(matches!(r.set(&msg("b", "1"), 1), RetainOutcome::Full));
        assert!(matches!(r.set(&msg("a", "2"), 1), RetainOutcome::Stored));
    }
}
