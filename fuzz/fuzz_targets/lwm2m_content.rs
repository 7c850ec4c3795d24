//! Fuzz target for the LwM2M content formats (`roost_lwm2m::content`): the first byte picks
//! the format (TLV, LwM2M JSON, SenML JSON, SenML CBOR, plain text, opaque), the second the
//! request path, the rest is the payload, typed with the built-in object definitions.
//! Nothing may panic; what decodes must encode (TLV only refuses records outside the path)
//! and decode back to the same records (these formats are lossless once typed), NaN equal
//! to NaN.
//!
//! Run from the repository root:
//! `mkdir -p fuzz/corpus/lwm2m_content && RUSTC_BOOTSTRAP=1 cargo fuzz run lwm2m_content
//! fuzz/corpus/lwm2m_content fuzz/seeds/lwm2m_content -- -max_total_time=600`

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use roost_lwm2m::content::{decode, encode};
use roost_lwm2m::objects::Registry;
use roost_lwm2m::types::{Path, Record, Value, format};

const FORMATS: [u16; 6] =
    [format::TLV, format::LWM2M_JSON, format::SENML_JSON, format::SENML_CBOR, format::TEXT, format::OPAQUE];
const PATHS: [&str; 10] =
    ["/", "/3", "/3/0", "/3/0/6", "/3/0/6/1", "/3/0/13", "/3303/0", "/3303/0/5700", "/1", "/9999/0"];

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || x.is_nan() && y.is_nan(),
        _ => a == b,
    }
}

fn sorted(mut v: Vec<Record>) -> Vec<Record> {
    v.sort_by_key(|r| r.path);
    v
}

fuzz_target!(|data: &[u8]| {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let reg = REGISTRY.get_or_init(Registry::builtin);
    let kind_of = |p: &Path| reg.kind(p);
    let [f, p, payload @ ..] = data else { return };
    let format = FORMATS[usize::from(*f) % FORMATS.len()];
    let Ok(path) = PATHS[usize::from(*p) % PATHS.len()].parse::<Path>() else { return };
    let Ok(records) = decode(format, path, payload, &kind_of) else { return };
    let bytes = match encode(format, path, &records) {
        Ok(bytes) => bytes,
        Err(e) => {
            let outside = records.iter().any(|r| !path.contains(&r.path));
            assert!(
                format == format::TLV && outside,
                "format {format} at {path}: {records:?} decoded but not encoded: {e}"
            );
            return;
        }
    };
    let back = decode(format, path, &bytes, &kind_of).unwrap_or_else(|e| {
        panic!("format {format} at {path}: {bytes:02x?} encoded from {records:?} does not decode: {e}")
    });
    let (a, b) = (sorted(records), sorted(back));
    assert!(
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.path == y.path && same(&x.value, &y.value)),
        "format {format} at {path}: {a:?} came back as {b:?}"
    );
});
