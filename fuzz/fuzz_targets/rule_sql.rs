//! Fuzz target for rule SQL (`roost_rules::sql::parse`, EMQX 5's `SELECT ... FROM ...
//! WHERE ...`) and its evaluation (`roost_rules::eval`): the input is the statement, then a
//! NUL, then the payload of a `message.publish` the rule is applied to (its topic is
//! `t/{first payload byte}`). Nothing may panic; a syntax error names a position.
//!
//! Run from the repository root: `scripts/fuzz rule_sql 600`

#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_rules::eval::{EventName, Input};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let Ok(sql) = std::str::from_utf8(parts.next().unwrap_or_default()) else { return };
    let payload = parts.next().unwrap_or_default();
    let statement = match roost_rules::sql::parse(sql) {
        Ok(s) => s,
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            return;
        }
    };
    let topic = format!("t/{}", payload.first().copied().unwrap_or(0));
    let props = [("k".to_string(), "v".to_string())];
    let mut input = Input::new(EventName::MessagePublish, "roost@fuzz", 1_700_000_000_000);
    input.clientid = Some("c1");
    input.username = Some("u1");
    input.topic = Some(&topic);
    input.payload = Some(payload);
    input.qos = Some(1);
    input.user_properties = &props;
    let _ = statement.apply(&input);
});
