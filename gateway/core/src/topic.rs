//! Topic names and filters: validation (MQTT 5.0 §4.7) and shared subscription parsing
//! (§4.8.2, `$share/{group}/{filter}`).

use crate::settings::BrokerSettings;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is {0} bytes, longer than the limit of {1}")]
    TooLong(usize, usize),
    #[error("topic has {0} levels, more than the limit of {1}")]
    TooManyLevels(usize, usize),
    #[error("topic name contains a wildcard ('+' or '#')")]
    WildcardInName,
    #[error("topic contains U+0000")]
    NulChar,
    #[error("filter: '#' must be the last level and stand alone")]
    BadMultiLevelWildcard,
    #[error("filter: '+' must stand alone in its level")]
    BadSingleLevelWildcard,
    #[error("shared subscription: {0}")]
    BadShare(&'static str),
}

fn check_common(topic: &str, limits: &BrokerSettings) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > limits.max_topic_length {
        return Err(TopicError::TooLong(topic.len(), limits.max_topic_length));
    }
    if topic.contains('\0') {
        return Err(TopicError::NulChar);
    }
    let levels = topic.split('/').count();
    if levels > limits.max_topic_levels {
        return Err(TopicError::TooManyLevels(levels, limits.max_topic_levels));
    }
    Ok(())
}

/// Validates a topic name a client publishes to.
pub fn validate_name(topic: &str, limits: &BrokerSettings) -> Result<(), TopicError> {
    check_common(topic, limits)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Validates a (non-shared) topic filter.
pub fn validate_filter(filter: &str, limits: &BrokerSettings) -> Result<(), TopicError> {
    check_common(filter, limits)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::BadMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::BadSingleLevelWildcard);
        }
    }
    Ok(())
}

/// A subscription filter, possibly shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec<'a> {
    /// `Some(group)` for `$share/{group}/{filter}`.
    pub share_group: Option<&'a str>,
    pub filter: &'a str,
}

/// Parses and validates a filter as written by a client.
pub fn parse_filter<'a>(raw: &'a str, limits: &BrokerSettings) -> Result<FilterSpec<'a>, TopicError> {
    if let Some(rest) = raw.strip_prefix("$share/") {
        let (group, filter) = rest.split_once('/').ok_or(TopicError::BadShare("no filter after the group name"))?;
        if group.is_empty() {
            return Err(TopicError::BadShare("group name is empty"));
        }
        if group.contains(['+', '#']) {
            return Err(TopicError::BadShare("group name contains a wildcard"));
        }
        validate_filter(filter, limits)?;
        return Ok(FilterSpec { share_group: Some(group), filter });
    }
    validate_filter(raw, limits)?;
    Ok(FilterSpec { share_group: None, filter: raw })
}

/// True if `filter` (valid, non-shared) matches topic name `topic`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BrokerSettings {
        BrokerSettings::default()
    }

    #[test]
    fn filters() {
        let l = limits();
        for ok in ["a", "a/b", "#", "+", "a/+/b", "a/#", "+/+", "/", "a//b", "$SYS/#"] {
            assert!(validate_filter(ok, &l).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "+a", "#/a"] {
            assert!(validate_filter(bad, &l).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        let l = limits();
        assert!(validate_name("a/b", &l).is_ok());
        assert_eq!(validate_name("a/+", &l), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("", &l), Err(TopicError::Empty));
        let mut small = limits();
        small.max_topic_levels = 2;
        assert_eq!(validate_name("a/b/c", &small), Err(TopicError::TooManyLevels(3, 2)));
    }

    #[test]
    fn shares() {
        let l = limits();
        assert_eq!(parse_filter("$share/g/a/+", &l), Ok(FilterSpec { share_group: Some("g"), filter: "a/+" }));
        assert!(parse_filter("$share//a", &l).is_err());
        assert!(parse_filter("$share/g", &l).is_err());
        assert!(parse_filter("$share/g+/a", &l).is_err());
    }

    #[test]
    fn matching() {
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("+/+", "/x"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }
}
