//! TS013 JavaScript payload codecs (issue 21): the vendor-style codecs of `guests/ts013`
//! decode and encode as TS013 says; hostile codecs (endless loop, unbounded allocation,
//! throwing, garbage, endless recursion) end in an error within their limits, counted,
//! and the next call is served; bad files are refused at load and on reload.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark and test support: a failed expectation is the run failing

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roost_plugins::js::{JsLimits, JsLoader, JsScript};
use roost_plugins::plugin::{Kind, Loader, Plugin, Reloaded};
use roost_plugins::stats::PluginStats;
use serde_json::json;

fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests/ts013").join(name)
}

fn load(name: &str, limits: JsLimits) -> (JsScript, Arc<PluginStats>) {
    let stats = Arc::new(PluginStats::default());
    let bytes = std::fs::read(guest(name)).unwrap();
    (JsLoader::new(limits).load(name, &bytes, &stats).unwrap(), stats)
}

#[test]
fn the_sensor_codec_decodes_uplinks_and_encodes_its_configuration() {
    let (th, stats) = load("th-sensor.js", JsLimits::default());
    let d = th.decode_uplink(2, &[0x0b, 0xb8, 0x08, 0x66, 0x02, 0x3a, 0x27, 0x9c, 0x02, 0x07]);
    assert_eq!(
        d.data,
        Some(
            json!({"battery": 3, "temperature": 21.5, "humidity": 57, "pressure": 1014, "tamper": false, "sequence": 7})
        )
    );
    assert_eq!((d.errors.len(), d.warnings), (0, vec!["low battery".to_string()]));
    let cold = th.decode_uplink(2, &[0x0b, 0xb8, 0xfc, 0x18, 0, 0, 0, 0, 1, 0]);
    assert_eq!(cold.data.unwrap()["temperature"], -10);
    let wrong = th.decode_uplink(9, &[1]);
    assert_eq!((wrong.data, wrong.errors), (None, vec!["unknown fPort 9".to_string()]));
    let e = th.encode_downlink(&json!({"interval": 15})).unwrap();
    assert_eq!((e.fport, e.bytes), (Some(3), vec![15]));
    assert!(th.encode_downlink(&json!({"interval": 0.5})).unwrap_err()[0].contains("interval"));
    let s = stats.snapshot();
    assert_eq!((s.calls, s.errors, s.timeouts, s.traps), (5, 2, 0, 0), "{s:?}");
}

#[test]
fn the_valve_codec_encodes_commands() {
    let (valve, _) = load("valve.js", JsLimits::default());
    let e = valve.encode_downlink(&json!({"valve": "open", "minutes": 300})).unwrap();
    assert_eq!((e.fport, e.bytes), (Some(20), vec![1, 0x01, 0x2c]));
    assert_eq!(valve.encode_downlink(&json!({"valve": "close"})).unwrap().bytes, vec![0, 0, 0]);
    assert_eq!(
        valve.encode_downlink(&json!({"valve": "ajar"})).unwrap_err(),
        vec![r#"valve must be "open" or "close""#]
    );
    let d = valve.decode_uplink(10, &[2, 0x01, 0xf4, 80]);
    assert_eq!(d.data, Some(json!({"state": "fault", "flow": 500, "battery": 80})));
    assert_eq!(d.warnings, vec!["valve reports a fault"]);
}

fn tight() -> JsLimits {
    JsLimits { time_per_call: Duration::from_millis(50), max_memory: 4 << 20 }
}

#[test]
fn hostile_codecs_fail_within_their_limits_and_the_next_call_is_served() {
    let (h, stats) = load("hostile.js", tight());
    let cases = [
        (1, "time limit"),
        (2, "out of resources"),
        (3, "sensor exploded"),
        (4, "returned no object"),
        (5, "out of resources"),
    ];
    for (port, want) in cases {
        let started = Instant::now();
        let d = h.decode_uplink(port, &[1, 2, 3]);
        let took = started.elapsed();
        assert_eq!(d.data, None, "fPort {port}");
        assert!(d.errors.len() == 1 && d.errors[0].contains(want), "fPort {port}: {:?}", d.errors);
        assert!(took < Duration::from_secs(2), "fPort {port} took {took:?}");
        // Served again right after, on the same thread (a fresh runtime after a limit).
        assert_eq!(h.decode_uplink(7, &[9]).data, Some(json!({"value": 9})), "after fPort {port}");
    }
    let s = stats.snapshot();
    assert_eq!((s.timeouts, s.traps, s.errors), (1, 2, 2), "{s:?}");
    assert!(h.memory_used() > 0 && h.memory_used() < 4 << 20, "{}", h.memory_used());
}

#[test]
fn bad_files_are_refused_at_load() {
    let cases: [(&[u8], &str); 5] = [
        (b"function decodeUplink(input) { return {", "SyntaxError"),
        (b"var x = 1;", "decodeUplink"),
        (b"throw new Error('no')", "no"),
        (b"for (;;) {}", "top level ran past"),
        (b"\xff\xfe", "UTF-8"),
    ];
    for (src, want) in cases {
        let e = JsLoader::new(tight()).load("bad.js", src, &Arc::default()).err().unwrap();
        assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(src));
    }
}

/// One runtime per worker thread: four threads decode at once with the same loaded
/// version, each through its own runtime, and agree.
#[test]
fn threads_decode_at_once_through_their_own_runtimes() {
    let (th, _) = load("th-sensor.js", JsLimits::default());
    let th = Arc::new(th);
    let results: Vec<_> = (0..4u8)
        .map(|i| {
            let th = th.clone();
            std::thread::spawn(move || {
                (0..200).map(|_| th.decode_uplink(2, &[0, 0, 0, i, 0, 0, 0, 0, 0, i]).data.unwrap()).collect::<Vec<_>>()
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    for (i, r) in results.iter().enumerate() {
        assert!(r.iter().all(|d| d["sequence"] == i && d["temperature"] == i as f64 / 100.0));
    }
}

#[test]
fn a_replaced_file_serves_the_next_call_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codec.js");
    let version = |n: u32| format!("function decodeUplink(input) {{ return {{ data: {{ v: {n} }} }}; }}");
    std::fs::write(&path, version(1)).unwrap();
    let p = Plugin::open(&path, Kind::Js, JsLoader::new(tight())).unwrap();
    assert_eq!(p.current().loaded.decode_uplink(1, &[]).data, Some(json!({"v": 1})));
    std::fs::write(&path, version(2)).unwrap();
    assert!(matches!(p.reload().unwrap(), Reloaded::Loaded { generation: 2, .. }));
    assert_eq!(p.current().loaded.decode_uplink(1, &[]).data, Some(json!({"v": 2})));
    std::fs::write(&path, "function decodeUplink(input) { return").unwrap();
    assert!(p.reload().unwrap_err().contains("SyntaxError"));
    assert_eq!(p.current().loaded.decode_uplink(1, &[]).data, Some(json!({"v": 2})), "the old version stays");
    assert_eq!(p.stats.snapshot().refused_reloads, 1);
}
