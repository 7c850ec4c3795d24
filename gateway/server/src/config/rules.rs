//! `[[rule]]`: SQL rules (roost-rules), checked at load so `roost check-config` names the
//! rule and the position of a SQL error (`rule[0].sql: line 1, column 8: ...`).

use super::error::ConfigError;

pub(super) fn rules(rules: Vec<roost_rules::RuleConfig>) -> Result<Vec<roost_rules::RuleConfig>, ConfigError> {
    for (i, r) in rules.iter().enumerate() {
        if let Err(e) = r.validate() {
            // roost-rules names the field first (`sql: ...`, `action[0].queue: ...`).
            let text = e.to_string();
            let (field, message) = text.split_once(": ").unwrap_or(("", text.as_str()));
            let key = if field.is_empty() { format!("rule[{i}]") } else { format!("rule[{i}].{field}") };
            return Err(ConfigError::Invalid { key, message: message.to_string() });
        }
        if rules[..i].iter().any(|o| o.id == r.id) {
            return Err(ConfigError::Invalid {
                key: format!("rule[{i}].id"),
                message: format!("{:?} is used twice", r.id),
            });
        }
    }
    Ok(rules)
}
