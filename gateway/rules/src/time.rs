//! Time functions of rule SQL: `now_timestamp`, `format_date`, `unix_ts_to_rfc3339`
//! (EMQX 5 semantics; the format string is strftime as EMQX documents it: `%Y %m %d %H %M
//! %S`, `%N` nanoseconds, `%z` / `%:z` offsets).

use std::fmt::Write as _;

use chrono::format::StrftimeItems;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

use crate::eval::Input;
use crate::funcs::EvalError;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `ms` in `unit` (`second`, `millisecond`, `microsecond`, `nanosecond`).
pub fn scale_ms(ms: i64, unit: &str) -> i64 {
    match unit {
        "millisecond" => ms,
        "microsecond" => ms.saturating_mul(1_000),
        "nanosecond" => ms.saturating_mul(1_000_000),
        _ => ms / 1_000,
    }
}

fn to_nanos(ts: i64, unit: &str) -> Result<i64, EvalError> {
    let mul = match unit {
        "second" => 1_000_000_000,
        "millisecond" => 1_000_000,
        "microsecond" => 1_000,
        "nanosecond" => 1,
        u => return Err(EvalError::new(format!("unknown time unit {u:?}"))),
    };
    ts.checked_mul(mul).ok_or_else(|| EvalError::new("timestamp out of range"))
}

/// `'+08:00'`, `'-0200'`, `'Z'`, `'utc'`, or seconds east of UTC.
fn offset(v: &Value) -> Result<FixedOffset, EvalError> {
    let bad = || EvalError::new(format!("bad time offset {v}"));
    let secs = match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        Value::String(s) if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") => 0,
        Value::String(s) => {
            let (sign, rest) = match s.as_bytes().first() {
                Some(b'+') => (1, &s[1..]),
                Some(b'-') => (-1, &s[1..]),
                _ => return Err(bad()),
            };
            let digits: String = rest.chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let h: i64 = digits[..2].parse().map_err(|_| bad())?;
            let m: i64 = digits[2..].parse().map_err(|_| bad())?;
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(bad()),
    };
    i32::try_from(secs).ok().and_then(FixedOffset::east_opt).ok_or_else(bad)
}

fn datetime(nanos: i64, off: FixedOffset) -> DateTime<FixedOffset> {
    DateTime::<Utc>::from_timestamp_nanos(nanos).with_timezone(&off)
}

/// `format_date(unit, offset, format[, timestamp])`.
pub fn format_date(a: &[Value], input: &Input<'_>) -> Result<Value, EvalError> {
    let unit = a[0].as_str().ok_or_else(|| EvalError::new("format_date: unit is not a string"))?;
    let off = offset(&a[1])?;
    let fmt = a[2].as_str().ok_or_else(|| EvalError::new("format_date: format is not a string"))?;
    let ts = match a.get(3) {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| EvalError::new("format_date: bad timestamp"))?,
        Some(Value::String(s)) => s.parse().map_err(|_| EvalError::new("format_date: bad timestamp"))?,
        Some(v) => return Err(EvalError::new(format!("format_date: bad timestamp {v}"))),
        None => scale_ms(input.now_ms(), unit),
    };
    let fmt = fmt.replace("%N", "%9f");
    let items =
        StrftimeItems::new(&fmt).parse().map_err(|_| EvalError::new(format!("format_date: bad format {fmt:?}")))?;
    let mut out = String::new();
    write!(out, "{}", datetime(to_nanos(ts, unit)?, off).format_with_items(items.iter()))
        .map_err(|_| EvalError::new("format_date: cannot format"))?;
    Ok(Value::from(out))
}

/// `unix_ts_to_rfc3339(ts[, unit])`, in UTC.
pub fn to_rfc3339(a: &[Value]) -> Result<Value, EvalError> {
    let ts = a[0].as_i64().ok_or_else(|| EvalError::new("unix_ts_to_rfc3339: timestamp is not an integer"))?;
    let unit = a.get(1).and_then(Value::as_str).unwrap_or("second");
    let dt = datetime(to_nanos(ts, unit)?, FixedOffset::east_opt(0).ok_or_else(|| EvalError::new("offset"))?);
    let secs = match unit {
        "millisecond" => chrono::SecondsFormat::Millis,
        "microsecond" => chrono::SecondsFormat::Micros,
        "nanosecond" => chrono::SecondsFormat::Nanos,
        _ => chrono::SecondsFormat::Secs,
    };
    Ok(Value::from(dt.to_rfc3339_opts(secs, false)))
}
