//! The cluster's route table as one node sees it: which other nodes have subscriptions
//! matching a topic, and how many members each has in each shared group. It is rebuilt
//! from the `roost_routes` KV bucket (every node writes its own filters there) and matched
//! the way the core's router matches (MQTT 5.0 §4.7), so a node sends a message once to
//! each node with at least one matching subscription, whatever the number of them there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use std::sync::Arc;

use roost_core::QoS;
use roost_core::cluster::GroupKey;

#[derive(Default)]
struct Level {
    children: HashMap<Box<str>, Level>,
    /// node -> plain subscriptions on this filter there.
    plain: BTreeMap<String, u32>,
    /// group -> node -> members there.
    groups: BTreeMap<Box<str>, BTreeMap<String, u32>>,
    /// Persistent sessions subscribed to this filter: client id -> (QoS, No Local).
    sessions: BTreeMap<Arc<str>, (QoS, bool)>,
}

impl Level {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plain.is_empty() && self.groups.is_empty() && self.sessions.is_empty()
    }
}

/// A persistent session of the cluster as `roost_sessions` says: its node and filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRoute {
    pub owner: String,
    /// (filter, QoS, No Local); shared subscriptions are not here (they take the route
    /// table's path).
    pub filters: Vec<(String, QoS, bool)>,
}

/// A persistent session a topic matched: client id, its node, the highest QoS of its
/// matching subscriptions, and whether all of them are No Local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMatch {
    pub client_id: Arc<str>,
    pub owner: String,
    pub qos: QoS,
    pub no_local: bool,
}

/// Another node as heard of through its heartbeats.
#[derive(Debug, Clone)]
pub struct Peer {
    pub last_seen: Instant,
    /// What it said of itself (JSON: addresses, start time, counts).
    pub info: String,
}

/// What matched a topic on other nodes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Matched {
    /// Nodes with plain subscriptions matching.
    pub nodes: BTreeSet<String>,
    /// Shared groups matching, with their members per node.
    pub groups: Vec<(GroupKey, Vec<(String, u32)>)>,
}

#[derive(Default)]
pub struct Table {
    root: Level,
    peers: HashMap<String, Peer>,
    routes: usize,
    /// Persistent sessions of the whole cluster (this node's included), by client id.
    sessions: HashMap<Arc<str>, SessionRoute>,
}

impl Table {
    /// Sets (Some) or removes (None) the persistent session `client_id`.
    pub fn set_session(&mut self, client_id: &str, route: Option<SessionRoute>) {
        let id: Arc<str> = client_id.into();
        if let Some(old) = self.sessions.remove(&id) {
            for (f, _, _) in &old.filters {
                let levels: Vec<&str> = f.split('/').collect();
                unset_session(&mut self.root, &levels, &id);
            }
        }
        let Some(route) = route else { return };
        for (f, q, nl) in &route.filters {
            let mut l = &mut self.root;
            for level in f.split('/') {
                l = l.children.entry(level.into()).or_default();
            }
            l.sessions.insert(id.clone(), (*q, *nl));
        }
        self.sessions.insert(id, route);
    }

