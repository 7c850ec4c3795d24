//! Fuzz target for how Roost reads what a TS013 JavaScript payload codec returns
//! (`roost_plugins::js`): a codec whose `decodeUplink` returns the uplink bytes parsed as
//! JSON, and whose `encodeDownlink` returns its `data` unchanged, so the fuzzer chooses the
//! whole result object (`data`, `errors`, `warnings`, `bytes`, `fPort`, of any type and
//! size). Roost must turn every result into data or errors, never panic, and an encoded
//! downlink must hold only bytes 0..=255 and an fPort of 1..=223.
//!
//! WebAssembly codecs' results (the `roost.*` host calls) are not covered here.
//!
//! Run from the repository root: `scripts/fuzz plugin_result 600`

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use roost_plugins::js::{JsLimits, JsLoader, JsScript};
use roost_plugins::plugin::Loader;
use roost_plugins::stats::PluginStats;

const CODEC: &str = r#"
function decodeUplink(input) {
  var s = "";
  for (var i = 0; i < input.bytes.length; i++) s += String.fromCharCode(input.bytes[i]);
  return JSON.parse(s);
}
function encodeDownlink(input) { return input.data; }
"#;

thread_local! {
    static SCRIPT: JsScript = JsLoader::new(JsLimits::default())
        .load("echo.js", CODEC.as_bytes(), &Arc::new(PluginStats::default()))
        .unwrap_or_else(|e| panic!("the echo codec loads: {e}"));
}

fuzz_target!(|data: &[u8]| {
    SCRIPT.with(|script| {
        let [fport, json @ ..] = data else { return };
        let decoded = script.decode_uplink(*fport, json);
        assert!(decoded.data.is_some() != !decoded.errors.is_empty(), "data or errors: {decoded:?}");
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else { return };
        if let Ok(encoded) = script.encode_downlink(&value) {
            assert!(encoded.fport.is_none_or(|p| (1..=223).contains(&p)), "{encoded:?}");
            let sent = value.get("bytes").and_then(|b| b.as_array()).map(Vec::len);
            assert_eq!(sent, Some(encoded.bytes.len()), "{value} encoded as {encoded:?}");
        }
    });
});
