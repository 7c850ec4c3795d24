//! Rule SQL operators and built-in functions, as EMQX 5 documents them ("Built-in SQL
//! Functions"): math, strings, `nth`/`split` over topic levels, JSON and maps, time,
//! base64/hex and hashes. A function is resolved when the rule is parsed, so an unknown
//! name or a wrong argument count is a syntax error with a position, not a runtime one.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::eval::{Input, nth};
use crate::sql::BinOp;

/// A failed evaluation (a type error in a function): counted as `failed` for the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

impl EvalError {
    pub fn new(m: impl Into<String>) -> EvalError {
        EvalError(m.into())
    }
}

type Run = fn(&[Value], &Input<'_>) -> Result<Value, EvalError>;

/// A resolved built-in.
#[derive(Clone, Copy)]
pub struct Func {
    pub name: &'static str,
    pub run: Run,
}

impl std::fmt::Debug for Func {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}()", self.name)
    }
}

/// Name, fewest and most arguments, implementation.
const TABLE: &[(&str, usize, usize, Run)] = &[
    ("abs", 1, 1, |a, _| math1(a, f64::abs).map(int_if_whole_input(a))),
    ("ceil", 1, 1, |a, _| math1(a, f64::ceil).map(to_int)),
    ("floor", 1, 1, |a, _| math1(a, f64::floor).map(to_int)),
    ("round", 1, 1, |a, _| math1(a, f64::round).map(to_int)),
    ("sqrt", 1, 1, |a, _| math1(a, f64::sqrt)),
    ("exp", 1, 1, |a, _| math1(a, f64::exp)),
    ("log", 1, 1, |a, _| math1(a, f64::ln)),
    ("log10", 1, 1, |a, _| math1(a, f64::log10)),
    ("log2", 1, 1, |a, _| math1(a, f64::log2)),
    ("sin", 1, 1, |a, _| math1(a, f64::sin)),
    ("cos", 1, 1, |a, _| math1(a, f64::cos)),
    ("tan", 1, 1, |a, _| math1(a, f64::tan)),
    ("power", 2, 2, |a, _| Ok(float(num(&a[0])?.powf(num(&a[1])?)))),
    ("fmod", 2, 2, |a, _| Ok(float(num(&a[0])? % num(&a[1])?))),
    ("concat", 2, usize::MAX, |a, _| Ok(Value::from(a.iter().map(text).collect::<String>()))),
    ("lower", 1, 1, |a, _| Ok(Value::from(string(&a[0])?.to_lowercase()))),
    ("upper", 1, 1, |a, _| Ok(Value::from(string(&a[0])?.to_uppercase()))),
    ("trim", 1, 1, |a, _| Ok(Value::from(string(&a[0])?.trim()))),
    ("ltrim", 1, 1, |a, _| Ok(Value::from(string(&a[0])?.trim_start()))),
    ("rtrim", 1, 1, |a, _| Ok(Value::from(string(&a[0])?.trim_end()))),
    ("strlen", 1, 1, |a, _| Ok(Value::from(string(&a[0])?.chars().count()))),
    ("reverse", 1, 1, |a, _| Ok(Value::from(string(&a[0])?.chars().rev().collect::<String>()))),
    ("substr", 2, 3, substr),
    ("split", 2, 3, split),
    ("replace", 3, 3, |a, _| Ok(Value::from(string(&a[0])?.replace(string(&a[1])?, string(&a[2])?)))),
    ("regex_match", 2, 2, |a, _| Ok(Value::Bool(regex(&a[1])?.is_match(string(&a[0])?)))),
    ("regex_replace", 3, 3, regex_replace),
    ("nth", 2, 2, |a, _| Ok(nth(array(&a[1])?, int(&a[0])?).cloned().unwrap_or(Value::Null))),
    ("length", 1, 1, |a, _| Ok(Value::from(array(&a[0])?.len()))),
    ("first", 1, 1, |a, _| Ok(array(&a[0])?.first().cloned().unwrap_or(Value::Null))),
    ("last", 1, 1, |a, _| Ok(array(&a[0])?.last().cloned().unwrap_or(Value::Null))),
    ("contains", 2, 2, |a, _| Ok(Value::Bool(array(&a[1])?.iter().any(|x| equal(x, &a[0]))))),
    ("json_decode", 1, 1, |a, _| {
        serde_json::from_str(string(&a[0])?).map_err(|e| EvalError::new(format!("json_decode: {e}")))
    }),
    ("json_encode", 1, 1, |a, _| Ok(Value::from(a[0].to_string()))),
    ("map_get", 2, 3, |a, _| {
        Ok(map_path(&a[1], string(&a[0])?).unwrap_or_else(|| a.get(2).cloned().unwrap_or(Value::Null)))
    }),
    ("map_put", 3, 3, map_put),
    ("map_keys", 1, 1, |a, _| Ok(Value::Array(map(&a[0])?.keys().map(|k| Value::from(k.as_str())).collect()))),
    ("map_values", 1, 1, |a, _| Ok(Value::Array(map(&a[0])?.values().cloned().collect()))),
    ("str", 1, 1, |a, _| Ok(Value::from(text(&a[0])))),
    ("int", 1, 1, |a, _| Ok(Value::from(num(&a[0])?.trunc() as i64))),
    ("float", 1, 1, |a, _| Ok(float(num(&a[0])?))),
    ("bool", 1, 1, to_bool),
    ("is_null", 1, 1, |a, _| Ok(Value::Bool(a[0].is_null()))),
    ("is_not_null", 1, 1, |a, _| Ok(Value::Bool(!a[0].is_null()))),
    ("coalesce", 2, usize::MAX, |a, _| Ok(a.iter().find(|v| !v.is_null()).cloned().unwrap_or(Value::Null))),
    ("now_timestamp", 0, 1, |a, i| Ok(Value::from(crate::time::scale_ms(i.now_ms(), unit(a.first())?)))),
    ("format_date", 3, 4, |a, i| crate::time::format_date(a, i)),
    ("unix_ts_to_rfc3339", 1, 2, |a, _| crate::time::to_rfc3339(a)),
    ("base64_encode", 1, 1, |a, _| Ok(Value::from(base64::engine::general_purpose::STANDARD.encode(bytes(&a[0]))))),
    ("base64_decode", 1, 1, base64_decode),
    ("bin2hexstr", 1, 1, |a, _| Ok(Value::from(hex(&bytes(&a[0]))))),
    ("hexstr2bin", 1, 1, hex_decode),
    ("md5", 1, 1, |a, _| Ok(Value::from(hex(&<md5::Md5 as md5::Digest>::digest(bytes(&a[0])))))),
    ("sha256", 1, 1, |a, _| Ok(Value::from(hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes(&a[0])))))),
];