    pub fn session(&self, client_id: &str) -> Option<&SessionRoute> {
        self.sessions.get(client_id)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Persistent sessions with a subscription matching `topic`, whatever their node's
    /// state (a dead node's sessions still collect messages), one entry per session.
    pub fn match_sessions(&self, topic: &str) -> Vec<SessionMatch> {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut found: BTreeMap<Arc<str>, (QoS, bool)> = BTreeMap::new();
        walk_sessions(&self.root, &levels, 0, topic.starts_with('$'), &mut found);
        found
            .into_iter()
            .filter_map(|(id, (qos, no_local))| {
                let owner = self.sessions.get(&id)?.owner.clone();
                Some(SessionMatch { client_id: id, owner, qos, no_local })
            })
            .collect()
    }
    /// Sets `node`'s count of subscriptions on `filter` (in `group` if shared); 0 removes.
    pub fn set(&mut self, node: &str, group: Option<&str>, filter: &str, count: u32) {
        let levels: Vec<&str> = filter.split('/').collect();
        let before = self.count_of(node, group, &levels);
        set(&mut self.root, &levels, node, group, count);
        match (before, count) {
            (0, c) if c > 0 => self.routes += 1,
            (b, 0) if b > 0 => self.routes = self.routes.saturating_sub(1),
            _ => {}
        }
    }

    fn count_of(&self, node: &str, group: Option<&str>, levels: &[&str]) -> u32 {
        let mut l = &self.root;
        for level in levels {
            match l.children.get(*level) {
                Some(c) => l = c,
                None => return 0,
            }
        }
        match group {
            None => l.plain.get(node).copied().unwrap_or(0),
            Some(g) => l.groups.get(g).and_then(|m| m.get(node)).copied().unwrap_or(0),
        }
    }

    /// Routes (node, filter, group) held for other nodes.
    pub fn route_count(&self) -> usize {
        self.routes
    }

    pub fn heard(&mut self, node: &str, info: String, now: Instant) {
        self.peers.insert(node.to_string(), Peer { last_seen: now, info });
    }

    pub fn left(&mut self, node: &str) {
        self.peers.remove(node);
    }

    pub fn is_alive(&self, node: &str, now: Instant, timeout: Duration) -> bool {
        self.peers.get(node).is_some_and(|p| now.saturating_duration_since(p.last_seen) < timeout)
    }

    pub fn peers(&self) -> impl Iterator<Item = (&String, &Peer)> {
        self.peers.iter()
    }

    /// Every other node's subscriptions matching `topic`, for live nodes only.
    pub fn matches(&self, topic: &str, now: Instant, timeout: Duration) -> Matched {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        let mut out = Matched::default();
        let mut path = Vec::new();
        walk(&self.root, &levels, 0, dollar, &mut path, &mut out);
        out.nodes.retain(|n| self.is_alive(n, now, timeout));
        for (_, members) in &mut out.groups {
            members.retain(|(n, _)| self.is_alive(n, now, timeout));
        }
        out.groups.retain(|(_, m)| !m.is_empty());
        out
    }
}

fn set(l: &mut Level, levels: &[&str], node: &str, group: Option<&str>, count: u32) {
    let Some((first, rest)) = levels.split_first() else {
        match group {
            None if count == 0 => {
                l.plain.remove(node);
            }
            None => {
                l.plain.insert(node.to_string(), count);
            }
            Some(g) if count == 0 => {
                if let Some(m) = l.groups.get_mut(g) {
                    m.remove(node);
                    if m.is_empty() {
                        l.groups.remove(g);
                    }
                }
            }
            Some(g) => {
                l.groups.entry(g.into()).or_default().insert(node.to_string(), count);
            }
        }
        return;
    };
    if count == 0 {
        if let Some(child) = l.children.get_mut(*first) {
            set(child, rest, node, group, 0);
            if child.is_empty() {
                l.children.remove(*first);
            }
        }
    } else {
        set(l.children.entry((*first).into()).or_default(), rest, node, group, count);
    }
}

fn walk<'a>(l: &'a Level, levels: &[&str], depth: usize, dollar: bool, path: &mut Vec<&'a str>, out: &mut Matched) {
    // A leading wildcard never matches a `$` topic (§4.7.2).
    let wild_ok = !(dollar && depth == 0);
    if wild_ok && let Some(all) = l.children.get("#") {
        path.push("#");
        collect(all, path, out);
        path.pop();
    }
    let Some((level, rest)) = levels.split_first() else {
        collect(l, path, out);
        return;
    };
    if let Some((k, child)) = l.children.get_key_value(*level) {
        path.push(k);
        walk(child, rest, depth + 1, dollar, path, out);
        path.pop();
    }
    if wild_ok && let Some(child) = l.children.get("+") {
        path.push("+");
        walk(child, rest, depth + 1, dollar, path, out);
        path.pop();
    }
}

fn unset_session(l: &mut Level, levels: &[&str], id: &Arc<str>) {
    let Some((first, rest)) = levels.split_first() else {
        l.sessions.remove(id);
        return;
    };
    if let Some(child) = l.children.get_mut(*first) {
        unset_session(child, rest, id);
        if child.is_empty() {
            l.children.remove(*first);
        }
    }
}

