//! Rule evaluation: a [`Statement`] applied to one message or event ([`Input`]), giving the
//! selected output or nothing. EMQX 5 semantics for the subset: a missing field is
//! undefined (JSON `null`), comparisons with undefined are false, `payload.x` decodes the
//! payload as JSON (once per message, and only when a rule reads into it); a payload that is
//! not JSON makes `payload.x` undefined, never an error.

use std::cell::OnceCell;
use std::net::SocketAddr;

use serde_json::{Map, Value};

use crate::funcs::{self, EvalError};
use crate::sql::{BinOp, Expr, Field, Seg, Source, Statement};

/// The events a rule can name in `FROM "$events/..."` (EMQX names), plus publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    MessagePublish,
    ClientConnected,
    ClientDisconnected,
    SessionSubscribed,
    SessionUnsubscribed,
    MessageDelivered,
    MessageAcked,
    MessageDropped,
    /// Roost's device events, from what the LwM2M and LoRaWAN adapters publish.
    Lwm2mRegister,
    Lwm2mUpdate,
    Lwm2mDeregister,
    LorawanJoin,
    LorawanUp,
}

impl EventName {
    const FROM: [(EventName, &'static str); 12] = [
        (EventName::ClientConnected, "client_connected"),
        (EventName::ClientDisconnected, "client_disconnected"),
        (EventName::SessionSubscribed, "session_subscribed"),
        (EventName::SessionUnsubscribed, "session_unsubscribed"),
        (EventName::MessageDelivered, "message_delivered"),
        (EventName::MessageAcked, "message_acked"),
        (EventName::MessageDropped, "message_dropped"),
        (EventName::Lwm2mRegister, "lwm2m_register"),
        (EventName::Lwm2mUpdate, "lwm2m_update"),
        (EventName::Lwm2mDeregister, "lwm2m_deregister"),
        (EventName::LorawanJoin, "lorawan_join"),
        (EventName::LorawanUp, "lorawan_up"),
    ];

    /// `client_connected` (the part after `$events/`).
    pub fn parse(name: &str) -> Option<EventName> {
        Self::FROM.iter().find(|(_, n)| *n == name).map(|(e, _)| *e)
    }

    pub fn list() -> String {
        Self::FROM.iter().map(|(_, n)| format!("$events/{n}")).collect::<Vec<_>>().join(", ")
    }

    /// The `event` column: `client.connected`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::MessagePublish => "message.publish",
            EventName::ClientConnected => "client.connected",
            EventName::ClientDisconnected => "client.disconnected",
            EventName::SessionSubscribed => "session.subscribed",
            EventName::SessionUnsubscribed => "session.unsubscribed",
            EventName::MessageDelivered => "message.delivered",
            EventName::MessageAcked => "message.acked",
            EventName::MessageDropped => "message.dropped",
            EventName::Lwm2mRegister => "lwm2m.register",
            EventName::Lwm2mUpdate => "lwm2m.update",
            EventName::Lwm2mDeregister => "lwm2m.deregister",
            EventName::LorawanJoin => "lorawan.join",
            EventName::LorawanUp => "lorawan.up",
        }
    }

    /// The inverse of [`EventName::as_str`] (the API's test input names events this way too).
    pub fn from_dotted(s: &str) -> Option<EventName> {
        [EventName::MessagePublish]
            .into_iter()
            .chain(Self::FROM.iter().map(|(e, _)| *e))
            .find(|e| e.as_str() == s || Self::FROM.iter().any(|(x, n)| x == e && *n == s))
    }
}

/// One message or event as a rule sees it. Borrowed from the broker's event on the hot path.
#[derive(Debug)]
pub struct Input<'a> {
    pub event: EventName,
    pub node: &'a str,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub clientid: Option<&'a str>,
    pub username: Option<&'a str>,
    pub peer: Option<SocketAddr>,
    pub protocol: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub payload: Option<&'a [u8]>,
    pub qos: Option<u8>,
    pub retain: bool,
    pub user_properties: &'a [(String, String)],
    /// Disconnect or drop reason.
    pub reason: Option<&'a str>,
    /// The publisher, for delivered/acked/dropped.
    pub from_clientid: Option<&'a str>,
    pub keepalive: Option<u16>,
    pub(crate) payload_json: OnceCell<Option<Value>>,
}