/// Resolves a call by name (case-insensitive) and argument count.
pub fn lookup(name: &str, args: usize) -> Result<Func, String> {
    let lower = name.to_ascii_lowercase();
    let Some(&(n, min, max, run)) = TABLE.iter().find(|(n, ..)| *n == lower) else {
        return Err(format!("unknown function `{name}`"));
    };
    if args < min || args > max {
        let want = match (min, max) {
            (a, b) if a == b => format!("{a}"),
            (a, usize::MAX) => format!("at least {a}"),
            (a, b) => format!("{a} to {b}"),
        };
        return Err(format!("{n}() takes {want} arguments, given {args}"));
    }
    Ok(Func { name: n, run })
}

fn num(v: &Value) -> Result<f64, EvalError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| EvalError::new("number out of range")),
        Value::String(s) => s.trim().parse().map_err(|_| EvalError::new(format!("{s:?} is not a number"))),
        v => Err(EvalError::new(format!("{v} is not a number"))),
    }
}

fn int(v: &Value) -> Result<i64, EvalError> {
    match v {
        Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or(0)),
        v => Ok(num(v)? as i64),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn to_int(v: Value) -> Value {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
        _ => v,
    }
}

fn int_if_whole_input(a: &[Value]) -> fn(Value) -> Value {
    if a[0].is_i64() { to_int } else { |v| v }
}

