//! Plugin benchmarks for `docs/benchmarks.md` (issue 21), one thread:
//!
//! 1. the `line` codec, native Rust vs the AssemblyScript WebAssembly build on wasmi: a
//!    device's TCP stream of `PUB`/`PUB1` lines decoded in 4 KiB reads, and `MSG` lines
//!    encoded (frames per second each way);
//! 2. TS013 JavaScript `decodeUplink` of the 10-byte sensor codec
//!    (`guests/ts013/th-sensor.js`) on QuickJS: payloads per second;
//! 3. memory: per WebAssembly device instance (resident set growth over 1,000 instances)
//!    and per JavaScript codec runtime (QuickJS's own count, and resident set growth).
//!
//! ```sh
//! cargo run --release -p roost-plugins --example plugin_bench -- [frames]
//! ```
//!
//! The WebAssembly guest is compiled from `guests/line.ts` with the `asc` that scripts/test
//! installs in `gateway/plugins/guests/node_modules`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark and test support: a failed expectation is the run failing

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use roost_codec::codecs::line::LineCodec;
use roost_codec::{Codec, Downlink, QoS};
use roost_plugins::js::{JsLimits, JsLoader};
use roost_plugins::plugin::Loader;
use roost_plugins::wasm::codec::WasmCodec;
use roost_plugins::wasm::{WasmLimits, WasmModule};

fn guests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests")
}

fn line_wasm() -> Vec<u8> {
    let out = std::env::temp_dir().join(format!("roost-bench-line-{}.wasm", std::process::id()));
    let status = std::process::Command::new(guests().join("node_modules/.bin/asc"))
        .current_dir(guests())
        .args(["line.ts", "--runtime", "stub", "-O3", "--use", "abort=line/abort", "-o"])
        .arg(&out)
        .status()
        .expect("asc (run scripts/test once: it installs assemblyscript)");
    assert!(status.success());
    let wasm = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    wasm
}

/// Resident set size of this process, bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0) * 4096
}

/// The stream: a CONNECT, then `frames` publishes, QoS 0 and 1 alternating.
fn stream(frames: usize) -> Vec<u8> {
    let mut s = b"CONNECT bench-device user secret\n".to_vec();
    for i in 0..frames {
        let cmd = if i % 2 == 0 { "PUB" } else { "PUB1" };
        s.extend_from_slice(format!("{cmd} sensors/hall/{} {{\"t\":21.{},\"rh\":57}}\n", i % 16, i % 10).as_bytes());
    }
    s
}

/// Decodes `input` in 4 KiB reads; frames per second.
fn decode_rate(codec: &mut dyn Codec, input: &[u8]) -> (usize, f64) {
    let (mut buf, mut out, mut frames) = (BytesMut::new(), Vec::new(), 0);
    let started = Instant::now();
    for chunk in input.chunks(4096) {
        buf.extend_from_slice(chunk);
        codec.decode(&mut buf, &mut out).unwrap();
        frames += out.len();
        out.clear();
    }
    (frames, frames as f64 / started.elapsed().as_secs_f64())
}

/// Encodes `n` QoS 1 deliveries; frames per second.
fn encode_rate(codec: &mut dyn Codec, n: usize) -> f64 {
    let mut out = BytesMut::new();
    let started = Instant::now();
    for i in 0..n {
        let frame = Downlink::Publish {
            id: (i % 65_535 + 1) as u16,
            topic: "cmd/relay/7".into(),
            payload: "{\"on\":true}".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            dup: false,
        };
        codec.encode(frame, &mut out).unwrap();
        out.clear();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let frames: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let input = stream(frames);
    let wasm = line_wasm();
    // The AssemblyScript guest (stub runtime) never frees: a long stream needs room.
    let limits = WasmLimits { max_memory: 1 << 30, ..WasmLimits::default() };
    let module = WasmModule::load("line.wasm", &wasm, limits, Arc::default()).unwrap();
    println!("line.wasm: {} bytes; stream: {} frames, {} bytes", wasm.len(), frames + 1, input.len());

    for round in 0..2 {
        let (n, native) = decode_rate(&mut LineCodec::default(), &input);
        let (m, wasm_rate) = decode_rate(&mut WasmCodec::new(&module), &input);
        assert_eq!(n, m, "both codecs decode every frame");
        let native_enc = encode_rate(&mut LineCodec::default(), frames / 2);
        let wasm_enc = encode_rate(&mut WasmCodec::new(&module), frames / 2);
        println!(
            "round {round}: decode native {native:.0}/s, wasm {wasm_rate:.0}/s ({:.0} %); encode native {native_enc:.0}/s, wasm {wasm_enc:.0}/s ({:.0} %)",
            100.0 * wasm_rate / native,
            100.0 * wasm_enc / native_enc
        );
    }

    let source = std::fs::read(guests().join("ts013/th-sensor.js")).unwrap();
    let script = JsLoader::new(JsLimits::default()).load("th-sensor.js", &source, &Arc::default()).unwrap();
    let payload = [0x0b, 0xb8, 0x08, 0x66, 0x02, 0x3a, 0x27, 0x9c, 0x00, 0x07];
    let before_js = rss();
    assert!(script.decode_uplink(2, &payload).data.is_some());
    let js_rss = rss().saturating_sub(before_js);
    for round in 0..2 {
        let n = frames / 10;
        let started = Instant::now();
        for i in 0..n {
            let mut p = payload;
            p[9] = i as u8;
            assert!(script.decode_uplink(2, &p).errors.is_empty());
        }
        println!("round {round}: JavaScript decodeUplink {:.0} payloads/s", n as f64 / started.elapsed().as_secs_f64());
    }
    println!(
        "JavaScript codec runtime on one worker: {} bytes counted by QuickJS, resident set +{} bytes at first use",
        script.memory_used(),
        js_rss
    );

    let before = rss();
    let instances: Vec<WasmCodec> = (0..1_000).map(|_| WasmCodec::new(&module)).collect();
    let mut warm = Vec::new();
    for mut c in instances {
        let (mut buf, mut out) = (BytesMut::from(&b"CONNECT d\nPUB a b\n"[..]), Vec::new());
        c.decode(&mut buf, &mut out).unwrap();
        warm.push(c);
    }
    println!(
        "WebAssembly instance (one per device): {} bytes resident each (1,000 instances)",
        (rss() - before) / 1_000
    );
}
