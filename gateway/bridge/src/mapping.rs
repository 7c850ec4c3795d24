//! Topic rules: which local messages go up and under which name, and back.

use crate::settings::{Direction, TopicRule};

fn wants(rule: &TopicRule, out: bool) -> bool {
    matches!((rule.direction, out), (Direction::Both, _) | (Direction::Out, true) | (Direction::In, false))
}

/// Local filters to subscribe for the `out` direction, with their rule.
pub fn local_filters(rules: &[TopicRule]) -> impl Iterator<Item = (String, &TopicRule)> {
    rules.iter().filter(|r| wants(r, true)).map(|r| (format!("{}{}", r.local_prefix, r.pattern), r))
}

/// Upstream filters to subscribe for the `in` direction, with their rule.
pub fn remote_filters(rules: &[TopicRule]) -> impl Iterator<Item = (String, &TopicRule)> {
    rules.iter().filter(|r| wants(r, false)).map(|r| (format!("{}{}", r.remote_prefix, r.pattern), r))
}

/// The upstream topic for a local message, from the first `out` rule that matches it.
pub fn to_remote(rules: &[TopicRule], local_topic: &str) -> Option<String> {
    rules.iter().filter(|r| wants(r, true)).find_map(|r| {
        let rest = local_topic.strip_prefix(r.local_prefix.as_str())?;
        roost_core::topic::matches(&r.pattern, rest).then(|| format!("{}{rest}", r.remote_prefix))
    })
}

/// The local topic for an upstream message, from the first `in` rule that matches it.
pub fn to_local(rules: &[TopicRule], remote_topic: &str) -> Option<String> {
    rules.iter().filter(|r| wants(r, false)).find_map(|r| {
        let rest = remote_topic.strip_prefix(r.remote_prefix.as_str())?;
        roost_core::topic::matches(&r.pattern, rest).then(|| format!("{}{rest}", r.local_prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_core::QoS;

    fn rule(pattern: &str, direction: Direction, local: &str, remote: &str) -> TopicRule {
        TopicRule {
            pattern: pattern.into(),
            direction,
            qos: QoS::AtLeastOnce,
            local_prefix: local.into(),
            remote_prefix: remote.into(),
        }
    }

    #[test]
    fn prefixes_map_both_ways() {
        let rules = [
            rule("sensors/#", Direction::Out, "", "edge1/"),
            rule("cmd/+", Direction::In, "local/", "edge1/"),
            rule("both/#", Direction::Both, "b/", "r/"),
        ];
        assert_eq!(to_remote(&rules, "sensors/t1"), Some("edge1/sensors/t1".into()));
        assert_eq!(to_remote(&rules, "other/t1"), None);
        assert_eq!(to_local(&rules, "edge1/cmd/x"), Some("local/cmd/x".into()));
        assert_eq!(to_local(&rules, "edge1/cmd/x/y"), None);
        assert_eq!(to_remote(&rules, "b/both/1"), Some("r/both/1".into()));
        assert_eq!(to_local(&rules, "r/both/1"), Some("b/both/1".into()));
        let local: Vec<String> = local_filters(&rules).map(|(f, _)| f).collect();
        assert_eq!(local, ["sensors/#", "b/both/#"]);
        let remote: Vec<String> = remote_filters(&rules).map(|(f, _)| f).collect();
        assert_eq!(remote, ["edge1/cmd/+", "r/both/#"]);
    }
}