fn math1(a: &[Value], f: fn(f64) -> f64) -> Result<Value, EvalError> {
    Ok(float(f(num(&a[0])?)))
}

fn string(v: &Value) -> Result<&str, EvalError> {
    v.as_str().ok_or_else(|| EvalError::new(format!("{v} is not a string")))
}

/// A value as text: strings as they are, others as JSON, undefined as "undefined".
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "undefined".into(),
        v => v.to_string(),
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        v => v.to_string().into_bytes(),
    }
}

fn array(v: &Value) -> Result<&Vec<Value>, EvalError> {
    v.as_array().ok_or_else(|| EvalError::new(format!("{v} is not an array")))
}

fn map(v: &Value) -> Result<&Map<String, Value>, EvalError> {
    v.as_object().ok_or_else(|| EvalError::new(format!("{v} is not a map")))
}

fn unit(v: Option<&Value>) -> Result<&str, EvalError> {
    v.map_or(Ok("second"), string)
}

fn substr(a: &[Value], _: &Input<'_>) -> Result<Value, EvalError> {
    let s: Vec<char> = string(&a[0])?.chars().collect();
    let start = int(&a[1])?.clamp(0, s.len() as i64) as usize;
    let end = match a.get(2) {
        Some(l) => (start as i64 + int(l)?.max(0)).min(s.len() as i64) as usize,
        None => s.len(),
    };
    Ok(Value::from(s[start..end].iter().collect::<String>()))
}

/// `split(s, sep)` drops empty parts (EMQX); `split(s, sep, 'notrim')` keeps them;
/// `'leading'`/`'trailing'` split once at the first/last separator.
fn split(a: &[Value], _: &Input<'_>) -> Result<Value, EvalError> {
    let (s, sep) = (string(&a[0])?, string(&a[1])?);
    if sep.is_empty() {
        return Err(EvalError::new("split: empty separator"));
    }
    let parts: Vec<&str> = match a.get(2).map(string).transpose()? {
        None => s.split(sep).filter(|p| !p.is_empty()).collect(),
        Some("notrim") => s.split(sep).collect(),
        Some("leading") => s.split_once(sep).map_or(vec![s], |(x, y)| vec![x, y]),
        Some("trailing") => s.rsplit_once(sep).map_or(vec![s], |(x, y)| vec![x, y]),
        Some(o) => return Err(EvalError::new(format!("split: unknown option {o:?}"))),
    };
    Ok(Value::Array(parts.into_iter().map(Value::from).collect()))
}

fn regex(v: &Value) -> Result<regex::Regex, EvalError> {
    // Compiled per call: rules are few and patterns short; a cache keyed by pattern would
    // be the next step if a profile shows it.
    regex::Regex::new(string(v)?).map_err(|e| EvalError::new(format!("bad regex: {e}")))
}

/// Erlang `re:replace` replacement syntax (`&` is the match, `\N` a group) to `regex`'s.
fn regex_replace(a: &[Value], _: &Input<'_>) -> Result<Value, EvalError> {
    let re = regex(&a[1])?;
    let mut rep = String::new();
    let mut chars = string(&a[2])?.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => rep.push_str("${0}"),
            '$' => rep.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    rep.push_str(&format!("${{{d}}}"));
                }
                Some('&') => {
                    chars.next();
                    rep.push('&');
                }
                _ => rep.push('\\'),
            },
            c => rep.push(c),
        }
    }
    Ok(Value::from(re.replace_all(string(&a[0])?, rep.as_str()).into_owned()))
}

