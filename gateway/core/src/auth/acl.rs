//! `[acl]`: ordered allow/deny rules, first match wins, `no_match` otherwise (EMQX's
//! authorization file and Mosquitto's ACL, in one table).
//!
//! A rule matches a client when every "who" it names matches (user, client id, IP range,
//! protocol; none named: all clients), the action matches, and one of its topics matches.
//! Topics are filters with `%u` (username), `%c` (client id) and `%{claim}` (a claim of
//! the client's verified JWT, `[auth.jwt]`) placeholders; a rule with a placeholder never
//! matches a client without its value, nor one whose value is empty or holds a wildcard or
//! `/` (it could widen the filter). `eq FILTER` matches that exact
//! filter text only (a subscription to `a/#` itself, not to `a/b`).
//!
//! Publish: the topic name must match the rule's filter. Subscribe: the rule's filter must
//! cover every topic the requested one can match (`a/#` covers `a/+/b`; `a/+` does not
//! cover `a/#`); a shared subscription is judged by its filter without `$share/{group}/`.

use std::net::IpAddr;

use super::{Action, Authorizer, ClientInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Publish,
    Subscribe,
    All,
}

/// An IP range in CIDR form (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpRange {
    pub fn parse(s: &str) -> Option<IpRange> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpRange { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Whom a rule is about; every field given must match. All `None`: every client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    pub user: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<IpRange>,
    /// A protocol name as [`ClientInfo::protocol_name`] shows it (`mqtt`, `mqtt-sn`, `coap`,
    /// a codec's name).
    pub protocol: Option<String>,
}