impl<'a> Input<'a> {
    pub fn new(event: EventName, node: &'a str, timestamp: i64) -> Input<'a> {
        Input {
            event,
            node,
            timestamp,
            clientid: None,
            username: None,
            peer: None,
            protocol: None,
            topic: None,
            payload: None,
            qos: None,
            retain: false,
            user_properties: &[],
            reason: None,
            from_clientid: None,
            keepalive: None,
            payload_json: OnceCell::new(),
        }
    }

    /// The payload decoded as JSON, once; `None` when it is not JSON.
    fn payload_json(&self) -> Option<&Value> {
        self.payload_json.get_or_init(|| self.payload.and_then(|p| serde_json::from_slice(p).ok())).as_ref()
    }

    fn opt(v: Option<&str>) -> Value {
        v.map_or(Value::Null, Value::from)
    }

    /// A column by its EMQX name; `Null` when the event has no such column.
    pub fn column(&self, name: &str) -> Value {
        let ts = Value::from(self.timestamp);
        match name {
            "event" => Value::from(self.event.as_str()),
            "node" => Value::from(self.node),
            "timestamp" | "publish_received_at" if self.topic.is_some() => ts,
            "timestamp" => ts,
            "connected_at" if self.event == EventName::ClientConnected => ts,
            "disconnected_at" if self.event == EventName::ClientDisconnected => ts,
            "clientid" => Self::opt(self.clientid),
            "username" => Self::opt(self.username),
            "peerhost" => self.peer.map_or(Value::Null, |p| Value::from(p.ip().to_string())),
            "peername" => self.peer.map_or(Value::Null, |p| Value::from(p.to_string())),
            "protocol" | "proto_name" => Self::opt(self.protocol),
            "topic" => Self::opt(self.topic),
            "payload" => self.payload.map_or(Value::Null, |p| Value::from(String::from_utf8_lossy(p).into_owned())),
            "qos" => self.qos.map_or(Value::Null, Value::from),
            "flags" if self.topic.is_some() => serde_json::json!({ "retain": self.retain, "dup": false }),
            "pub_props" | "user_property" if self.topic.is_some() => {
                let up: Map<String, Value> =
                    self.user_properties.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
                if name == "user_property" { Value::Object(up) } else { serde_json::json!({ "User-Property": up }) }
            }
            "reason" => Self::opt(self.reason),
            "from_clientid" => Self::opt(self.from_clientid),
            "keepalive" => self.keepalive.map_or(Value::Null, Value::from),
            _ => Value::Null,
        }
    }

    /// Every column, for `SELECT *`.
    pub fn all_columns(&self) -> Map<String, Value> {
        const NAMES: [&str; 19] = [
            "event",
            "node",
            "timestamp",
            "publish_received_at",
            "connected_at",
            "disconnected_at",
            "clientid",
            "username",
            "peerhost",
            "peername",
            "protocol",
            "topic",
            "payload",
            "qos",
            "flags",
            "pub_props",
            "reason",
            "from_clientid",
            "keepalive",
        ];
        NAMES.iter().map(|n| (n.to_string(), self.column(n))).filter(|(_, v)| !v.is_null()).collect()
    }
}

/// What one rule made of one input.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// `FROM` does not cover this input.
    NotMatched,
    /// `FROM` matched, `WHERE` did not hold.
    NoResult,
    /// `FROM` matched and `WHERE` held: the selected fields.
    Output(Map<String, Value>),
}

impl Statement {
    /// Whether `FROM` covers this input.
    pub fn matches(&self, input: &Input<'_>) -> bool {
        self.from.iter().any(|s| match s {
            Source::Event(e) => *e == input.event,
            Source::Topic(f) => {
                input.event == EventName::MessagePublish
                    && input.topic.is_some_and(|t| roost_core::topic::matches(f, t))
            }
        })
    }

    /// Applies the rule: `NotMatched`, `NoResult`, the output, or an evaluation error.
    pub fn apply(&self, input: &Input<'_>) -> Result<Outcome, EvalError> {
        if !self.matches(input) {
            return Ok(Outcome::NotMatched);
        }
        if !self.where_reads_alias {
            if let Some(w) = &self.filter
                && !truthy(&eval(w, input, None)?)
            {
                return Ok(Outcome::NoResult);
            }
            return self.select(input).map(Outcome::Output);
        }
        let out = self.select(input)?;
        match &self.filter {
            Some(w) if !truthy(&eval(w, input, Some(&out))?) => Ok(Outcome::NoResult),
            _ => Ok(Outcome::Output(out)),
        }
    }

    fn select(&self, input: &Input<'_>) -> Result<Map<String, Value>, EvalError> {
        let mut out = Map::new();
        for f in &self.fields {
            match f {
                Field::All => out.extend(input.all_columns()),
                Field::Expr { expr, name } => {
                    let v = eval(expr, input, Some(&out))?;
                    put(&mut out, name, v);
                }
            }
        }
        Ok(out)
    }
}

