//! The InfluxDB action: line protocol over HTTP(S), one `POST` per batch (one line per
//! output), through the HTTP action's client (rustls for `https://`). InfluxDB 1.x takes
//! `/write?db=` (basic authentication when a username is set); 2.x and 1.8+ take
//! `/api/v2/write?org=&bucket=` with `Authorization: Token`.
//!
//! A point is `measurement,tag=v field=v timestamp`: names and tag values are escaped, so
//! a device's id cannot break the line. A field template that is one `${field}` keeps the
//! JSON type (numbers as floats, booleans, strings quoted); anything else is a string. A
//! missing field is left out, an output with no field left is skipped (counted in the log),
//! and without a `timestamp` template each point gets the write time, distinct per point
//! (points with the same series and time would overwrite each other).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

use super::http::HttpClient;
use super::{Output, Sink, SinkError};
use crate::config::ActionKind;
use crate::template::Template;

/// Checks an `influxdb` action's target and templates.
pub fn validate(kind: &ActionKind) -> Result<(), String> {
    let ActionKind::Influxdb { url, database, bucket, measurement, tags, fields, timestamp, precision, .. } = kind
    else {
        return Err("not an influxdb action".into());
    };
    super::http::Target::parse(url).map_err(|e| format!("url: {e}"))?;
    if database.is_some() == bucket.is_some() {
        return Err("database: set `database` (InfluxDB 1.x /write) or `bucket` (/api/v2/write), not both".into());
    }
    if !["ns", "us", "ms", "s"].contains(&precision.as_str()) {
        return Err(format!("precision: {precision:?} is not ns, us, ms or s"));
    }
    if fields.is_empty() {
        return Err("fields: at least one is needed".into());
    }
    let t = |field: &str, s: &str| Template::parse(s).map(|_| ()).map_err(|e| format!("{field}: {e}"));
    t("measurement", measurement)?;
    for (k, v) in tags.iter().chain(fields.iter()) {
        if k.is_empty() {
            return Err("tags/fields: an empty name".into());
        }
        t(k, v)?;
    }
    if let Some(ts) = timestamp {
        t("timestamp", ts)?;
    }
    Ok(())
}

pub struct InfluxSink {
    client: HttpClient,
    headers: Vec<(String, String)>,
    measurement: Template,
    tags: Vec<(String, Template)>,
    fields: Vec<(String, Template)>,
    timestamp: Option<Template>,
    /// Units of a second, for the default timestamp.
    per_second: u128,
    /// The last default timestamp given, so each point gets a new one.
    last: u128,
    timeout: Duration,
}

fn templates(m: &BTreeMap<String, String>) -> Result<Vec<(String, Template)>, SinkError> {
    m.iter().map(|(k, v)| Ok((k.clone(), Template::parse(v).map_err(SinkError::new)?))).collect()
}

/// `%`-encodes a query value.
fn query(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl InfluxSink {
    pub fn new(kind: &ActionKind) -> Result<InfluxSink, SinkError> {
        validate(kind).map_err(SinkError)?;
        let ActionKind::Influxdb {
            url,
            database,
            org,
            bucket,
            token,
            username,
            password,
            measurement,
            tags,
            fields,
            timestamp,
            precision,
            ca_file,
            timeout_ms,
        } = kind
        else {
            return Err(SinkError::new("not an influxdb action"));
        };
        let base = url.trim_end_matches('/');
        let mut headers = vec![("content-type".to_string(), "text/plain; charset=utf-8".to_string())];
        let target = if let Some(db) = database {
            // 1.x names the precision n/u/ms/s.
            let p = match precision.as_str() {
                "ns" => "n",
                "us" => "u",
                p => p,
            };
            if let Some(user) = username {
                let pass = password.as_deref().unwrap_or("");
                let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                headers.push(("authorization".into(), format!("Basic {basic}")));
            }
            format!("{base}/write?db={}&precision={p}", query(db))
        } else {
            let bucket = bucket.as_deref().unwrap_or("");
            let org = org.as_deref().map(|o| format!("&org={}", query(o))).unwrap_or_default();
            if let Some(token) = token {
                headers.push(("authorization".into(), format!("Token {token}")));
            }
            format!("{base}/api/v2/write?bucket={}{org}&precision={precision}", query(bucket))
        };
        let per_second = match precision.as_str() {
            "ns" => 1_000_000_000,
            "us" => 1_000_000,
            "ms" => 1_000,
            _ => 1,
        };
        Ok(InfluxSink {
            client: HttpClient::new(&target, ca_file.as_deref())?,
            headers,
            measurement: Template::parse(measurement).map_err(SinkError::new)?,
            tags: templates(tags)?,
            fields: templates(fields)?,
            timestamp: timestamp.as_deref().map(Template::parse).transpose().map_err(SinkError::new)?,
            per_second,
            last: 0,
            timeout: Duration::from_millis(*timeout_ms),
        })
    }

    /// The output's point, or `None` when none of its fields is there.
    fn line(&mut self, out: &Output) -> Option<String> {
        let mut line = escape(&self.measurement.render(out), ", ");
        for (k, t) in &self.tags {
            let v = t.render(out);
            if !v.is_empty() && v != "undefined" {
                line.push_str(&format!(",{}={}", escape(k, ",= "), escape(&v, ",= ")));
            }
        }
        let mut sep = ' ';
        for (k, t) in &self.fields {
            let v = match t.single(out) {
                Some(Value::Null) => continue,
                Some(Value::Number(n)) => format!("{}", n.as_f64().unwrap_or(f64::NAN)),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::String(s)) => quote(&s),
                Some(v) => quote(&v.to_string()),
                None => quote(&t.render(out)),
            };
            line.push_str(&format!("{sep}{}={v}", escape(k, ",= ")));
            sep = ',';
        }
        if sep == ' ' {
            return None;
        }
        // A timestamp that is not an integer (missing, text) is replaced by the write time.
        let given = self.timestamp.as_ref().and_then(|t| t.render(out).parse::<i128>().ok());
        let ts = given.unwrap_or_else(|| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let ts = (now.as_nanos() * self.per_second / 1_000_000_000).max(self.last + 1);
            self.last = ts;
            i128::try_from(ts).unwrap_or(i128::MAX)
        });
        line.push(' ');
        line.push_str(&ts.to_string());
        Some(line)
    }
}

