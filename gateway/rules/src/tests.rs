//! Parser and evaluator tests, and the table of EMQX documentation examples
//! (`tests/emqx_examples.json`, also run through `/api/v1/rules/test` by the e2e tests).

use serde_json::{Value, json};

use crate::eval::Outcome;
use crate::sample::Sample;
use crate::sql::parse;

/// Runs one rule over one sample: `("output", map)`, `("no_result", null)`, `("not_matched", null)`.
fn run(sql: &str, sample: Value) -> (String, Value) {
    let st = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let s: Sample = serde_json::from_value(sample).expect("sample");
    let input = s.input("node1").expect("input");
    match st.apply(&input).unwrap_or_else(|e| panic!("{sql}: {e}")) {
        Outcome::Output(m) => ("output".into(), Value::Object(m)),
        Outcome::NoResult => ("no_result".into(), Value::Null),
        Outcome::NotMatched => ("not_matched".into(), Value::Null),
    }
}

#[test]
fn emqx_documentation_examples_give_their_documented_outputs() {
    let table: Vec<Value> = serde_json::from_str(include_str!("../tests/emqx_examples.json")).expect("table");
    assert!(table.len() >= 20);
    for row in table {
        let (result, out) = run(row["sql"].as_str().expect("sql"), row["context"].clone());
        let want = row["result"].as_str().unwrap_or("output");
        assert_eq!(result, want, "{}", row["doc"]);
        if want == "output" {
            assert_eq!(out, row["output"], "{}", row["doc"]);
        }
    }
}

#[test]
fn syntax_errors_name_line_and_column() {
    let e = parse("SELECT a,\n  b FORM \"t/#\"").unwrap_err();
    assert_eq!((e.line, e.column), (2, 5), "{e}");
    assert!(e.to_string().starts_with("line 2, column 5: expected FROM"), "{e}");
    let e = parse("SELECT nope(1) FROM \"t\"").unwrap_err();
    assert_eq!((e.line, e.column, e.message.as_str()), (1, 8, "unknown function `nope`"));
    let e = parse("SELECT substr() FROM \"t\"").unwrap_err();
    assert!(e.message.contains("takes 2 to 3 arguments"), "{e}");
    let e = parse("SELECT * FROM \"$events/nope\"").unwrap_err();
    assert_eq!((e.line, e.column), (1, 15));
    let e = parse("SELECT * FROM \"a/#/b\"").unwrap_err();
    assert!(e.message.contains("not a topic filter"), "{e}");
    let e = parse("SELECT 'open FROM \"t\"").unwrap_err();
    assert_eq!((e.column, e.message.as_str()), (8, "string is not closed"));
    let e = parse("SELECT a FROM \"t\" WHERE").unwrap_err();
    assert!(e.message.contains("expected an expression, found the end"), "{e}");
    let e = parse("SELECT CASE WHEN a THEN 1 FROM \"t\"").unwrap_err();
    assert!(e.message.contains("WHEN, ELSE or END"), "{e}");
    assert!(parse(&format!("SELECT {}1{} FROM \"t\"", "(".repeat(200), ")".repeat(200))).is_err());
}

#[test]
fn undefined_fields_compare_false_and_non_json_gives_no_result() {
    let sql = "SELECT payload.temp AS t, clientid FROM \"sensors/#\" WHERE payload.temp > 30";
    let ok = run(sql, json!({"topic": "sensors/a", "clientid": "c", "payload": "{\"temp\": 31.5}"}));
    assert_eq!(ok, ("output".into(), json!({"t": 31.5, "clientid": "c"})));
    for payload in ["{\"temp\": 30}", "{}", "[1]", "\u{1}\u{2}"] {
        let r = run(sql, json!({"topic": "sensors/a", "payload": payload}));
        assert_eq!(r.0, "no_result", "{payload}");
    }
    assert_eq!(run(sql, json!({"topic": "other"})).0, "not_matched");
}