/// `map_get('a.b', m)`: a dotted key path.
fn map_path(m: &Value, key: &str) -> Option<Value> {
    let mut cur = m;
    for k in key.split('.') {
        cur = cur.as_object()?.get(k)?;
    }
    Some(cur.clone())
}

fn map_put(a: &[Value], _: &Input<'_>) -> Result<Value, EvalError> {
    let mut m = map(&a[2])?.clone();
    m.insert(string(&a[0])?.to_string(), a[1].clone());
    Ok(Value::Object(m))
}

fn to_bool(a: &[Value], _: &Input<'_>) -> Result<Value, EvalError> {
    match &a[0] {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::String(s) if s == "true" => Ok(Value::Bool(true)),
        Value::String(s) if s == "false" => Ok(Value::Bool(false)),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(Value::Bool(true)),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Value::Bool(false)),
        v => Err(EvalError::new(format!("bool: cannot convert {v}"))),
    }
}

fn base64_decode(a: &[Value], _: &Input<'_>) -> Result<Value, EvalError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(string(&a[0])?)
        .map_err(|e| EvalError::new(format!("base64_decode: {e}")))?;
    Ok(Value::from(String::from_utf8_lossy(&raw).into_owned()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode(a: &[Value], _: &Input<'_>) -> Result<Value, EvalError> {
    let s = string(&a[0])?;
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EvalError::new(format!("hexstr2bin: {s:?} is not hex")));
    }
    let raw: Vec<u8> = (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    Ok(Value::from(String::from_utf8_lossy(&raw).into_owned()))
}

/// `=` as EMQX compares: numbers by value (a numeric string equals its number), else as JSON.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            matches!((num(a), num(b)), (Ok(x), Ok(y)) if x == y)
        }
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Null, _) | (_, Value::Null) => None,
        _ => num(a).ok()?.partial_cmp(&num(b).ok()?),
    }
}

/// A binary operator other than `AND`/`OR`.
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    use std::cmp::Ordering::*;
    Ok(match op {
        BinOp::Eq => Value::Bool(!a.is_null() && !b.is_null() && equal(a, b)),
        BinOp::Ne => Value::Bool(!a.is_null() && !b.is_null() && !equal(a, b)),
        BinOp::Lt => Value::Bool(order(a, b) == Some(Less)),
        BinOp::Le => Value::Bool(matches!(order(a, b), Some(Less | Equal))),
        BinOp::Gt => Value::Bool(order(a, b) == Some(Greater)),
        BinOp::Ge => Value::Bool(matches!(order(a, b), Some(Greater | Equal))),
        BinOp::Match => match (a.as_str(), b.as_str()) {
            (Some(t), Some(f)) => Value::Bool(roost_core::topic::matches(f, t)),
            _ => Value::Bool(false),
        },
        _ => return arith(op, a, b),
    })
}

/// `+ - * / div mod`: integers stay integers (but `/` gives a float); `+` of two strings
/// concatenates; undefined in gives undefined out.
pub fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    if let (BinOp::Add, Value::String(x), Value::String(y)) = (op, a, b) {
        return Ok(Value::from(format!("{x}{y}")));
    }
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::IntDiv => x.checked_div(y),
            BinOp::Mod => x.checked_rem(y),
            _ => None,
        };
        if let Some(r) = r {
            return Ok(Value::from(r));
        }
        if matches!(op, BinOp::IntDiv | BinOp::Mod) {
            return Err(EvalError::new("division by zero"));
        }
    }
    let (x, y) = (num(a)?, num(b)?);
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div if y == 0.0 => return Err(EvalError::new("division by zero")),
        BinOp::Div => x / y,
        BinOp::IntDiv if y == 0.0 => return Err(EvalError::new("division by zero")),
        BinOp::IntDiv => return Ok(Value::from((x / y).trunc() as i64)),
        BinOp::Mod => x % y,
        _ => return Err(EvalError::new("not an arithmetic operator")),
    };
    Ok(float(r))
}