impl Who {
    fn matches(&self, c: &ClientInfo) -> bool {
        self.user.as_ref().is_none_or(|u| c.username.as_deref() == Some(u.as_str()))
            && self.client_id.as_ref().is_none_or(|id| c.client_id.as_str() == id)
            && self.ip.as_ref().is_none_or(|r| c.peer.is_some_and(|p| r.contains(p.ip())))
            && self.protocol.as_ref().is_none_or(|p| c.protocol_name() == p)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicPattern {
    /// A filter, with `%u` / `%c` / `%{claim}` placeholders.
    Filter(String),
    /// `eq FILTER`: this filter text exactly.
    Eq(String),
}

impl TopicPattern {
    /// `"eq a/#"` is the literal form; anything else a filter.
    pub fn parse(s: &str) -> TopicPattern {
        match s.strip_prefix("eq ") {
            Some(rest) => TopicPattern::Eq(rest.trim_start().to_string()),
            None => TopicPattern::Filter(s.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    pub permission: Permission,
    pub who: Who,
    pub action: RuleAction,
    pub topics: Vec<TopicPattern>,
}

/// The rules and what applies when none matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub rules: Vec<AclRule>,
    pub no_match: Permission,
}

impl Authorizer for Acl {
    /// A superuser passes; then these rules, then the client's own (from `[acl] sources`,
    /// loaded at connect), first match wins; then `no_match` (EMQX's order: the file
    /// source first, then the databases).
    fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> bool {
        let grants = client.grants.as_deref();
        if grants.is_some_and(|g| g.superuser) {
            return true;
        }
        let topic = strip_share(action, topic);
        let own = grants.map_or(&[][..], |g| &g.rules[..]);
        match first_match(&self.rules, client, action, topic).or_else(|| first_match(own, client, action, topic)) {
            Some(permission) => permission == Permission::Allow,
            None => self.no_match == Permission::Allow,
        }
    }
}

fn first_match(rules: &[AclRule], client: &ClientInfo, action: Action, topic: &str) -> Option<Permission> {
    for rule in rules {
        let action_ok = matches!(
            (rule.action, action),
            (RuleAction::All, _) | (RuleAction::Publish, Action::Publish) | (RuleAction::Subscribe, Action::Subscribe)
        );
        if !action_ok || !rule.who.matches(client) {
            continue;
        }
        if rule.topics.iter().any(|t| topic_matches(t, client, action, topic)) {
            return Some(rule.permission);
        }
    }
    None
}

fn strip_share(action: Action, topic: &str) -> &str {
    if action == Action::Subscribe
        && let Some(rest) = topic.strip_prefix("$share/")
        && let Some((_, filter)) = rest.split_once('/')
    {
        return filter;
    }
    topic
}

fn topic_matches(pattern: &TopicPattern, client: &ClientInfo, action: Action, topic: &str) -> bool {
    match pattern {
        TopicPattern::Eq(literal) => literal == topic,
        TopicPattern::Filter(f) => {
            let Some(filter) = substitute(f, client) else { return false };
            match action {
                Action::Publish => crate::topic::matches(&filter, topic),
                Action::Subscribe => covers(&filter, topic),
            }
        }
    }
}

/// `%u`, `%c` and `%{claim}` replaced; `None` if a placeholder has no safe value.
fn substitute(filter: &str, client: &ClientInfo) -> Option<String> {
    if !filter.contains('%') {
        return Some(filter.to_string());
    }
    let safe = |v: &str| !v.is_empty() && !v.contains(['+', '#', '/']);
    let mut out = filter.to_string();
    if out.contains("%u") {
        let u = client.username.as_deref().filter(|u| safe(u))?;
        out = out.replace("%u", u);
    }
    if out.contains("%c") {
        let c = client.client_id.as_str();
        if !safe(c) {
            return None;
        }
        out = out.replace("%c", c);
    }
    if !out.contains("%{") {
        return Some(out);
    }
    // Scanned once, left to right: a claim's value is never read as a placeholder itself.
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(start) = rest.find("%{") {
        result.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let name = &rest[start + 2..end];
        result.push_str(client.grants.as_deref().and_then(|g| g.claim(name)).filter(|v| safe(v))?);
        rest = &rest[end + 1..];
    }
    result.push_str(rest);
    Some(result)
}

/// True if every topic `requested` can match is matched by `rule`.
fn covers(rule: &str, requested: &str) -> bool {
    // A `$` topic is reachable by a wildcard-first filter neither way.
    if requested.starts_with('$') != rule.starts_with('$') && !rule.starts_with('#') && !rule.starts_with('+') {
        return false;
    }
    if requested.starts_with('$') && (rule.starts_with('#') || rule.starts_with('+')) {
        return false;
    }
    let mut r = rule.split('/');
    let mut q = requested.split('/');
    loop {
        match (r.next(), q.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(l)) if l != "#" => {}
            (Some(a), Some(b)) if a == b && a != "+" && a != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ClientId, Protocol};

    fn client(id: &str, user: Option<&str>, ip: [u8; 4], protocol: Protocol) -> ClientInfo {
        ClientInfo {
            client_id: ClientId::from(id),
            protocol,
            protocol_detail: None,
            peer: Some((ip, 1000).into()),
            username: user.map(String::from),
            grants: None,
        }
    }

    fn rule(p: Permission, who: Who, action: RuleAction, topics: &[&str]) -> AclRule {
        AclRule { permission: p, who, action, topics: topics.iter().map(|t| TopicPattern::parse(t)).collect() }
    }

    #[test]
    fn covering() {
        assert!(covers("a/#", "a/+/b"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/+", "a/b"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(covers("#", "a/#"));
        assert!(!covers("#", "$SYS/#"));
        assert!(covers("$SYS/#", "$SYS/x"));
        assert!(!covers("$SYS/#", "#"));
    }

    #[test]
    fn ranges() {
        let r = IpRange::parse("10.1.0.0/16").unwrap();
        assert!(r.contains([10, 1, 2, 3].into()));
        assert!(!r.contains([10, 2, 0, 1].into()));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains([1, 2, 3, 4].into()));
        assert!(IpRange::parse("10.0.0.1/33").is_none());
        assert!(IpRange::parse("::1").unwrap().contains("::1".parse().unwrap()));
    }

    #[test]
    fn first_match_wins_with_placeholders() {
        let acl = Acl {
            rules: vec![
                rule(
                    Permission::Allow,
                    Who { user: Some("admin".into()), ..Default::default() },
                    RuleAction::All,
                    &["$SYS/#"],
                ),
                rule(Permission::Deny, Who::default(), RuleAction::All, &["$SYS/#"]),
                rule(Permission::Allow, Who::default(), RuleAction::Publish, &["devices/%c/up"]),
                rule(Permission::Allow, Who::default(), RuleAction::Subscribe, &["users/%u/#", "eq all/#"]),
                rule(
                    Permission::Deny,
                    Who { ip: IpRange::parse("10.0.0.0/8"), ..Default::default() },
                    RuleAction::All,
                    &["#"],
                ),
                rule(
                    Permission::Allow,
                    Who { protocol: Some("mqtt-sn".into()), ..Default::default() },
                    RuleAction::All,
                    &["sn/#"],
                ),
            ],
            no_match: Permission::Allow,
        };
        let admin = client("a", Some("admin"), [127, 0, 0, 1], Protocol::Mqtt);
        let dev = client("d1", Some("bob"), [127, 0, 0, 1], Protocol::Mqtt);
        let remote = client("r", None, [10, 0, 0, 5], Protocol::Mqtt);
        let sn = client("s", None, [10, 0, 0, 5], Protocol::MqttSn);
        assert!(acl.check(&admin, Action::Subscribe, "$SYS/#"));
        assert!(!acl.check(&dev, Action::Subscribe, "$SYS/brokers/+/uptime"));
        assert!(acl.check(&dev, Action::Publish, "devices/d1/up"));
        assert!(acl.check(&dev, Action::Subscribe, "users/bob/inbox"));
        assert!(acl.check(&dev, Action::Subscribe, "all/#"));
        // Placeholders need a value; the eq form is literal.
        assert!(!acl.check(&remote, Action::Subscribe, "users/%u/x"));
        assert!(!acl.check(&remote, Action::Subscribe, "all/x"));
        assert!(!acl.check(&remote, Action::Publish, "devices/other/up"));
        // Protocol rule after the IP deny: first match wins.
        assert!(!acl.check(&sn, Action::Publish, "sn/x"));
        assert!(acl.check(&dev, Action::Publish, "anything"));
        let strict = Acl { no_match: Permission::Deny, ..acl };
        assert!(!strict.check(&dev, Action::Publish, "anything"));
        assert!(strict.check(&dev, Action::Subscribe, "$share/g/users/bob/x"));
    }

    #[test]
    fn claim_placeholders() {
        let acl = Acl {
            rules: vec![rule(Permission::Allow, Who::default(), RuleAction::All, &["tenants/%{tenant}/%u/#"])],
            no_match: Permission::Deny,
        };
        let mut c = client("d", Some("u"), [127, 0, 0, 1], Protocol::Mqtt);
        // No token, no claim: the rule cannot match.
        assert!(!acl.check(&c, Action::Publish, "tenants/acme/u/x"));
        let with = |claims: &[(&str, &str)]| {
            let claims = claims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Some(std::sync::Arc::new(crate::auth::Grants { claims, ..Default::default() }))
        };
        c.grants = with(&[("tenant", "acme")]);
        assert!(acl.check(&c, Action::Publish, "tenants/acme/u/x"));
        assert!(!acl.check(&c, Action::Publish, "tenants/other/u/x"));
        // Unsafe values never widen the filter; a value is not read as a placeholder.
        for bad in ["#", "a/b", "", "+"] {
            c.grants = with(&[("tenant", bad)]);
            assert!(!acl.check(&c, Action::Subscribe, "tenants/#"), "{bad:?}");
        }
        c.grants = with(&[("tenant", "%{tenant}")]);
        assert!(acl.check(&c, Action::Publish, "tenants/%{tenant}/u/x"));
        assert_eq!(substitute("a/%{unclosed", &c), None);
    }

    #[test]
    fn superuser_and_own_rules_after_the_file_rules() {
        let acl = Acl {
            rules: vec![rule(Permission::Deny, Who::default(), RuleAction::All, &["secret/#"])],
            no_match: Permission::Deny,
        };
        let mut c = client("d", Some("u"), [127, 0, 0, 1], Protocol::Mqtt);
        assert!(!acl.check(&c, Action::Publish, "own/x"));
        c.grants = Some(std::sync::Arc::new(crate::auth::Grants {
            superuser: false,
            rules: vec![
                rule(Permission::Allow, Who::default(), RuleAction::Publish, &["own/#", "secret/x"]),
                rule(Permission::Deny, Who::default(), RuleAction::All, &["#"]),
            ],
            ..Default::default()
        }));
        assert!(acl.check(&c, Action::Publish, "own/x"));
        assert!(!acl.check(&c, Action::Subscribe, "own/x"));
        // The file's deny comes first.
        assert!(!acl.check(&c, Action::Publish, "secret/x"));
        c.grants = Some(std::sync::Arc::new(crate::auth::Grants { superuser: true, ..Default::default() }));
        assert!(acl.check(&c, Action::Publish, "secret/x"));
    }
}
