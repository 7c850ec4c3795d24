//! WebAssembly codecs: the `line` conformance suite against the AssemblyScript build, the same
//! traffic through both codecs, and hostile guests (endless loop, memory past the limit,
//! garbage results) failing only their own instance, counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use roost_codec::codecs::line::LineCodec;
use roost_codec::codecs::line_suite;
use roost_codec::{Codec, CodecTester, Downlink, QoS, Uplink};
use roost_plugins::stats::PluginStats;
use roost_plugins::wasm::codec::WasmCodec;
use roost_plugins::wasm::{WasmLimits, WasmModule};

fn module(wasm: &[u8], limits: WasmLimits) -> WasmModule {
    WasmModule::load("test.wasm", wasm, limits, Arc::new(PluginStats::default())).unwrap()
}

#[test]
fn line_suite_passes_against_the_assemblyscript_build() {
    let m = module(&support::line_wasm(), WasmLimits::default());
    line_suite::all(&|| CodecTester::new(WasmCodec::new(&m)));
}

/// The same bytes through the Rust and the WebAssembly `line` codec give the same frames,
/// the same errors-or-not, the same leftover bytes and the same encodings.
#[test]
fn same_traffic_same_frames_as_the_rust_codec() {
    let m = module(&support::line_wasm(), WasmLimits::default());
    let inputs: [&[u8]; 14] = [
        b"connect d1\npub a/b x y  z\n\n  \r\nPUB1 t \n",
        b"CONNECT d2 u\nSuB f/+ 0\nunsub f/+\nack +65535\nping\nquit\nPUB a",
        b"ACK 65536\n",
        b"ACK -1\n",
        b"SUB a 1 extra\n",
        b"CONNECT\n",
        b"PUB  b\n",
        b"PUB a/\xc3\xa9 caf\xc3\xa9\r\r\n",
        b"PUB a \xed\xa0\x80\n",
        b"PUB a \xf0\x9f\x98\x80\n",
        b"UNSUB\n",
        b"\tPING\n",
        b"PING\tx\n",
        b"CONNECT a\tb c\n",
    ];
    for input in inputs {
        let (mut rust, mut wasm) = (CodecTester::new(LineCodec::default()), CodecTester::new(WasmCodec::new(&m)));
        let (r, w) = (rust.feed(input), wasm.feed(input));
        assert_eq!(r.is_ok(), w.is_ok(), "{input:?}: rust {r:?} wasm {w:?}");
        if let (Ok(r), Ok(w)) = (r, w) {
            assert_eq!(r, w, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(rust.buffered(), wasm.buffered());
        }
    }
    let frames = [
        Downlink::ConnAck { result: Ok(()), session_present: true },
        Downlink::ConnAck { result: Err(roost_codec::Refused::BadCredentials), session_present: false },
        Downlink::SubAck { id: 0, result: Ok(QoS::AtMostOnce) },
        Downlink::UnsubAck { id: 0 },
        Downlink::Pong,
        Downlink::Publish {
            id: 65535,
            topic: "a/é".into(),
            payload: "ü x".into(),
            qos: QoS::AtLeastOnce,
            retain: true,
            dup: true,
        },
        Downlink::Disconnect { reason: roost_codec::CloseReason::TakenOver },
        Downlink::Disconnect { reason: roost_codec::CloseReason::KeepAliveTimeout },
    ];
    let (mut rust, mut wasm) = (CodecTester::new(LineCodec::default()), CodecTester::new(WasmCodec::new(&m)));
    for f in frames {
        assert_eq!(rust.encode(f.clone()).unwrap(), wasm.encode(f).unwrap());
    }
}

fn tight() -> WasmLimits {
    WasmLimits { fuel_per_call: 1_000_000, max_memory: 2 * 65_536, ..WasmLimits::default() }
}

/// Feeds one line to a fresh instance of `wasm`; returns the error and how long it took.
fn hostile(wasm: &[u8]) -> (String, Duration, Arc<PluginStats>) {
    let stats = Arc::new(PluginStats::default());
    let m = WasmModule::load("hostile.wasm", wasm, tight(), stats.clone()).unwrap();
    let mut t = CodecTester::new(WasmCodec::new(&m));
    let started = Instant::now();
    let e = t.feed(b"hello\n").unwrap_err();
    let took = started.elapsed();
    // The instance stays closed: a second call fails at once without entering the guest.
    assert!(t.feed(b"again\n").is_err());
    (e.to_string(), took, stats)
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let (e, took, stats) = hostile(&support::wat_guest("(loop $l (br $l)) unreachable", ""));
    assert!(e.contains("ran out of fuel"), "{e}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(stats.snapshot().timeouts, 1);
}

#[test]
fn memory_past_the_limit_traps() {
    let (e, _, stats) = hostile(&support::wat_guest(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) i32.const 0",
        "",
    ));
    assert!(e.contains("trapped"), "{e}");
    assert_eq!(stats.snapshot().traps, 1);
}

#[test]
fn garbage_results_are_refused() {
    let cases = [
        ("local.get $len i32.const 1 i32.add", "consumed"),
        (
            "(call $publish (i32.const 0) (i32.const 65000) (i32.const 9999) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)) i32.const 0",
            "outside its memory",
        ),
        (
            "(call $publish (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 7) (i32.const 0)) i32.const 0",
            "QoS 7",
        ),
        (
            "(call $publish (i32.const 0) (i32.const 1024) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)) i32.const 0",
            "UTF-8",
        ),
        ("(call $write (i32.const 0) (i32.const 1)) i32.const 0", "outside roost_encode"),
        (
            "(loop $l (call $publish (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)) (br $l)) i32.const 0",
            "frames",
        ),
    ];
    for (body, want) in cases {
        let wasm = support::wat_guest(body, "");
        let m = WasmModule::load("garbage.wasm", &wasm, tight(), Arc::new(PluginStats::default())).unwrap();
        let mut t = CodecTester::new(WasmCodec::new(&m));
        let e = t.feed(b"\xff\xfe\xfd\xfc\xfb\xfa\n").unwrap_err().to_string();
        assert!(e.contains(want), "{body}: {e}");
    }
}

#[test]
fn bad_modules_are_refused_at_load() {
    let echo = support::echo_guest();
    let no_decode = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    let v2 = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "roost_abi_version") (result i32) i32.const 2)
           (func (export "roost_buffer") (param i32) (result i32) i32.const 0)
           (func (export "roost_decode") (param i32) (result i32) i32.const 0)
           (func (export "roost_encode") (param i32 i32 i32 i32 i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let unknown_import = support::wat_guest("i32.const 0", r#"(import "env" "fs_open" (func))"#);
    let huge_memory = support::wat_guest("i32.const 0", "");
    let cases: [(&[u8], &str); 5] = [
        (&echo[..echo.len() / 2], "not valid WebAssembly"),
        (&no_decode, "does not export"),
        (&v2, "ABI v2"),
        (&unknown_import, "cannot be instantiated"),
        (&huge_memory, "cannot be instantiated"),
    ];
    for (i, (wasm, want)) in cases.into_iter().enumerate() {
        let limits = if i == 4 { WasmLimits { max_memory: 0, ..tight() } } else { tight() };
        let e = WasmModule::load("bad.wasm", wasm, limits, Arc::default()).err().unwrap().to_string();
        assert!(e.contains(want), "case {i}: {e}");
    }
}

#[test]
fn devices_have_their_own_instances() {
    let m = module(&support::echo_guest(), tight());
    let (mut a, mut b) = (CodecTester::new(WasmCodec::new(&m)), CodecTester::new(WasmCodec::new(&m)));
    assert!(matches!(&a.feed(b"x").unwrap()[..], [Uplink::Connect(_), Uplink::Publish { .. }]));
    assert!(matches!(&b.feed(b"y").unwrap()[..], [Uplink::Connect(_), Uplink::Publish { .. }]));
    assert!(matches!(&a.feed(b"z").unwrap()[..], [Uplink::Publish { .. }]));
}

/// One connection carries 20 MB under the default 1 MiB memory limit: the guest reuses its
/// buffers (the stub runtime never frees, so an allocation per frame or per refused encode
/// would outgrow the limit after a few MB and close the device). Short lines (many frames),
/// long and non-ASCII lines, answers, and encodes the guest refuses, all on one instance.
#[test]
fn twenty_megabytes_through_one_instance_fit_the_default_memory_limit() {
    let m = module(&support::line_wasm(), WasmLimits::default());
    let mut codec = WasmCodec::new(&m);
    let (mut buf, mut out) = (BytesMut::from(&b"CONNECT long-haul u p\n"[..]), Vec::new());
    codec.decode(&mut buf, &mut out).unwrap();
    // 64 distinct reads of ~4 KiB, built once and cycled (building 20 MB of lines would
    // cost more than decoding them).
    let long = "é".repeat(1500);
    let mut chunks = Vec::new();
    let mut i = 0u64;
    for _ in 0..64 {
        let (mut chunk, mut lines) = (Vec::with_capacity(8192), 0usize);
        while chunk.len() < 4096 {
            match i % 50 {
                0 => chunk.extend_from_slice(format!("PUB1 big/{i} {long}\n").as_bytes()),
                1 => chunk.extend_from_slice(b"ping\n"),
                2 => chunk.extend_from_slice(format!("ACK {}\n", i % 65_536).as_bytes()),
                _ => chunk.extend_from_slice(format!("PUB s/{} {{\"t\":{i}}}\n", i % 16).as_bytes()),
            }
            lines += 1;
            i += 1;
        }
        chunks.push((chunk, lines));
    }
    let (mut fed, mut frames, mut expected) = (0usize, 0usize, 1usize);
    for (chunk, lines) in chunks.iter().cycle() {
        if fed >= 20_000_000 {
            break;
        }
        expected += lines;
        fed += chunk.len();
        // Cut mid-line so partial frames stay in the buffer between calls.
        let cut = chunk.len() - 7;
        for part in [&chunk[..cut], &chunk[cut..]] {
            buf.extend_from_slice(part);
            codec.decode(&mut buf, &mut out).unwrap_or_else(|e| panic!("after {fed} bytes: {e}"));
            frames += out.len();
            out.clear();
        }
        // An answer per read, and a delivery the guest refuses (not one line): the refusal
        // drops that frame only and must not cost memory either.
        let mut w = BytesMut::new();
        codec.encode(Downlink::PubAck { id: 1, result: Ok(()) }, &mut w).unwrap();
        let bad = Downlink::Publish {
            id: 0,
            topic: "x".into(),
            payload: "a\nb".into(),
            qos: QoS::AtMostOnce,
            retain: false,
            dup: false,
        };
        assert!(codec.encode(bad, &mut w).is_err());
        assert_eq!(&w[..], b"OK\n");
    }
    assert_eq!(frames, expected, "every frame decoded, the CONNECT too");
    assert!(buf.is_empty());
}