/// Backslash before each of `special` (line protocol names and tag values).
fn escape(s: &str, special: &str) -> String {
    let mut e = String::with_capacity(s.len());
    for c in s.chars() {
        if special.contains(c) || c == '\\' {
            e.push('\\');
        }
        // A newline would end the point.
        e.push(if c == '\n' { ' ' } else { c });
    }
    e
}

/// A string field value.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[async_trait::async_trait]
impl Sink for InfluxSink {
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError> {
        let mut body = String::new();
        for out in batch {
            match self.line(out) {
                Some(l) => {
                    body.push_str(&l);
                    body.push('\n');
                }
                None => tracing::debug!("rule influxdb action: an output with none of the fields; skipped"),
            }
        }
        if body.is_empty() {
            return Ok(());
        }
        let send = self.client.request(hyper::Method::POST, self.headers.clone(), body.into_bytes());
        let status = tokio::time::timeout(self.timeout, send)
            .await
            .map_err(|_| SinkError::new("InfluxDB write timed out"))??;
        if status.is_success() { Ok(()) } else { Err(SinkError(format!("InfluxDB write: HTTP status {status}"))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(extra: &[(&str, &str)]) -> InfluxSink {
        let mut json = serde_json::json!({
            "type": "influxdb", "url": "http://127.0.0.1:8086", "measurement": "hot temp",
            "tags": {"clientid": "${clientid}"}, "fields": {"t": "${t}", "note": "at ${t}", "ok": "${ok}"}
        });
        for (k, v) in extra {
            json[*k] = Value::from(*v);
        }
        let kind: ActionKind = serde_json::from_value(json).expect("action");
        InfluxSink::new(&kind).expect("sink")
    }

    #[test]
    fn points_are_escaped_and_typed() {
        let mut s = sink(&[("database", "iot"), ("timestamp", "${ts}")]);
        let out: Output =
            serde_json::from_str(r#"{"clientid": "a b,c=d", "t": 31, "ok": true, "ts": 17}"#).expect("json");
        assert_eq!(s.line(&out).as_deref(), Some(r#"hot\ temp,clientid=a\ b\,c\=d note="at 31",ok=true,t=31 17"#));
        let none: Output = serde_json::from_str(r#"{"clientid": "x"}"#).expect("json");
        // `note` renders (as a string) even when `t` is missing; `t` and `ok` are left out.
        let line = s.line(&none).expect("a line");
        assert!(line.starts_with(r#"hot\ temp,clientid=x note="at undefined" "#), "{line}");
        let s2: Output = serde_json::from_str(r#"{"clientid": "x", "ok": null}"#).expect("json");
        let mut only_t = sink(&[("database", "iot")]);
        only_t.fields.retain(|(k, _)| k != "note");
        assert_eq!(only_t.line(&s2), None, "no field left: no point");
        let mut s = sink(&[("bucket", "b")]);
        let (a, b) = (s.line(&out).expect("line"), s.line(&out).expect("line"));
        assert_ne!(a.rsplit(' ').next(), b.rsplit(' ').next(), "default timestamps are distinct");
    }
}
