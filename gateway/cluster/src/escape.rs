//! MQTT topics, filters and client ids as NATS subject tokens and KV keys.
//!
//! NATS reserves `.` (token separator), `*` and `>` (wildcards) and whitespace in subjects,
//! and KV keys allow only `[-/_=.A-Za-z0-9]`; MQTT topics may hold all of these, empty
//! levels and any UTF-8. Each name is therefore written as one token in unpadded base64url
//! (RFC 4648 §5): its alphabet is `[A-Za-z0-9_-]`, valid in both, and decoding gives back
//! the exact bytes, so every topic round-trips whatever it contains. Names never need to be
//! matched by NATS wildcards here (the route table does the matching), so nothing is lost by
//! not keeping MQTT levels as NATS tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `name` as one NATS token / KV key part.
pub fn escape(name: &str) -> String {
    if name.is_empty() {
        // base64 of nothing is nothing, and an empty token is invalid in NATS.
        return "=".to_string();
    }
    URL_SAFE_NO_PAD.encode(name.as_bytes())
}

/// The name [`escape`] wrote; `None` if `token` is not one.
pub fn unescape(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()
}

/// True if `token` can stand in a NATS subject and a KV key as it is.
pub fn is_safe_token(token: &str) -> bool {
    !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '=')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn special_characters_round_trip() {
        for t in ["a.b", "*", ">", "a b", "", "/", "//", "a//b/", "é/ü/✓", "$SYS/x", "+/#", "\t\n", "a.*.>"] {
            let e = escape(t);
            assert!(is_safe_token(&e), "{t:?} -> {e:?}");
            assert_eq!(unescape(&e).as_deref(), Some(t));
        }
    }

    #[test]
    fn distinct_names_stay_distinct() {
        assert_ne!(escape("a/b"), escape("a.b"));
        assert_ne!(escape("a/"), escape("a"));
        assert_ne!(escape(""), escape("/"));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(unescape("*"), None);
        assert_eq!(unescape("_w"), None); // not UTF-8
    }

    proptest! {
        #[test]
        fn any_topic_round_trips(t in "\\PC*") {
            let e = escape(&t);
            prop_assert!(is_safe_token(&e));
            prop_assert_eq!(unescape(&e), Some(t));
        }

        #[test]
        fn any_levels_round_trip(levels in proptest::collection::vec("[ .*>a-z\u{e9}]{0,4}", 0..6)) {
            let t = levels.join("/");
            prop_assert_eq!(unescape(&escape(&t)), Some(t));
        }
    }
}