fn walk_sessions(l: &Level, levels: &[&str], depth: usize, dollar: bool, out: &mut BTreeMap<Arc<str>, (QoS, bool)>) {
    let add = |l: &Level, out: &mut BTreeMap<Arc<str>, (QoS, bool)>| {
        for (id, (q, nl)) in &l.sessions {
            let e = out.entry(id.clone()).or_insert((*q, *nl));
            e.0 = e.0.max(*q);
            e.1 &= *nl;
        }
    };
    let wild_ok = !(dollar && depth == 0);
    if wild_ok && let Some(all) = l.children.get("#") {
        add(all, out);
    }
    let Some((level, rest)) = levels.split_first() else {
        add(l, out);
        return;
    };
    if let Some(child) = l.children.get(*level) {
        walk_sessions(child, rest, depth + 1, dollar, out);
    }
    if wild_ok && let Some(child) = l.children.get("+") {
        walk_sessions(child, rest, depth + 1, dollar, out);
    }
}

fn collect(l: &Level, path: &[&str], out: &mut Matched) {
    out.nodes.extend(l.plain.keys().cloned());
    if l.groups.is_empty() {
        return;
    }
    let filter: std::sync::Arc<str> = path.join("/").into();
    for (g, members) in &l.groups {
        let m = members.iter().map(|(n, c)| (n.clone(), *c)).collect();
        out.groups.push(((g.as_ref().into(), filter.clone()), m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (Table, Instant) {
        let mut t = Table::default();
        let now = Instant::now();
        for n in ["a", "b", "c"] {
            t.heard(n, String::new(), now);
        }
        (t, now)
    }

    #[test]
    fn wildcards_match_once_per_node() {
        let (mut t, now) = table();
        t.set("b", None, "x/#", 1);
        t.set("b", None, "x/+/z", 2);
        t.set("c", None, "x/y/z", 1);
        t.set("c", None, "q", 1);
        let m = t.matches("x/y/z", now, Duration::from_secs(5));
        assert_eq!(m.nodes.into_iter().collect::<Vec<_>>(), vec!["b", "c"]);
        assert_eq!(t.route_count(), 4);
        t.set("b", None, "x/#", 0);
        t.set("b", None, "x/+/z", 0);
        assert_eq!(t.matches("x/y/z", now, Duration::from_secs(5)).nodes.len(), 1);
        assert_eq!(t.route_count(), 2);
    }

    #[test]
    fn dollar_topics_skip_leading_wildcards_and_dead_nodes_are_skipped() {
        let (mut t, now) = table();
        t.set("b", None, "#", 1);
        t.set("d", None, "s/#", 1);
        assert!(t.matches("$SYS/x", now, Duration::from_secs(5)).nodes.is_empty());
        assert!(t.matches("s/1", now, Duration::from_secs(5)).nodes.contains("b"));
        assert!(!t.matches("s/1", now, Duration::from_secs(5)).nodes.contains("d"));
    }

    #[test]
    fn persistent_sessions_match_once_whatever_their_node_state() {
        let (mut t, _) = table();
        let route = |owner: &str, f: &[(&str, u8)]| SessionRoute {
            owner: owner.into(),
            filters: f.iter().map(|(f, q)| (f.to_string(), QoS::from_u8(*q).unwrap(), false)).collect(),
        };
        t.set_session("s1", Some(route("dead", &[("x/#", 1), ("x/+", 2)])));
        t.set_session("s2", Some(route("b", &[("y", 1)])));
        let m = t.match_sessions("x/y");
        assert_eq!(m.len(), 1);
        assert_eq!((&*m[0].client_id, m[0].owner.as_str(), m[0].qos), ("s1", "dead", QoS::ExactlyOnce));
        t.set_session("s1", Some(route("c", &[("z", 1)])));
        assert!(t.match_sessions("x/y").is_empty());
        assert_eq!(t.match_sessions("z")[0].owner, "c");
        t.set_session("s1", None);
        assert!(t.match_sessions("z").is_empty());
        assert_eq!(t.session_count(), 1);
        assert!(t.match_sessions("$SYS/y").is_empty());
    }

    #[test]
    fn groups_carry_their_filter_and_members() {
        let (mut t, now) = table();
        t.set("b", Some("g"), "s/+", 2);
        t.set("c", Some("g"), "s/+", 1);
        let m = t.matches("s/1", now, Duration::from_secs(5));
        assert!(m.nodes.is_empty());
        assert_eq!(m.groups.len(), 1);
        let ((g, f), members) = &m.groups[0];
        assert_eq!((&**g, &**f), ("g", "s/+"));
        assert_eq!(members, &vec![("b".to_string(), 2), ("c".to_string(), 1)]);
    }
}
