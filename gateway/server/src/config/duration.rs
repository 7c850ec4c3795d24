//! Durations in the config file: a whole number and a unit, `"500ms"`, `"10s"`, `"5m"`,
//! `"2h"`, `"1d"`. One unit per value keeps the grammar small and the file plain; a value
//! that needs two units is written in the smaller one (`"90s"`, not `"1m30s"`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The units understood, smallest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

const HINT: &str = r#"write a whole number and a unit: ms, s, m, h or d, e.g. "10s""#;

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("it is empty; {HINT}")]
    Empty,
    #[error("it does not start with a number; {HINT}")]
    NoNumber,
    #[error("it has no unit; {HINT}")]
    NoUnit,
    #[error("fractions are not supported; use a smaller unit (e.g. \"1500ms\")")]
    Fraction,
    #[error("unknown unit \"{0}\"; {HINT}")]
    UnknownUnit(String),
    #[error("it is too large")]
    TooLarge,
}

/// Parses `"<digits><unit>"`, e.g. `"500ms"` or `"10s"`. No sign, no spaces, no fractions.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::NoNumber);
    }
    if unit.is_empty() {
        return Err(DurationError::NoUnit);
    }
    if unit.starts_with('.') {
        return Err(DurationError::Fraction);
    }
    let millis_per_unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, millis)| *millis)
        .ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
    // Digits only, so the one way to fail is overflow.
    let count: u64 = digits.parse().map_err(|_| DurationError::TooLarge)?;
    let millis = count.checked_mul(millis_per_unit).ok_or(DurationError::TooLarge)?;
    Ok(Duration::from_millis(millis))
}

/// Writes a duration in the largest unit that represents it exactly, so that
/// `parse_duration(&format_duration(d)) == Ok(d)` for whole milliseconds.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    // "ms" divides everything, so the loop always returns.
    for (name, per_unit) in UNITS.iter().rev() {
        if millis.is_multiple_of(u128::from(*per_unit)) {
            return format!("{}{name}", millis / u128::from(*per_unit));
        }
    }
    format!("{millis}ms")
}

/// A `Duration` read from a duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor).map(ConfigDuration)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

/// An upper bound that may be absent: a duration string, or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationOrNever(pub Option<Duration>);

const NEVER: &str = "never";

impl<'de> Deserialize<'de> for DurationOrNever {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationOrNeverVisitor).map(DurationOrNever)
    }
}

impl Serialize for DurationOrNever {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(duration) => serializer.serialize_str(&format_duration(duration)),
            None => serializer.serialize_str(NEVER),
        }
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a duration string such as "10s""#)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(|e| E::custom(format!("\"{text}\" is not a duration: {e}")))
    }
}

struct DurationOrNeverVisitor;

impl Visitor<'_> for DurationOrNeverVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a duration string such as "1d", or "never""#)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Option<Duration>, E> {
        if text == NEVER {
            return Ok(None);
        }
        parse_duration(text)
            .map(Some)
            .map_err(|e| E::custom(format!("\"{text}\" is neither \"never\" nor a duration: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn rejects_garbage() {
        let cases = [
            ("", DurationError::Empty),
            ("s", DurationError::NoNumber),
            ("-5s", DurationError::NoNumber),
            (" 5s", DurationError::NoNumber),
            ("10", DurationError::NoUnit),
            ("1.5s", DurationError::Fraction),
            ("10x", DurationError::UnknownUnit("x".into())),
            ("10 s", DurationError::UnknownUnit(" s".into())),
            ("10S", DurationError::UnknownUnit("S".into())),
            ("10sec", DurationError::UnknownUnit("sec".into())),
            ("1h30m", DurationError::UnknownUnit("h30m".into())),
            ("99999999999999999999s", DurationError::TooLarge),
            ("18446744073709551615d", DurationError::TooLarge),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(172_800)), "2d");
    }

    #[test]
    fn format_then_parse_round_trips() {
        for millis in [1, 999, 1000, 59_000, 60_000, 3_600_000, 86_400_000, 90_061_001] {
            let duration = Duration::from_millis(millis);
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
    }
}