/// Stores `v` at the key path `name` (`a.b` makes `{"a": {"b": v}}`, merging with what is there).
fn put(out: &mut Map<String, Value>, name: &[Seg], v: Value) {
    let keys: Vec<&str> = name
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.as_str(),
            Seg::Index(_) => "",
        })
        .collect();
    let Some((last, parents)) = keys.split_last() else { return };
    let mut cur = out;
    for k in parents {
        let slot = cur.entry(k.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(m) = slot else { return };
        cur = m;
    }
    cur.insert(last.to_string(), v);
}

/// EMQX truthiness for `WHERE`: only `true` passes.
pub fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// Follows `segs` into `v`. A string is read as JSON first (as EMQX does for `payload.x`).
pub fn index(v: &Value, segs: &[Seg]) -> Value {
    let mut cur = std::borrow::Cow::Borrowed(v);
    for s in segs {
        let next = match (cur.as_ref(), s) {
            (Value::Object(m), Seg::Key(k)) => m.get(k).cloned(),
            (Value::Array(a), Seg::Index(i)) => nth(a, *i).cloned(),
            (Value::String(text), _) => match serde_json::from_str::<Value>(text) {
                Ok(decoded @ (Value::Object(_) | Value::Array(_))) => Some(index(&decoded, std::slice::from_ref(s))),
                _ => None,
            },
            _ => None,
        };
        match next {
            Some(n) => cur = std::borrow::Cow::Owned(n),
            None => return Value::Null,
        }
    }
    cur.into_owned()
}

/// EMQX's 1-based index; negative counts from the end.
pub fn nth(a: &[Value], i: i64) -> Option<&Value> {
    let len = a.len() as i64;
    let at = if i > 0 { i - 1 } else { len + i };
    if i == 0 || at < 0 || at >= len { None } else { a.get(at as usize) }
}

fn lookup(path: &[Seg], input: &Input<'_>, selected: Option<&Map<String, Value>>) -> Value {
    let Some(Seg::Key(first)) = path.first() else { return Value::Null };
    if let Some(v) = selected.and_then(|s| s.get(first)) {
        return index(v, &path[1..]);
    }
    if first == "payload" && path.len() > 1 {
        // The hot path: the decoded payload is shared by every rule reading it.
        return input.payload_json().map_or(Value::Null, |p| index(p, &path[1..]));
    }
    let v = input.column(first);
    if path.len() == 1 { v } else { index(&v, &path[1..]) }
}

/// Evaluates one expression; `selected` holds the select list's output so far (aliases).
pub fn eval(e: &Expr, input: &Input<'_>, selected: Option<&Map<String, Value>>) -> Result<Value, EvalError> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Path(p) => lookup(p, input, selected),
        Expr::Index(b, segs) => index(&eval(b, input, selected)?, segs),
        Expr::Not(b) => match eval(b, input, selected)? {
            Value::Bool(x) => Value::Bool(!x),
            Value::Null => Value::Null,
            v => return Err(EvalError::new(format!("NOT of a non-boolean {v}"))),
        },
        Expr::Neg(b) => funcs::arith(BinOp::Sub, &Value::from(0), &eval(b, input, selected)?)?,
        Expr::Bin(BinOp::And, a, b) => {
            Value::Bool(truthy(&eval(a, input, selected)?) && truthy(&eval(b, input, selected)?))
        }
        Expr::Bin(BinOp::Or, a, b) => {
            Value::Bool(truthy(&eval(a, input, selected)?) || truthy(&eval(b, input, selected)?))
        }
        Expr::Bin(op, a, b) => funcs::binary(*op, &eval(a, input, selected)?, &eval(b, input, selected)?)?,
        Expr::Call(f, args) => {
            let vals = args.iter().map(|a| eval(a, input, selected)).collect::<Result<Vec<_>, _>>()?;
            (f.run)(&vals, input)?
        }
        Expr::Array(items) => {
            Value::Array(items.iter().map(|a| eval(a, input, selected)).collect::<Result<Vec<_>, _>>()?)
        }
        Expr::Case { operand, arms, otherwise } => {
            let subject = match operand {
                Some(o) => Some(eval(o, input, selected)?),
                None => None,
            };
            for (cond, then) in arms {
                let c = eval(cond, input, selected)?;
                let hit = match &subject {
                    Some(s) => funcs::equal(s, &c),
                    None => truthy(&c),
                };
                if hit {
                    return eval(then, input, selected);
                }
            }
            match otherwise {
                Some(o) => eval(o, input, selected)?,
                None => Value::Null,
            }
        }
    })
}

impl Input<'_> {
    /// Now, for `now_timestamp()` and `format_date` without a timestamp.
    pub fn now_ms(&self) -> i64 {
        crate::time::now_ms()
    }
}