#[test]
fn operators_and_paths() {
    let p = json!({"topic": "t/1", "payload": "{\"a\": {\"l\": [10, 20, 30]}, \"s\": \"5\", \"n\": null}"});
    let (_, o) = run(
        "SELECT payload.a.l[1] as x, payload.a.l[-1] as y, 7 div 2 as d, 7 mod 2 as m, 7 / 2 as f, \
         'a' + 'b' as s, payload.s = 5 as e, NOT (1 = 2) as n, payload.n as u, -payload.a.l[2] as neg FROM \"t/#\"",
        p,
    );
    assert_eq!(
        o,
        json!({"x": 10, "y": 30, "d": 3, "m": 1, "f": 3.5, "s": "ab", "e": true, "n": true, "u": null, "neg": -20})
    );
    let (_, o) = run(
        "SELECT CASE payload.k WHEN 'a' THEN 1 WHEN 'b' THEN 2 END as c FROM \"t\"",
        json!({"topic": "t", "payload": "{\"k\": \"b\"}"}),
    );
    assert_eq!(o, json!({"c": 2}));
    let (_, o) = run(
        "SELECT payload as p, p.k as k, json_decode(payload).k as k2 FROM \"t\"",
        json!({"topic": "t", "payload": "{\"k\": 1}"}),
    );
    assert_eq!(o, json!({"p": "{\"k\": 1}", "k": 1, "k2": 1}));
    let (r, _) = run("SELECT * FROM \"t\" WHERE a = 1 OR b < 2", json!({"topic": "t"}));
    assert_eq!(r, "no_result");
    // A type error is an evaluation error (counted `failed`), not a panic.
    let st = parse("SELECT lower(1) FROM \"t\"").expect("parse");
    let s: Sample = serde_json::from_value(json!({"topic": "t"})).expect("sample");
    assert!(st.apply(&s.input("n").expect("input")).is_err());
}

#[test]
fn select_star_has_the_message_columns() {
    let (_, o) = run(
        "SELECT * FROM \"t/#\"",
        json!({"topic": "t/1", "clientid": "c", "username": "u", "payload": "hi", "qos": 1, "peername": "10.0.0.1:5", "timestamp": 7}),
    );
    for (k, v) in [
        ("topic", json!("t/1")),
        ("clientid", json!("c")),
        ("payload", json!("hi")),
        ("qos", json!(1)),
        ("peerhost", json!("10.0.0.1")),
        ("timestamp", json!(7)),
        ("event", json!("message.publish")),
    ] {
        assert_eq!(o[k], v, "{k}");
    }
}

#[test]
fn sink_actions_are_validated() {
    let rule = |action: Value| -> Result<(), String> {
        let r: crate::config::RuleConfig =
            serde_json::from_value(json!({"id": "r", "sql": "SELECT * FROM \"t\"", "actions": [action]}))
                .map_err(|e| e.to_string())?;
        r.validate().map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(rule(json!({"type": "mysql", "url": "mysql://root@127.0.0.1:3306/iot", "sql": "INSERT ${t}"})).is_ok());
    assert!(rule(json!({"type": "mysql", "url": "postgres://x", "sql": "INSERT ${t}"})).unwrap_err().contains("url"));
    assert!(rule(json!({"type": "redis", "url": "redis://127.0.0.1/", "command": "HSET k f ${t}"})).is_ok());
    assert!(rule(json!({"type": "redis", "url": "redis://127.0.0.1/", "command": "${cmd} k"})).is_err());
    assert!(rule(json!({"type": "redis", "url": "nope://", "command": "SET k v"})).is_err());
    let amqp = json!({"type": "rabbitmq", "exchange": "x", "routing_key": "a.${clientid}", "exchange_type": "nope"});
    assert!(rule(amqp).unwrap_err().contains("exchange_type"));
    let influx = |extra: Value| {
        let mut a =
            json!({"type": "influxdb", "url": "http://127.0.0.1:8086", "measurement": "m", "fields": {"t": "${t}"}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            a[k] = v.clone();
        }
        rule(a)
    };
    assert!(influx(json!({"database": "iot"})).is_ok());
    assert!(influx(json!({"bucket": "b", "org": "o", "token": "t", "precision": "ns"})).is_ok());
    assert!(influx(json!({})).unwrap_err().contains("database"));
    assert!(influx(json!({"database": "iot", "bucket": "b"})).is_err());
    assert!(influx(json!({"database": "iot", "precision": "m"})).unwrap_err().contains("precision"));
    assert!(influx(json!({"database": "iot", "fields": {}})).unwrap_err().contains("fields"));
}

#[test]
fn device_events_are_rule_sources() {
    let sql = r#"SELECT payload.object.temp AS t, event FROM "$events/lorawan_up""#;
    let (result, out) = run(
        sql,
        json!({"event": "lorawan.up", "topic": "application/a/device/01/event/up",
        "payload": "{\"object\": {\"temp\": 21}}"}),
    );
    assert_eq!((result.as_str(), out), ("output", json!({"t": 21, "event": "lorawan.up"})));
    let (result, _) = run(sql, json!({"event": "lwm2m.register", "payload": "{}"}));
    assert_eq!(result, "not_matched");
    assert!(parse(r#"SELECT * FROM "$events/lwm2m_register", "$events/lwm2m_update", "$events/lwm2m_deregister", "$events/lorawan_join""#).is_ok());
}
